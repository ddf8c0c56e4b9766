"""Leases with fencing tokens: the statements, over a connection the caller passes in.

A session's lease is one row of ``leases``. Acquiring it is one ``INSERT ... ON
CONFLICT DO UPDATE ... WHERE`` (the conflict arm only if the lease is free, expired or
taken over) that adds one to the session's fencing token and returns it: atomic on
both backends, across processes and hosts. Released leases keep their row (``owner``
and ``expires_at`` NULL) so the token only ever grows.

Every write to a session checks the lease in its own transaction:

* a create carries the check in its ``INSERT`` (see :func:`insert_guard`): the holder's
  row goes in only if its token is still current and held, anyone else's only if no
  live lease exists, so the check costs no statement of its own;
* every other write (clear, import, compression, deletion) calls :func:`check` first.

Time comes from one clock: PostgreSQL's ``now()`` there (hosts with skewed clocks still
agree), the host's clock on SQLite (one host), passed in as ``now``.

Concurrency on PostgreSQL (READ COMMITTED): acquisition, release and every writer lock
the session's row (``SELECT ... FOR UPDATE``) before they read or change the lease, so a
takeover is ordered entirely before or after each write, never in the middle of one.
Acquisition and release also write the held token into that row
(``sessions.lease_token``): the one-statement create compares it, on the row version it
locked, with what its snapshot saw of ``leases`` (``repository.PG_CREATE``).
On SQLite ``BEGIN IMMEDIATE`` (or the one-statement create) holds the write lock.

As everywhere in ``core``, nothing here begins, commits or rolls back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, exists, func, text

from ..errors import DatabaseError, LeaseLostError, SessionLeasedError
from ..schema import UTCDateTime, leases, stored_time, to_text
from . import counters

_l = leases.c


class _Force:
    """The fence of an operator's ``--force``: the write ignores any lease."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "FORCE"


#: Pass as ``fence`` to write whatever lease the session has (operators' ``--force``).
FORCE: Any = _Force()


@dataclass(frozen=True)
class LeaseInfo:
    """A session's lease row, as an operator sees it.

    Attributes:
        session_id: The session.
        owner: Who holds it, or ``None`` once released.
        token: The fencing token of the last acquisition.
        acquired_at: When it was last acquired.
        renewed_at: When it was last renewed (or acquired).
        expires_at: When it expires unless renewed, or ``None`` once released.
        duration: The holder's lease duration in seconds.
        live: Whether it is held now (owner set and not expired, by the database's
            clock when read).
    """

    session_id: str
    owner: str | None
    token: int
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime | None
    duration: float
    live: bool


def _pg(conn: Any) -> bool:
    # The hot path's driver connection has no dialect: it is always SQLite.
    dialect = getattr(conn, "dialect", None)
    return dialect is not None and dialect.name == "postgresql"


def _when(value: Any) -> Any:
    """A stored timestamp as an aware datetime (SQLite's text, or PostgreSQL's value)."""
    return None if value is None else stored_time(value, "a lease's expiry")


# Timestamps are bound as SQLite's stored text (to_text) there; PostgreSQL uses now().
_ACQUIRE_SQL = """
INSERT INTO leases (session_id, owner, token, acquired_at, renewed_at, expires_at, duration)
VALUES (:sid, :owner, 1, {now}, {now}, {expires}, :duration)
ON CONFLICT (session_id) DO UPDATE SET
    owner = excluded.owner, token = leases.token + 1, acquired_at = excluded.acquired_at,
    renewed_at = excluded.renewed_at, expires_at = excluded.expires_at,
    duration = excluded.duration
WHERE leases.owner IS NULL OR leases.expires_at <= excluded.acquired_at OR {takeover}
RETURNING token, expires_at
"""
_RENEW_SQL = """
UPDATE leases SET renewed_at = {now}, expires_at = {expires}
WHERE session_id = :sid AND token = :token AND owner IS NOT NULL
RETURNING expires_at
"""
_ROW_SQL = """
SELECT session_id, owner, token, acquired_at, renewed_at, expires_at, duration,
    owner IS NOT NULL AND expires_at > {now}
FROM leases {where}
"""
_SQLITE = {
    "now": ":at",
    "expires": ":expires",
    "takeover": ":takeover",
}
_POSTGRES = {
    "now": "now()",
    "expires": "now() + make_interval(secs => :duration)",
    "takeover": "CAST(:takeover AS BOOLEAN)",
}


def _both(sql: str, **extra: str) -> tuple[Any, Any]:
    """``(sqlite, postgresql)`` forms of a statement."""
    return (
        text(sql.format(**_SQLITE, **extra)),
        text(sql.format(**_POSTGRES, **extra)),
    )


_ACQUIRE = _both(_ACQUIRE_SQL)
_RENEW = _both(_RENEW_SQL)
_ROW = _both(_ROW_SQL, where="WHERE session_id = :sid")
_ALL = _both(_ROW_SQL, where="ORDER BY session_id")
# A group's sessions as one parameter (a JSON array on SQLite, an array on PostgreSQL),
# not one each: an expanding IN of a group of 1,000 creates rendered and bound 1,000
# parameters in Python, a few milliseconds of the writer's GIL-holding time that the
# event loop's thread waited behind (benchmarks/OPTIMISATIONS.md, the async API).
_SOME = (
    _both(_ROW_SQL, where="WHERE session_id IN (SELECT value FROM json_each(:ids))")[0],
    _both(_ROW_SQL, where="WHERE session_id = ANY(:ids)")[1],
)
_RELEASE = text(
    "UPDATE leases SET owner = NULL, expires_at = NULL "
    "WHERE session_id = :sid AND owner IS NOT NULL AND (token = :token OR :any = 1)"
)
# The held lease's token on the session's row (``sessions.lease_token``): written by
# every acquisition and release, after the session's row is locked.
_MIRROR = text("UPDATE sessions SET lease_token = :token WHERE session_id = :sid")


def _params(conn: Any, now: datetime, duration: float | None = None, **params: Any) -> Any:
    """The statement for this backend's clock and its parameters."""
    if duration is not None:
        params["duration"] = duration
    if _pg(conn):
        return 1, params
    # Rendered here, as stored (a bound name the hot path's driver connection leaves
    # alone: it renders "now" and "created_at" itself).
    params["at"] = to_text(now)
    if duration is not None:
        params["expires"] = to_text(now + timedelta(seconds=duration))
    return 0, params


def acquire(
    conn: Connection,
    session_id: str,
    owner: str,
    duration: float,
    now: datetime,
    *,
    takeover: bool = False,
) -> tuple[int, datetime] | LeaseInfo:
    """Acquire the session's lease if it is free or expired (or ``takeover``).

    Creates the session (counter at 0) if it does not exist, so operators see it, with
    its lease, in ``session_overview`` from the start; on PostgreSQL locks its row first
    (see the module docstring).

    Returns:
        ``(token, expires_at)`` if acquired, else the live lease that stands in the way.
    """
    counters.add_session(conn, session_id, now)
    if _pg(conn):
        counters.lock(conn, session_id)
    form, params = _params(conn, now, duration, sid=session_id, owner=owner)
    params["takeover"] = bool(takeover) if form else int(bool(takeover))
    row = conn.execute(_ACQUIRE[form], params).fetchone()
    if row is not None:
        token = int(row[0])
        conn.execute(_MIRROR, {"sid": session_id, "token": token})
        return token, _when(row[1])
    holder = lease_info(conn, session_id, now)
    if holder is None:  # the INSERT arm takes a missing row: only a hand edit gets here
        raise DatabaseError(f"no lease row for {session_id!r} after a refused acquisition")
    return holder


def renew(
    conn: Connection, session_id: str, token: int, duration: float, now: datetime
) -> datetime | None:
    """Extend the lease held under ``token`` to ``duration`` seconds from now.

    Returns:
        The new expiry, or ``None`` if ``token`` no longer holds the lease (lost).
    """
    form, params = _params(conn, now, duration, sid=session_id, token=token)
    row = conn.execute(_RENEW[form], params).fetchone()
    return None if row is None else _when(row[0])


def release(conn: Connection, session_id: str, token: int | None = None) -> bool:
    """Release the lease (only if held under ``token``, unless ``token`` is ``None``).

    The row and its token stay: the next acquisition gets one more.

    Returns:
        Whether a held lease was released.
    """
    if _pg(conn):
        # The session's row first, as acquisition and every writer lock it: the same
        # order, so no deadlock (a session without a row has no lease to release).
        counters.lock(conn, session_id)
    params = {"sid": session_id, "token": token if token is not None else -1}
    params["any"] = 1 if token is None else 0
    if conn.execute(_RELEASE, params).rowcount != 1:
        return False
    conn.execute(_MIRROR, {"sid": session_id, "token": None})
    return True


def lease_info(conn: Any, session_id: str, now: datetime) -> LeaseInfo | None:
    """Return the session's lease row, or ``None`` if it was never leased."""
    form, params = _params(conn, now, sid=session_id)
    row = conn.execute(_ROW[form], params).fetchone()
    return None if row is None else _info(row)


def list_leases(conn: Connection, now: datetime) -> list[LeaseInfo]:
    """Return every lease row (held, expired or released), ordered by session id."""
    form, params = _params(conn, now)
    return [_info(row) for row in conn.execute(_ALL[form], params)]


def allows(info: LeaseInfo | None, fence: Any) -> bool:
    """Whether a create by ``fence`` (``None``: no lease) passes the lease ``info``."""
    if fence is None:
        return info is None or not info.live
    return info is not None and info.owner is not None and info.token == fence.token


def leases_of(conn: Any, session_ids: list[str], now: datetime) -> dict[str, LeaseInfo]:
    """The lease rows of these sessions, by session id (a group of creates checks them)."""
    if not session_ids:
        return {}
    postgres = _pg(conn)
    ids = session_ids if postgres else orjson.dumps(session_ids).decode()
    form, params = _params(conn, now, ids=ids)
    return {row[0]: _info(row) for row in conn.execute(_SOME[form], params)}


def _info(row: Any) -> LeaseInfo:
    return LeaseInfo(
        session_id=row[0],
        owner=row[1],
        token=int(row[2]),
        acquired_at=_when(row[3]),
        renewed_at=_when(row[4]),
        expires_at=_when(row[5]),
        duration=float(row[6]),
        live=bool(row[7]),
    )


def check(conn: Any, session_id: str, fence: Any, now: datetime) -> None:
    """Check, in the caller's write transaction, that ``fence`` may write the session.

    For every write but a create (whose ``INSERT`` carries the check, see
    :func:`insert_guard`). On PostgreSQL the session's row is locked first.

    Args:
        conn: A connection in a write transaction.
        session_id: The session about to be written.
        fence: ``None`` (an anonymous writer: refused while anyone holds a live lease),
            a lease holder's fence (``token`` and ``duration`` attributes: refused
            unless its token is still current; the lease is renewed), or
            :data:`FORCE` (no check).
        now: The host's clock (SQLite).

    Raises:
        SessionLeasedError: Another holder's lease is live.
        LeaseLostError: ``fence``'s token is no longer the session's current one.
    """
    if fence is FORCE:
        return
    if _pg(conn):
        counters.lock(conn, session_id)
    if fence is not None:
        if renew(conn, session_id, fence.token, fence.duration, now) is None:
            raise lost(conn, session_id, fence.token, now)
        return
    info = lease_info(conn, session_id, now)
    if info is not None and info.live:
        raise leased(info)


def leased(info: LeaseInfo) -> SessionLeasedError:
    """The error for a write refused by ``info``'s live lease."""
    return SessionLeasedError(info.session_id, info.owner or "", info.token, info.expires_at)  # type: ignore[arg-type]


def lost(conn: Any, session_id: str, token: int, now: datetime) -> LeaseLostError:
    """The error for a holder of ``token`` whose lease is gone (naming who has it now)."""
    info = lease_info(conn, session_id, now)
    if info is None:
        return LeaseLostError(session_id, token)
    return LeaseLostError(session_id, token, info.token, info.owner if info.live else None)


def refusal(conn: Any, session_id: str, fence: Any, now: datetime) -> Exception:
    """Why a guarded create inserted nothing (called in the same transaction)."""
    if fence is not None:
        return lost(conn, session_id, fence.token, now)
    info = lease_info(conn, session_id, now)
    if info is not None and info.live:
        return leased(info)
    # The guard and this read see the same state (SQLite's write lock, PostgreSQL's
    # row lock and transaction-wide now()): unreachable unless the table was edited.
    return DatabaseError(f"a create in {session_id!r} was refused, but no live lease was found")


_MIRROR_OFF = text(
    "SELECT count(*) FROM sessions s WHERE coalesce(s.lease_token, -1) <> "
    f"coalesce({counters.HELD_TOKEN_SQL.format(sid='s.session_id')}, -1)"
)


def mirrors_out_of_step(conn: Connection) -> int:
    """How many sessions' ``lease_token`` differs from the lease held on them (``doctor``).

    Only a hand edit of ``leases`` or ``sessions`` makes one: it is safe (PostgreSQL's
    one-statement create then falls back to the full create) but slow.
    """
    return int(conn.execute(_MIRROR_OFF).scalar_one())


def insert_guard(postgres: bool, held: bool) -> Any:
    """The condition a create's ``INSERT ... SELECT`` carries (``:sid``, ``:token``, ``:now``).

    Args:
        postgres: Compare with ``now()`` rather than the bound ``:now``.
        held: The writer holds a lease (its ``:token`` must still be current), else it
            must find no live lease.
    """
    same = _l.session_id == bindparam("session_id")
    if held:
        return exists().where(same, _l.token == bindparam("token"), _l.owner.is_not(None))
    now = func.now() if postgres else bindparam("created_at", type_=UTCDateTime())
    return ~exists().where(same, _l.owner.is_not(None), _l.expires_at > now)


__all__ = [
    "FORCE",
    "LeaseInfo",
    "acquire",
    "check",
    "insert_guard",
    "lease_info",
    "list_leases",
    "mirrors_out_of_step",
    "release",
    "renew",
]
