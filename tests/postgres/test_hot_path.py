"""PostgreSQL's hot path (postgres/fastpath.py): create, get and get_latest in one
statement each, on per-thread connections, with every guarantee of the full path."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from breakpilot_store import CheckpointManager, CheckpointStore
from breakpilot_store.errors import (
    BreakpilotStoreError,
    ReadOnlyStoreError,
    StoreClosedError,
    StoreUnavailableError,
)
from tests.pg_support import raw_postgres, with_schema
from tests.postgres.test_concurrency import PROCESSES, run_together, seqs


def overview(pg_raw, session: str) -> list[tuple]:
    return pg_raw(
        "SELECT last_seq, checkpoints FROM session_overview WHERE session_id = %s", (session,)
    )


@pytest.mark.parametrize("pgbouncer", [False, True], ids=["direct", "pgbouncer"])
def test_creates_and_reads_in_the_schema_option(pg_base_url, pg_schema, pgbouncer) -> None:
    with CheckpointStore(pg_base_url, schema=pg_schema, pgbouncer=pgbouncer) as store:
        mgr = CheckpointManager("s:1", store=store)  # a ':' inside the session id
        made = [mgr.create("step", {"i": i, "t": "ü"}) for i in range(5)]
        assert [c.id for c in made] == [f"s:1:{i}" for i in range(1, 6)]
        latest = store.get_latest("s:1")
        assert latest is not None and latest.id == "s:1:5" and latest.data == {"i": 4, "t": "ü"}
        assert latest.timestamp == made[-1].timestamp
        assert store.get("s:1:2").data == {"i": 1, "t": "ü"}
        assert store.get("s:1:9") is None and store.get_latest("other") is None
        assert store.get_latest("s:1", name="missing") is None
    # What an operator sees in that schema, through a separate connection.
    raw = raw_postgres(with_schema(pg_base_url, pg_schema))
    try:
        rows = raw.execute(
            "SELECT seq, data ->> 'i' FROM checkpoints WHERE session_id = 's:1' ORDER BY seq"
        ).fetchall()
        assert rows == [(i + 1, str(i)) for i in range(5)]
        # The session's row is the exact counter after every hot create.
        assert raw.execute("SELECT base_seq, base_count FROM sessions").fetchall() == [(5, 5)]
    finally:
        raw.close()


def test_retention_runs_in_the_creates_transaction(pg_url, pg_raw, tmp_path) -> None:
    # The same creates on SQLite (the reference) and PostgreSQL keep the same seqs.
    with CheckpointStore(pg_url) as store, CheckpointStore(tmp_path / "ref.db") as ref:
        mgr = CheckpointManager("r", store=store, compress_after=6, max_checkpoints=8)
        ref_mgr = CheckpointManager("r", store=ref, compress_after=6, max_checkpoints=8)
        for i in range(1, 41):
            cp = mgr.create(f"n{i % 3}", {"i": i})
            ref_mgr.create(f"n{i % 3}", {"i": i})
            assert cp.id == f"r:{i}"
            # After every create (committed on its own), the rule already holds.
            held = [r[0] for r in pg_raw("SELECT seq FROM checkpoints ORDER BY seq")]
            assert held == [int(c.id.rsplit(":", 1)[1]) for c in ref.list_checkpoints("r")]
            assert len(held) <= 8 and held[-1] == i and held[0] == 1
            assert overview(pg_raw, "r") == [(i, len(held))]


def test_a_writer_that_does_not_rebase_the_row_is_never_collided_with(pg_url, pg_raw) -> None:
    # An older version of the store inserts above the row's base without rebasing it
    # (the full path below does exactly that). Hot creates interleaved with it must
    # neither reuse its seqs nor leave gaps.
    from breakpilot_store.core import repository as repo

    with CheckpointStore(pg_url) as store:
        mgr = CheckpointManager("m", store=store, compress_after=10**9, max_checkpoints=10**9)
        ids = []
        for i in range(12):
            if i % 3 == 1:
                seq = store.run(
                    lambda conn, i=i: repo.create_checkpoint(
                        conn,
                        "m",
                        "old",
                        time_now(),
                        f'{{"i": {i}}}',
                        "{}",
                        compress_after=None,
                        max_checkpoints=None,
                        row_lock=True,
                    ),
                    write=True,
                )
                ids.append(f"m:{seq}")
            else:
                ids.append(mgr.create("new", {"i": i}).id)
        assert ids == [f"m:{n}" for n in range(1, 13)]
    assert pg_raw("SELECT count(*), max(seq) FROM checkpoints") == [(12, 12)]
    assert overview(pg_raw, "m") == [(12, 12)]


def time_now():
    from datetime import datetime

    return datetime.now(timezone.utc)


def _hot_connection(store: CheckpointStore):
    """The calling thread's connection on the store's PostgreSQL hot path."""
    with store._pg._using() as conn:
        return conn


def test_threads_each_get_their_own_connection(pg_url, pg_raw) -> None:
    with CheckpointStore(pg_url, pool_size=1, max_overflow=0) as store:
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                mgr = CheckpointManager("t", store=store, compress_after=10**9)
                for i in range(20):
                    mgr.create("x", {"n": n, "i": i})
                    assert mgr.get_latest() is not None
                    assert store.count("t") >= 1  # a Core path beside it, pool of one
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
    assert pg_raw("SELECT count(*), min(seq), max(seq) FROM checkpoints") == [(80, 1, 80)]


def test_a_dropped_connection_is_replaced(pg_url, pg_admin) -> None:
    with CheckpointStore(pg_url) as store:
        mgr = CheckpointManager("d", store=store)
        mgr.create("a", {"x": 1})
        pid = _hot_connection(store).info.backend_pid  # the hot path's own connection
        pg_admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # A read right after is sent again on a new connection.
        assert mgr.get_latest().data == {"x": 1}
        new_pid = _hot_connection(store).info.backend_pid
        assert new_pid != pid
        pg_admin.execute("SELECT pg_terminate_backend(%s)", (new_pid,))
        deadline = time.monotonic() + 10
        while pg_admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (new_pid,)
        ).fetchone()[0]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # Once the server has closed it, the check before use notices: the create works.
        assert mgr.create("b", {"x": 2}).id == "d:2"


def test_prepared_only_on_direct_connections(pg_base_url, pg_schema) -> None:
    for pgbouncer, expected in ((False, True), (True, False)):
        with CheckpointStore(pg_base_url, schema=pg_schema, pgbouncer=pgbouncer) as store:
            mgr = CheckpointManager("p", store=store)
            mgr.create("a", {})
            mgr.get_latest()
            mgr.get("p:1")
            conn = _hot_connection(store)
            prepared = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0]
            assert (prepared >= 2) is expected, (pgbouncer, prepared)
            if not expected:
                assert prepared == 0


def test_the_create_is_prepared_again_when_the_server_forgot_it(pg_url) -> None:
    # The create runs below psycopg's cursor (postgres/direct.py), prepared under a name
    # of its own; psycopg deallocates ALL of a connection's statements after some
    # commands (a ROLLBACK once it prepared any), and an operator may too.
    with CheckpointStore(pg_url) as store:
        mgr = CheckpointManager("dealloc", store=store)
        assert mgr.create("a", {"x": 1}).id == "dealloc:1"
        conn = _hot_connection(store)
        names = "SELECT name FROM pg_prepared_statements WHERE name LIKE '\\_bp\\_%'"
        assert conn.execute(names).fetchall()  # the create's own statement
        conn.execute("DEALLOCATE ALL")
        assert mgr.create("b", {"x": 2}).id == "dealloc:2"
        assert _hot_connection(store) is conn  # the same connection, prepared again
        assert conn.execute(names).fetchall()
        assert [c.data for c in mgr.get_all()] == [{"x": 1}, {"x": 2}]


def test_the_cursor_serves_the_create_when_psycopg_lacks_the_direct_parts(
    pg_url, monkeypatch
) -> None:
    # direct.py uses psycopg's generators and Connection.wait, which psycopg does not
    # document; if a release moves them, the create must go through the cursor instead.
    from breakpilot_store.postgres import direct

    sent: list[object] = []
    monkeypatch.setattr(direct, "AVAILABLE", False)
    monkeypatch.setattr(direct.DirectStatement, "execute", lambda *a: sent.append(a))
    with CheckpointStore(pg_url) as store:
        mgr = CheckpointManager("nodirect", store=store)
        assert [mgr.create(f"c{i}", {"i": i}).id for i in range(3)] == [
            "nodirect:1",
            "nodirect:2",
            "nodirect:3",
        ]
        assert [c.data for c in mgr.get_all()] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert sent == []


def test_direct_statements_number_each_name_once() -> None:
    from breakpilot_store.postgres.direct import DirectStatement

    statement = DirectStatement("SELECT %(a)s, %(b)s, 100%% WHERE x = %(a)s")
    assert statement.query == b"SELECT $1, $2, 100% WHERE x = $1"
    assert statement.params == ("a", "b")


def test_readonly_and_closed(pg_url) -> None:
    with CheckpointStore(pg_url) as store:
        CheckpointManager("o", store=store).create("a", {"v": 1})
    with CheckpointStore(pg_url, readonly=True) as ro:
        assert ro.get_latest("o").data == {"v": 1}
        with pytest.raises(ReadOnlyStoreError):
            ro.create("o", "b", {})
    with pytest.raises(StoreClosedError):
        ro.get_latest("o")
    with pytest.raises(StoreClosedError):
        ro.create("o", "b", {})


def test_timestamps_are_utc_whatever_the_server_zone(pg_base_url, pg_schema) -> None:
    url = with_schema(pg_base_url, pg_schema).replace(
        f"search_path%3D{pg_schema}", f"search_path%3D{pg_schema}+-cTimeZone%3DAsia%2FTokyo"
    )
    with CheckpointStore(url) as store:
        made = store.create("z", "a", {})
        for found in (store.get_latest("z"), store.get("z:1")):
            assert found.timestamp == made.timestamp
            assert found.timestamp.tzinfo is timezone.utc


def test_eight_processes_one_session_through_pgbouncer_mode(pg_base_url, pg_schema) -> None:
    n = 60
    results = run_together([[pg_base_url, "shared", str(n), pg_schema, "pgbouncer"]] * PROCESSES)
    ids = [i for out in results for i in out]
    assert sorted(seqs(ids)) == list(range(1, PROCESSES * n + 1))  # unique and gapless


def test_a_large_state_is_json_text_in_postgres(pg_url, pg_raw) -> None:
    from benchmarks.chat_state import chat_state

    state = chat_state(4, 1_000_000)
    with CheckpointStore(pg_url) as store:
        mgr = CheckpointManager("big", store=store)
        assert mgr.create("turn", state).id == "big:1"
        assert mgr.get_latest().data == state
        assert store.get("big:1").data == state
    rows = pg_raw(
        "SELECT json_typeof(data), data ->> 'step', json_array_length(data -> 'messages') "
        "FROM checkpoints"
    )
    assert rows == [("object", "4", len(state["messages"]))]
    # Compressed with lz4 where the server has it (the hot path's setting), else pglz.
    has_lz4 = pg_raw(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
    )[0][0]
    assert pg_raw("SELECT pg_column_compression(data) FROM checkpoints") == [
        ("lz4" if has_lz4 else "pglz",)
    ]


# -- through a real PgBouncer in transaction mode --------------------------------------


@pytest.fixture
def pgbouncer_url(pg_base_url) -> Iterator[str]:
    """A PgBouncer in transaction mode (2 server connections) in front of the test server."""
    binary = shutil.which("pgbouncer")
    if binary is None:
        pytest.skip("pgbouncer is not installed on this machine (apt-get install pgbouncer)")
    server = urlsplit(pg_base_url)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # A directory the account PgBouncer may run as can read (pytest's tmp_path is not).
    tmp_path = Path(tempfile.mkdtemp(prefix="bp-pgbouncer-"))
    tmp_path.chmod(0o755)
    (tmp_path / "users.txt").write_text(f'"{server.username}" ""\n')
    config = tmp_path / "pgbouncer.ini"
    config.write_text(
        f"[databases]\n{server.path.lstrip('/')} = host={server.hostname} "
        f"port={server.port or 5432} dbname={server.path.lstrip('/')}\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nauth_type = trust\n"
        f"auth_file = {tmp_path / 'users.txt'}\npool_mode = transaction\n"
        "default_pool_size = 2\nmax_client_conn = 100\nunix_socket_dir =\n"
        f"pidfile = {tmp_path / 'pgbouncer.pid'}\n"
    )
    for path in tmp_path.iterdir():
        path.chmod(0o644)
    # PgBouncer refuses to run as root: drop to the server's usual account then.
    command = [binary, str(config)]
    if os.geteuid() == 0:
        shutil.chown(tmp_path, "postgres")  # its pidfile goes there
        command = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(command)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.monotonic() < deadline, "pgbouncer did not start"
                time.sleep(0.05)
        yield f"postgresql+psycopg://{server.username}@127.0.0.1:{port}{server.path}"
    finally:
        # The pidfile names PgBouncer itself (su is only its parent).
        pidfile = tmp_path / "pgbouncer.pid"
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_through_pgbouncer_in_transaction_mode(pgbouncer_url, pg_base_url, pg_schema) -> None:
    # Eight processes and two server connections: every transaction lands on whichever
    # server connection is free, so a prepared statement or a session SET would break.
    n = 30
    # The schema first: eight first openers racing to migrate through two server
    # connections would each hold one while the advisory lock's holder needs a second.
    CheckpointStore(pgbouncer_url, schema=pg_schema, pgbouncer=True).close()
    jobs = [[pgbouncer_url, "shared", str(n), pg_schema, "pgbouncer"]] * PROCESSES
    ids = [i for out in run_together(jobs) for i in out]
    assert sorted(seqs(ids)) == list(range(1, PROCESSES * n + 1))
    with CheckpointStore(pgbouncer_url, schema=pg_schema, pgbouncer=True) as store:
        mgr = CheckpointManager("shared", store=store, compress_after=10**9, max_checkpoints=10**9)
        assert mgr.create("last", {"x": 1}).id == f"shared:{PROCESSES * n + 1}"
        assert mgr.get_latest().data == {"x": 1}
        assert store.get("shared:1") is not None
        assert store.count("shared") == PROCESSES * n + 1
    raw = raw_postgres(with_schema(pg_base_url, pg_schema))
    try:
        assert raw.execute("SELECT base_seq FROM sessions").fetchall() == [(PROCESSES * n + 1,)]
    finally:
        raw.close()


def test_a_connection_the_server_refuses_is_a_typed_error(pg_url, pg_schema, pg_admin, pg_raw):
    # Found probing 150 live threads against max_connections = 100: each thread's hot
    # path opens a server connection of its own, and the 51 the server refused ("too
    # many clients") left as psycopg's own OperationalError. Here a role limited to 3
    # connections stands in for the server's limit.
    import uuid

    role = f"bp_limited_{uuid.uuid4().hex[:8]}"
    with CheckpointStore(pg_url) as owner:  # the schema, made by the server's owner
        owner.create("seed", "a", {})
    pg_admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 3")
    try:
        pg_admin.execute(f"GRANT ALL ON SCHEMA {pg_schema} TO {role}")
        pg_admin.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA {pg_schema} TO {role}")
        url = pg_url.replace("://postgres@", f"://{role}@", 1)
        made: list[str] = []
        refused: list[BaseException] = []
        untyped: list[BaseException] = []
        release = threading.Event()

        def work(i: int) -> None:
            try:
                made.append(store.create(f"t{i}", "a", {"i": i}).id)
            except BreakpilotStoreError as exc:
                refused.append(exc)
            except BaseException as exc:  # noqa: BLE001 - reported below
                untyped.append(exc)
            release.wait(60)

        with CheckpointStore(url) as store:
            threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 60
            while len(made) + len(refused) + len(untyped) < len(threads):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            release.set()
            for thread in threads:
                thread.join(60)
        assert untyped == []
        assert refused, "the limit was never reached: the test proves nothing"
        assert all(isinstance(exc, StoreUnavailableError) for exc in refused), refused[:2]
        stored = {f"{sid}:1" for (sid,) in pg_raw("SELECT session_id FROM checkpoints")}
        assert stored == set(made) | {"seed:1"}
    finally:
        pg_admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
        )
        pg_admin.execute(f"DROP OWNED BY {role}")
        pg_admin.execute(f"DROP ROLE {role}")
