"""The one ``MetaData`` and the Core tables: the only DDL source besides the migrations.

The migrations in ``migrations/versions`` create exactly these tables (a test runs
``alembic check`` to prove the two agree). Views are created by the migrations only.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    cast,
    text,
    type_coerce,
)
from sqlalchemy.types import UserDefinedType

#: Deterministic constraint names, so migrations can name what they alter or drop.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

_orjson_dumps = orjson.dumps

#: Width of a stored SQLite timestamp: ``2026-11-24T04:47:09.123456+00:00``.
TIMESTAMP_WIDTH = 32


def to_text(value: datetime) -> str:
    """Render an aware datetime as the fixed-width UTC text stored in SQLite.

    Fixed width and one zone make text order equal time order, so ``created_at``
    compares and sorts correctly as plain text (and in the ``sqlite3`` shell).
    """
    if value.tzinfo is not timezone.utc:  # the store's own clock is UTC already
        value = value.astimezone(timezone.utc)
    if value.microsecond:
        # orjson writes the same text as isoformat(timespec="microseconds") when there
        # are microseconds (it drops a zero fraction), in a third of the time: this
        # runs on every create.
        return _orjson_dumps(value)[1:-1].decode()
    return value.isoformat(timespec="microseconds")


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC timestamp: fixed-width ISO-8601 text on SQLite, TIMESTAMPTZ elsewhere."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:  # noqa: D102
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(TIMESTAMP_WIDTH))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:  # noqa: D102
        if value is None:
            return None
        if dialect.name == "sqlite":
            return to_text(value)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:  # noqa: D102
        return None if value is None else stored_time(value)


def stored_time(value: Any, what: str = "a stored timestamp") -> datetime:
    """A stored timestamp as an aware UTC datetime: SQLite's text, PostgreSQL's value.

    Text without an offset (SQLite's own ``datetime('now')``, say) is read as UTC, as
    SQLite writes it.

    Raises:
        CorruptDatabaseError: A value that is no timestamp (written by hand), naming
            ``what``.
    """
    if type(value) is str:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None:
            if moment.tzinfo is timezone.utc:  # the store's own text
                return moment
            if moment.tzinfo is None:
                return moment.replace(tzinfo=timezone.utc)
            return moment.astimezone(timezone.utc)
    elif isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value if value.tzinfo is timezone.utc else value.astimezone(timezone.utc)
    from .errors import CorruptDatabaseError  # (schema is imported before errors is needed)

    raise CorruptDatabaseError(
        f"{what} is not a timestamp ({_short_repr(value)}); it was not written by this "
        "store: `breakpilot-store doctor` lists such rows"
    )


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class PGJSONText(UserDefinedType[str]):
    """PostgreSQL ``JSON`` that travels as text: the driver never parses or builds it.

    ``JSON``, not ``JSONB``: JSONB refuses ``\u0000`` in strings, turns ``-0.0`` into
    ``0`` and ``1e308`` into a 309-digit integer, and reorders keys; ``JSON`` keeps the
    codec's exact text. Values are bound as text and cast to JSON in SQL, and read back
    cast to TEXT, so psycopg's own JSON (de)serialisation never runs.
    """

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:  # noqa: D102
        return "JSON"

    def bind_expression(self, bindvalue: Any) -> Any:  # noqa: D102
        return cast(type_coerce(bindvalue, Text), self)

    def column_expression(self, colexpr: Any) -> Any:  # noqa: D102
        return cast(colexpr, Text)


class JSONText(TypeDecorator[str]):
    """A JSON document carried as text that the codec already validated and encoded.

    On SQLite it is TEXT, readable with ``json_extract`` and ``->>``; on PostgreSQL it
    is ``JSON`` (see :class:`PGJSONText`), readable with ``->>``. The driver never
    (de)serialises it: the codec owns the exact round trip.
    """

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:  # noqa: D102
        if dialect.name == "postgresql":
            return dialect.type_descriptor(PGJSONText())
        return dialect.type_descriptor(Text())


#: Seqs and counters: SQLite's INTEGER is already 64-bit; PostgreSQL's ``integer`` is
#: 32-bit, so there it is ``bigint`` (an import may keep a seq beyond 2**31).
SEQ = Integer().with_variant(BigInteger(), "postgresql")

#: Ids and names: on PostgreSQL with the "C" collation, so they sort by code point as on
#: SQLite (whatever the database's locale) and prefix searches can use the index.
KEY = Text().with_variant(Text(collation="C"), "postgresql")

#: One row per session: the *base* its creates count from. A plain ``create`` only
#: inserts into ``checkpoints`` (a row write here would be one more B-tree page in
#: every commit, measured at ~20% of a create); every other write (clear, import,
#: compression, the retention step of a create) first folds the creates made since
#: into the base. So, with ``top`` the highest seq held above ``base_seq``:
#: last seq handed out = ``coalesce(top, base_seq)``, checkpoints held =
#: ``base_count + coalesce(top, base_seq) - base_seq``, last write = the created_at of
#: that top row, else ``base_at`` (the view ``session_overview`` shows these).
sessions = Table(
    "sessions",
    metadata,
    Column("session_id", KEY, primary_key=True),
    # The highest seq handed out when the row was last written: with the seqs above
    # it, the session's counter (ids are never reused, even after deletes).
    Column("base_seq", SEQ, nullable=False),
    # How many checkpoints the session held then; creates since add one each, so
    # retention never needs a COUNT(*) over the session.
    Column("base_count", SEQ, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    # When the row was last written (the last write that was not a plain create).
    Column("base_at", UTCDateTime, nullable=False),
    # The fencing token of the lease held on the session, NULL while none is held
    # (revision 0006): a mirror of ``leases`` (token where owner is set), written in
    # the same transaction by every acquisition and release (core/leases.py). Lease
    # changes thereby lock and rewrite this row, which PostgreSQL's one-statement
    # create re-reads at its newest version after waiting for the lock: that is how
    # it sees an acquisition that committed while it waited (repository.PG_CREATE).
    Column("lease_token", SEQ, nullable=True),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column(
        "session_id",
        KEY,
        ForeignKey("sessions.session_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", SEQ, primary_key=True, autoincrement=False),
    Column("name", KEY, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("data", JSONText, nullable=False),
    Column("metadata", JSONText, nullable=False),
    # The original id of a checkpoint imported from another session.
    Column("origin_id", KEY, nullable=True),
    Index(None, "session_id", "name", "seq"),
    # No index on (session_id, created_at): it cost every create one more B-tree page
    # (~8%, benchmarks/), for time filters that read a session's rows in seq order.
    # Makes a repeated import of the same foreign checkpoint findable (and unique).
    # Partial: only imported rows carry an origin_id, so an ordinary create does not
    # pay for this index at all (one B-tree fewer to update per commit).
    Index(
        None,
        "session_id",
        "origin_id",
        unique=True,
        sqlite_where=text("origin_id IS NOT NULL"),
        # The migration also gives PostgreSQL the WHERE clause. It is not repeated
        # here: a postgresql_* keyword makes SQLAlchemy import that dialect (and
        # asyncio), ~25 ms on every agent's cold start; alembic does not compare it.
    ),
)

#: One row per session that was ever leased (revision 0003). Kept when the lease is
#: released (``owner`` and ``expires_at`` go NULL) and when the session is deleted, so the
#: fencing token only ever grows: a holder that lost the lease can never see its token
#: become current again. Separate from ``sessions`` so that checking or renewing a lease
#: never writes the counter's base row (creates do not write it, see
#: ``core/counters.py``); only acquisition and release do, to set its ``lease_token``.
leases = Table(
    "leases",
    metadata,
    Column("session_id", KEY, primary_key=True),
    # Who holds it (``host:pid`` by default); NULL once released.
    Column("owner", KEY, nullable=True),
    # The fencing token: one more at every acquisition.
    Column("token", SEQ, nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("renewed_at", UTCDateTime, nullable=False),
    # ``renewed_at`` plus the lease's duration; NULL once released.
    Column("expires_at", UTCDateTime, nullable=True),
    # The duration the holder asked for, in seconds (renewals extend by it).
    Column("duration", Float, nullable=False),
)

#: A LangGraph (thread, namespace) held in a session (revision 0004): the exact mapping
#: both ways, so a thread's sessions are found by ``thread_id`` and a session that is
#: not a LangGraph thread is never read as one. Gone with its session (cascade).
langgraph_threads = Table(
    "langgraph_threads",
    metadata,
    Column(
        "session_id",
        KEY,
        ForeignKey("sessions.session_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("thread_id", KEY, nullable=False),
    Column("checkpoint_ns", KEY, nullable=False),
    Index(None, "thread_id", "checkpoint_ns", unique=True),
)

#: LangGraph's pending writes (revision 0004): the writes of the tasks of a checkpoint's
#: next step, keyed by the checkpoint's LangGraph id (its ``name`` in ``checkpoints``).
#: Keyed by name, not seq: LangGraph may send a checkpoint's writes before its ``put``
#: has committed (durability "async"). ``idx`` is negative for the special channels
#: (``WRITES_IDX_MAP``). ``value`` is tagged JSON (breakpilot_store.langgraph.values).
langgraph_writes = Table(
    "langgraph_writes",
    metadata,
    Column(
        "session_id",
        KEY,
        ForeignKey("sessions.session_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("checkpoint_id", KEY, primary_key=True),
    Column("task_id", KEY, primary_key=True),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("channel", KEY, nullable=False),
    Column("value", JSONText, nullable=False),
    Column("task_path", KEY, nullable=False, server_default=""),
    # Revision 0007: on SQLite the primary key's B-tree is the table (one B-tree per
    # write instead of two).
    sqlite_with_rowid=False,
)

#: The views the migrations create for people at the sqlite3/psql prompt.
VIEW_NAMES = ("session_overview", "checkpoint_overview")

# -- Google ADK sessions (revision 0005) ------------------------------------------------
# An ADK session's events are ``checkpoints`` rows of the store session named in
# ``store_session_id`` (see breakpilot_store/adk); these tables hold what has no place
# there: the session's own state, and the app- and user-scoped state ADK shares across
# sessions. States are JSON objects as text, like ``checkpoints.data``.

#: One row per ADK session: its key, its state and its revision (stale-writer check).
adk_sessions = Table(
    "adk_sessions",
    metadata,
    Column("app_name", KEY, primary_key=True),
    Column("user_id", KEY, primary_key=True),
    Column("session_id", KEY, primary_key=True),
    # The store session holding the events; deleting it (CLI ``delete``/``prune``)
    # deletes this row too.
    Column(
        "store_session_id",
        KEY,
        ForeignKey("sessions.session_id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("state", JSONText, nullable=False),
    Column("create_time", UTCDateTime, nullable=False),
    # The timestamp of the last event appended (ADK's ``last_update_time``).
    Column("update_time", UTCDateTime, nullable=False),
    # Bumped by every append: with update_time, the marker a loaded session carries.
    Column("revision", SEQ, nullable=False, server_default="0"),
)

#: ``app:`` state, shared by every session of an app.
adk_app_states = Table(
    "adk_app_states",
    metadata,
    Column("app_name", KEY, primary_key=True),
    Column("state", JSONText, nullable=False),
    Column("update_time", UTCDateTime, nullable=False),
)

#: ``user:`` state, shared by every session of one user of an app.
adk_user_states = Table(
    "adk_user_states",
    metadata,
    Column("app_name", KEY, primary_key=True),
    Column("user_id", KEY, primary_key=True),
    Column("state", JSONText, nullable=False),
    Column("update_time", UTCDateTime, nullable=False),
)
