"""The PostgreSQL engine: pool options, session settings, schema isolation, errors."""

from __future__ import annotations

import pytest

from breakpilot_store import (
    CheckpointManager,
    CheckpointStore,
    CheckpointTypeError,
    CheckpointValueError,
    ReadOnlyStoreError,
    StoreBusyError,
    StoreUnavailableError,
)
from tests.pg_support import raw_postgres, with_schema


def pid_of(store: CheckpointStore) -> int:
    return store.execute_read("SELECT pg_backend_pid()")[0][0]


def setting(store: CheckpointStore, name: str) -> str:
    return store.execute_read(f"SHOW {name}")[0][0]


# -- settings -------------------------------------------------------------------------


def test_defaults_read_committed_lock_timeout_no_prepared_statements(pg_url) -> None:
    with CheckpointStore(pg_url, busy_timeout=2.5, pool_size=1, max_overflow=0) as store:
        assert setting(store, "transaction_isolation") == "read committed"
        assert setting(store, "lock_timeout") == "2500ms"
        assert setting(store, "application_name") == "breakpilot-store"
        m = CheckpointManager("s", store=store)
        for i in range(20):  # far beyond psycopg's default prepare_threshold (5)
            m.create("n", {"i": i})
            m.get_latest()
        # One pooled connection did all of it, and it holds no prepared statement.
        assert store.execute_read("SELECT count(*) FROM pg_prepared_statements") == [(0,)]
        raw = store.engine.raw_connection()
        try:
            assert raw.driver_connection.prepare_threshold is None
        finally:
            raw.close()


def test_statement_timeout_cancels_and_raises_busy(pg_url) -> None:
    CheckpointStore(pg_url).close()  # the schema exists: this is about agents' calls
    with CheckpointStore(pg_url, statement_timeout=0.05) as store:
        assert setting(store, "statement_timeout") == "50ms"
        with pytest.raises(StoreBusyError, match="statement_timeout"):
            store.execute_read("SELECT pg_sleep(30)")
        assert store.count("s") == 0  # the pool recovered


def test_migrations_are_not_bound_by_statement_timeout(pg_url, monkeypatch) -> None:
    from alembic import command

    real_upgrade = command.upgrade

    def slow_upgrade(config, target):  # a migration statement slower than the timeout
        config.attributes["connection"].exec_driver_sql("SELECT pg_sleep(0.3)")
        real_upgrade(config, target)

    monkeypatch.setattr(command, "upgrade", slow_upgrade)
    with CheckpointStore(pg_url, statement_timeout=0.05) as store:
        assert setting(store, "statement_timeout") == "50ms"
        assert store.create("s", "n", {}).id == "s:1"


def test_busy_timeout_becomes_lock_timeout(pg_url) -> None:
    with CheckpointStore(pg_url, busy_timeout=0.05) as store:
        CheckpointManager("s", store=store).create("n", {})
        holder = raw_postgres(pg_url)
        try:
            holder.execute("UPDATE sessions SET base_seq = base_seq WHERE session_id = 's'")
            with pytest.raises(StoreBusyError, match="lock_timeout"):
                store.create("s", "blocked", {})
        finally:
            holder.rollback()
            holder.close()
        assert store.create("s", "after", {}).id == "s:2"  # nothing was written


def test_readonly_transactions_are_refused_by_the_server(pg_url) -> None:
    CheckpointStore(pg_url).close()
    with CheckpointStore(pg_url, readonly=True) as store:
        assert setting(store, "default_transaction_read_only") == "on"
        with pytest.raises(ReadOnlyStoreError):
            store.create("s", "n", {})
        # Even SQL that slips past the store's own check is refused by PostgreSQL.
        with pytest.raises(ReadOnlyStoreError):
            store.execute_read("DELETE FROM sessions")


def test_pgbouncer_mode_sets_everything_per_transaction(pg_base_url, pg_schema) -> None:
    with CheckpointStore(
        pg_base_url, schema=pg_schema, pgbouncer=True, busy_timeout=3, statement_timeout=4
    ) as store:
        assert CheckpointManager("s", store=store).create("n", {"a": 1}).id == "s:1"
        assert setting(store, "search_path") == pg_schema
        assert setting(store, "lock_timeout") == "3s"
        assert setting(store, "statement_timeout") == "4s"
        # Nothing is set for the session: outside a transaction the server's defaults
        # apply, so a server connection shared through PgBouncer carries nothing over.
        raw = store.engine.raw_connection()
        try:
            driver = raw.driver_connection
            driver.rollback()
            driver.autocommit = True
            row = driver.execute(
                "SELECT current_setting('lock_timeout'), current_setting('search_path')"
            ).fetchone()
            assert row[0] == "0" and row[1] != pg_schema
            driver.autocommit = False
        finally:
            raw.close()


# -- pool -------------------------------------------------------------------------------


def test_pool_options_take_effect(pg_url) -> None:
    with CheckpointStore(
        pg_url, pool_size=2, max_overflow=0, pool_timeout=0.2, pool_recycle=600
    ) as store:
        pool = store.engine.pool
        assert pool.size() == 2 and pool._max_overflow == 0 and pool._recycle == 600
        held = [store.engine.connect() for _ in range(2)]
        try:
            # Both connections are out and no overflow is allowed: the store says busy.
            with pytest.raises(StoreBusyError, match="pool"):
                store.count("s")
        finally:
            for conn in held:
                conn.close()
        assert store.count("s") == 0


def test_pre_ping_replaces_a_connection_the_server_dropped(pg_url, pg_admin) -> None:
    with CheckpointStore(pg_url, pool_size=1, max_overflow=0) as store:
        before = pid_of(store)
        pg_admin.execute("SELECT pg_terminate_backend(%s)", (before,))
        assert store.count("s") == 0  # pre-ping noticed and reconnected
        assert pid_of(store) != before


def test_without_pre_ping_a_dropped_connection_surfaces(pg_url, pg_admin) -> None:
    with CheckpointStore(pg_url, pool_size=1, max_overflow=0, pool_pre_ping=False) as store:
        pg_admin.execute("SELECT pg_terminate_backend(%s)", (pid_of(store),))
        with pytest.raises(StoreUnavailableError):
            store.count("s")
        assert store.count("s") == 0  # the pool replaced the dead connection


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"pool_sise": 3}, CheckpointValueError),
        ({"pool_size": 0}, CheckpointValueError),
        ({"pool_size": "5"}, CheckpointTypeError),
        ({"max_overflow": -1}, CheckpointValueError),
        ({"statement_timeout": -1}, CheckpointValueError),
        ({"pool_pre_ping": "yes"}, CheckpointTypeError),
        ({"schema": "Has Space"}, CheckpointValueError),
        ({"schema": "x; DROP TABLE t"}, CheckpointValueError),
        ({"schema": 5}, CheckpointTypeError),
    ],
)
def test_bad_options_are_refused(pg_url, options, error) -> None:
    with pytest.raises(error):
        CheckpointStore(pg_url, **options)


def test_only_the_psycopg_driver(pg_base_url, pg_url) -> None:
    with pytest.raises(CheckpointValueError, match="psycopg"):
        CheckpointStore(pg_base_url.replace("+psycopg", "+psycopg2", 1))
    # A libpq-style postgresql:// URL means psycopg 3.
    with CheckpointStore(pg_url.replace("+psycopg", "", 1)) as store:
        assert store.engine.dialect.driver == "psycopg"
        assert store.create("s", "n", {}).id == "s:1"


def test_unreachable_server_is_a_typed_error() -> None:
    with pytest.raises(StoreUnavailableError, match="cannot be reached"):
        CheckpointStore("postgresql+psycopg://postgres@127.0.0.1:1/test", connect_timeout=2)


# -- schemas ----------------------------------------------------------------------------


def test_schema_option_isolates_two_deployments(pg_base_url, pg_admin, request) -> None:
    from tests.pg_support import drop_schema, unique_schema

    a, b = unique_schema("a"), unique_schema("b")
    request.addfinalizer(lambda: [drop_schema(pg_base_url, s) for s in (a, b)])
    with CheckpointStore(pg_base_url, schema=a) as sa, CheckpointStore(pg_base_url, schema=b) as sb:
        CheckpointManager("agent", store=sa).create("in-a", {"where": "a"})
        mb = CheckpointManager("agent", store=sb)
        mb.create("in-b", {"where": "b"})
        mb.create("in-b", {"where": "b"})
        assert [c.name for c in CheckpointManager("agent", store=sa).get_all()] == ["in-a"]
        assert [c.id for c in mb.get_all()] == ["agent:1", "agent:2"]
        assert [s.checkpoints for s in sa.list_sessions()] == [1]
        assert [s.checkpoints for s in sb.list_sessions()] == [2]
    # An operator sees each deployment's tables in its own schema, and none in public.
    for schema, names in ((a, ["in-a"]), (b, ["in-b", "in-b"])):
        rows = pg_admin.execute(f"SELECT name FROM {schema}.checkpoints ORDER BY seq")
        assert [r[0] for r in rows] == names
    assert pg_admin.execute("SELECT to_regclass('public.checkpoints')").fetchone() == (None,)


def test_url_search_path_works_and_schema_option_overrides_it(
    pg_url, pg_schema, pg_base_url, fresh_schema_name, pg_admin
) -> None:
    with CheckpointStore(pg_url) as store:  # ?options=-csearch_path=<pg_schema>
        assert setting(store, "search_path") == pg_schema
        CheckpointManager("s", store=store).create("n", {})
    with CheckpointStore(pg_url, schema=fresh_schema_name) as store:
        assert setting(store, "search_path") == fresh_schema_name
        assert store.list_sessions() == []
    assert pg_admin.execute(f"SELECT count(*) FROM {pg_schema}.checkpoints").fetchone() == (1,)
    # Other libpq options in the URL are kept alongside the store's.
    url = with_schema(pg_base_url, pg_schema).replace(
        "options=-csearch_path", "options=-cwork_mem%3D8MB+-csearch_path"
    )
    with CheckpointStore(url) as store:
        assert setting(store, "work_mem") == "8MB"
        assert setting(store, "search_path") == pg_schema
        assert store.count("s") == 1


@pytest.mark.parametrize(
    ("schema", "match"),
    [
        ('we"ird', "lower-case identifier"),
        ("semi;colon", "lower-case identifier"),
        ("Upper", "lower-case identifier"),
        ("x" * 64, "lower-case identifier"),
        ("", "lower-case identifier"),
        ("\ud800", "lower-case identifier"),
        ("pg_catalog", "one of PostgreSQL's own"),
        ("pg_mine", "one of PostgreSQL's own"),
        ("information_schema", "one of PostgreSQL's own"),
    ],
)
def test_bad_schema_names_are_refused_before_any_io(pg_base_url, pg_admin, schema, match) -> None:
    """Found by hand: ``schema="pg_catalog"`` reached the server ("unacceptable schema
    name"), and ``information_schema`` would have taken the store's tables."""
    where = "SELECT schemaname FROM pg_tables WHERE tablename = 'checkpoints' ORDER BY 1"
    before = pg_admin.execute(where).fetchall()
    with pytest.raises(CheckpointValueError, match=match):
        CheckpointStore(pg_base_url, schema=schema)
    assert pg_admin.execute(where).fetchall() == before


def test_a_nul_in_the_connection_settings_is_refused_not_cut(pg_base_url, pg_admin) -> None:
    """Found by our hostile round 5: libpq cuts a parameter at a NUL, and the startup
    options after it (``search_path``, the timeouts) were lost: with ``schema=`` the store
    created its tables in ``public`` and wrote there. Also untyped before: NaN or
    infinite timeouts, a timeout PostgreSQL cannot take (read as "cannot be reached"),
    and a ``pgbouncer`` that is not a bool (the string "false" turned it on)."""
    from tests.pg_support import unique_schema

    schema = unique_schema("nul")
    password = pg_base_url.replace("postgres@", "postgres:x%00y@", 1)
    where = "SELECT schemaname FROM pg_tables WHERE tablename = 'checkpoints' ORDER BY 1"
    before = pg_admin.execute(where).fetchall()
    cases = [
        (pg_base_url, {"application_name": "a\x00b"}, CheckpointValueError, "application_name"),
        (pg_base_url + "?application_name=a%00b", {}, CheckpointValueError, "URL parameter"),
        (password, {}, CheckpointValueError, "password"),
        (pg_base_url, {"statement_timeout": float("nan")}, CheckpointValueError, "0 to"),
        (pg_base_url, {"statement_timeout": float("inf")}, CheckpointValueError, "0 to"),
        (pg_base_url, {"busy_timeout": 1e12}, CheckpointValueError, "PostgreSQL's longest"),
        (pg_base_url, {"pgbouncer": "false"}, CheckpointTypeError, "pgbouncer must be a bool"),
        (pg_base_url, {"application_name": 5}, CheckpointTypeError, "application_name"),
    ]
    for url, kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            CheckpointStore(url, schema=schema, **kwargs)
    assert pg_admin.execute(where).fetchall() == before  # nothing made, in public or not
