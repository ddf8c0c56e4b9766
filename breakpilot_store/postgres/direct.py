"""A hot statement sent to PostgreSQL below psycopg's cursor: prepared, one round trip.

Profiled (benchmarks/OPTIMISATIONS.md, issue 16's third round), a 1 KB create spent
~70 µs of client CPU in psycopg's cursor around one prepared statement (a cursor and
its transformer per call, the query's conversion and the prepared-statement cache's
bookkeeping, the result's description and row loader) against ~35 µs for the same
statement sent on the connection's ``PGconn``. This module does what the cursor does
for one known statement, and nothing else: it prepares the statement once per
server connection (under a name of its own, beside psycopg's ``_pg3_*`` ones), sends
its parameters as text, and waits through the connection's own ``wait`` (which
cancels the statement on ``KeyboardInterrupt``, as ``execute`` does). A failed
statement raises the exception class the cursor would raise
(``psycopg.errors.error_from_result``), so callers translate errors as before.

Only on direct connections: behind PgBouncer in transaction mode a prepared statement
may not be on the server connection of the next transaction.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import psycopg
from psycopg.pq import ExecStatus

try:
    # Not psycopg's documented API (the cursor uses them): if a release moves them, the
    # store sends the create through the cursor as before, rather than failing.
    from psycopg import generators

    AVAILABLE = callable(getattr(generators, "execute", None)) and callable(
        getattr(psycopg.Connection, "wait", None)
    )
except ImportError:  # pragma: no cover - depends on the installed psycopg
    generators = None  # type: ignore[assignment]
    AVAILABLE = False

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")

#: Parameter types as psycopg sends them (a ``str`` or the JSON's ``bytes``: unknown,
#: typed by the statement; ``int``: int8; ``datetime``: timestamptz).
_OIDS: dict[type, int] = {str: 0, bytes: 0, int: 20, datetime: 1184}

#: SQLSTATE of "prepared statement ... does not exist": psycopg deallocates all of a
#: connection's statements after some commands (``ROLLBACK`` once it prepared any).
_NOT_PREPARED = b"26000"


def _text(value: Any) -> bytes | None:
    """A parameter in PostgreSQL's text format (the connection's encoding is UTF-8)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat().encode()
    return str(int(value)).encode()


class DirectStatement:
    """One statement compiled for psycopg (``%(name)s``), numbered for the protocol.

    Attributes:
        name: The server-side name it is prepared under.
        query: The SQL with ``$1``, ``$2``, ... (a name used twice is sent once).
        params: The parameter names, in ``$n`` order.
    """

    __slots__ = ("name", "params", "query")

    def __init__(self, sql: str) -> None:
        """Number ``sql``'s named placeholders (``%%`` is a literal ``%``)."""
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            key = match.group(1)
            if key is None:
                return "%"
            if key not in names:
                names.append(key)
            return f"${names.index(key) + 1}"

        self.query = _PLACEHOLDER.sub(number, sql).encode()
        self.params = tuple(names)
        self.name = b"_bp_" + hashlib.sha1(self.query).hexdigest()[:16].encode()

    def execute(self, conn: psycopg.Connection[Any], values: Mapping[str, Any]) -> Any:
        """Run the statement on ``conn`` (autocommit: its own transaction); its result.

        Returns:
            The ``PGresult`` (text format), rows already received.

        Raises:
            psycopg.Error: As the cursor would raise it (the class by SQLSTATE).
        """
        args = [_text(values[key]) for key in self.params]
        prepared: set[bytes] | None = getattr(conn, "_bp_prepared", None)
        if prepared is None:
            prepared = set()
            conn._bp_prepared = prepared  # type: ignore[attr-defined]
        if self.name not in prepared:
            self._prepare(conn, values)
            prepared.add(self.name)
        result = self._send(conn, args)
        if result.status == ExecStatus.FATAL_ERROR and (
            result.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == _NOT_PREPARED
        ):
            # Deallocated behind our back (see _NOT_PREPARED): nothing ran; again, once.
            self._prepare(conn, values)
            result = self._send(conn, args)
        return _checked(conn, result)

    def _prepare(self, conn: psycopg.Connection[Any], values: Mapping[str, Any]) -> None:
        types = [_OIDS.get(type(values[key]), 0) for key in self.params]
        conn.pgconn.send_prepare(self.name, self.query, param_types=types)
        for result in conn.wait(generators.execute(conn.pgconn)):
            _checked(conn, result)

    def _send(self, conn: psycopg.Connection[Any], args: list[bytes | None]) -> Any:
        pgconn = conn.pgconn
        pgconn.send_query_prepared(self.name, args)
        results = conn.wait(generators.execute(pgconn))
        return results[-1]


def _checked(conn: psycopg.Connection[Any], result: Any) -> Any:
    status = result.status
    if status == ExecStatus.TUPLES_OK or status == ExecStatus.COMMAND_OK:
        return result
    if status == ExecStatus.FATAL_ERROR:
        raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)
    raise psycopg.InterfaceError(f"unexpected result {ExecStatus(status).name}")
