"""The async API: group commit (counted), cancellation, close, callbacks, the full surface.

What is stored is checked through a separate raw connection, as an operator would see it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import random
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import event, text

from breakpilot_store import (
    AsyncCheckpointManager,
    AsyncCheckpointStore,
    BreakpilotStoreError,
    CheckpointManager,
    CheckpointStore,
    CheckpointValueError,
    DatabaseError,
    ImportFormatError,
    ReadOnlyStoreError,
    StoreBusyError,
    StoreClosedError,
)

SCRIPT = Path(sys.executable).parent / "breakpilot-store"


def public(cls) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def statements(engine) -> list[str]:
    """Every statement on the engine's connections checked out from now on (SQLite's trace)."""
    seen: list[str] = []

    @event.listens_for(engine, "checkout")
    def trace(dbapi_connection, _record, _proxy):
        dbapi_connection.set_trace_callback(seen.append)

    return seen


def commits_of(trace: list[str]) -> int:
    return sum(1 for s in trace if s.strip().upper() == "COMMIT")


def gapless(db: Path, session: str) -> list[int]:
    with sqlite3.connect(db) as raw:
        seqs = [
            r[0]
            for r in raw.execute("SELECT seq FROM checkpoints WHERE session_id = ?", (session,))
        ]
    return sorted(seqs)


# -- the surface ---------------------------------------------------------------------------


def test_every_store_method_is_a_coroutine_or_async_iterator():
    streaming = {"iter_checkpoints", "export_chunks", "export_bytes"}
    for name in public(CheckpointStore):
        sync = getattr(CheckpointStore, name)
        ours = getattr(AsyncCheckpointStore, name, None)
        assert ours is not None, f"AsyncCheckpointStore lacks {name}"
        if isinstance(sync, property) or not callable(sync):
            continue
        if name in streaming:
            assert inspect.isasyncgenfunction(ours), name
        elif name not in ("wrap",):
            assert inspect.iscoroutinefunction(ours), name
            assert list(inspect.signature(ours).parameters) == list(
                inspect.signature(sync).parameters
            ), name


def test_every_manager_method_is_a_coroutine_with_the_same_arguments():
    # Callback registration and the lease's properties are plain (no I/O) in both.
    plain = {"on_checkpoint", "store", "on_lease_lost", "lease_token", "lease_lost"}
    for name in public(CheckpointManager) - plain:
        sync = getattr(CheckpointManager, name)
        ours = getattr(AsyncCheckpointManager, name)
        assert inspect.iscoroutinefunction(ours), name
        assert (
            inspect.signature(ours).parameters.keys() == inspect.signature(sync).parameters.keys()
        )
    assert inspect.iscoroutinefunction(AsyncCheckpointManager.count)
    assert inspect.isasyncgenfunction(AsyncCheckpointManager.__aiter__)


def test_constructors_do_no_io(tmp_path):
    path = tmp_path / "never.db"
    AsyncCheckpointStore(path)
    AsyncCheckpointManager("a", store=path)
    assert not path.exists()


# -- group commit --------------------------------------------------------------------------


def test_a_hundred_concurrent_creates_share_few_transactions(db_path):
    sync = CheckpointStore(db_path)
    trace = statements(sync.engine)

    async def main():
        async with AsyncCheckpointStore.wrap(sync) as store:
            managers = [AsyncCheckpointManager(f"agent-{i}", store=store) for i in range(100)]
            await asyncio.gather(*(m.create("boot", {"i": 0}) for m in managers[:1]))
            return await asyncio.gather(
                *(m.create("step", {"i": i}) for i, m in enumerate(managers))
            )

    made = asyncio.run(main())
    sync.close()
    commits = commits_of(trace)
    # SQLite's own trace of the writer's connection: one COMMIT per group, not per create.
    assert 2 <= commits <= 10, commits
    assert [cp.id for cp in made] == [f"agent-{i}:{2 if i == 0 else 1}" for i in range(100)]
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("SELECT count(*) FROM checkpoints").fetchone() == (101,)
        assert raw.execute(
            "SELECT data FROM checkpoints WHERE session_id='agent-42'"
        ).fetchone() == ('{"i":42}',)


def test_one_failing_write_in_a_group_rolls_back_alone(db_path):
    sync = CheckpointStore(db_path)
    trace = statements(sync.engine)

    def half_done_then_fails(conn):
        conn.execute(
            text(
                "INSERT INTO sessions (session_id, base_seq, base_count, created_at, base_at) "
                "VALUES ('doomed', 0, 0, '2026-01-01', '2026-01-01')"
            )
        )
        raise ValueError("the operation's own error")

    def bad_sql(conn):
        conn.execute(text("INSERT INTO no_such_table VALUES (1)"))

    async def main():
        async with AsyncCheckpointStore.wrap(sync) as store:
            creates = [store.create("shared", "step", {"i": i}) for i in range(100)]
            calls = creates[:40] + [store.run(half_done_then_fails, write=True)]
            calls += creates[40:70] + [store.run(bad_sql, write=True)] + creates[70:]
            return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(main())
    sync.close()
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 2
    assert isinstance(results[40], ValueError) and "own error" in str(results[40])
    assert isinstance(results[71], DatabaseError)  # typed, the driver's error as its cause
    assert "no_such_table" in str(results[71])
    assert isinstance(results[71].__cause__, Exception)
    ids = [r.id for r in results if not isinstance(r, BaseException)]
    assert ids == [f"shared:{i}" for i in range(1, 101)]  # in the calls' order, gapless
    assert commits_of(trace) <= 10
    assert gapless(db_path, "shared") == list(range(1, 101))
    with sqlite3.connect(db_path) as raw:
        assert raw.execute(
            "SELECT count(*) FROM sessions WHERE session_id='doomed'"
        ).fetchone() == (0,)


def test_retention_runs_in_the_group_and_ids_stay_gapless(backend_url, raw):
    """Concurrent creates in a few sessions whose retention comes due inside the groups."""

    async def main():
        async with AsyncCheckpointStore(backend_url) as store:
            managers = [
                AsyncCheckpointManager(f"r{k}", store=store, max_checkpoints=5, compress_after=3)
                for k in range(3)
            ]
            plain = AsyncCheckpointManager("plain", store=store, compress_after=10**6)
            calls = []
            for i in range(40):
                calls += [m.create(f"n{i % 3}", {"i": i}) for m in managers]
                calls.append(plain.create("p", {"i": i}))
            made = await asyncio.gather(*calls)
            return made, {m.session_id: [c.seq for c in await m.get_all()] for m in managers}

    made, kept = asyncio.run(main())
    for k in range(3):
        assert [c.seq for c in made if c.session_id == f"r{k}"] == list(range(1, 41))
        assert len(kept[f"r{k}"]) == 5 and kept[f"r{k}"][-1] == 40
    assert [c.seq for c in made if c.session_id == "plain"] == list(range(1, 41))
    db = raw()
    for k in range(3):
        rows = db.query("SELECT seq FROM checkpoints WHERE session_id = ? ORDER BY seq", (f"r{k}",))
        assert [r[0] for r in rows] == kept[f"r{k}"]
    # The live counters (each session's base plus the creates above it) are right.
    assert sorted(db.query("SELECT session_id, checkpoints, last_seq FROM session_overview")) == [
        ("plain", 40, 40),
        ("r0", 5, 40),
        ("r1", 5, 40),
        ("r2", 5, 40),
    ]


def test_a_lone_create_commits_at_once(db_path):
    """No batching timer: each awaited create is its own transaction, committed on return."""
    sync = CheckpointStore(db_path)
    trace = statements(sync.engine)

    async def main():
        async with AsyncCheckpointStore.wrap(sync) as store:
            for i in range(5):
                await store.create("solo", "step", {"i": i})
                # Visible to another connection the moment the call returns.
                with sqlite3.connect(db_path) as raw:
                    assert raw.execute("SELECT max(seq) FROM checkpoints").fetchone() == (i + 1,)

    asyncio.run(main())
    sync.close()
    # Five transactions: each a BEGIN IMMEDIATE ... COMMIT, or (once the writer's
    # connection knows the counter) the sync API's one guarded INSERT in autocommit.
    guarded = sum(1 for s in trace if s.startswith("INSERT") and "pragma_data_version" in s)
    assert commits_of(trace) + guarded == 5
    assert guarded >= 3  # the sync hot path, not a group of one
    assert not any(s.upper().startswith("SAVEPOINT") for s in trace)  # alone: no savepoint


# -- cancellation --------------------------------------------------------------------------


DOCTOR_AND_WRITE = textwrap.dedent(
    """
    import sys
    from breakpilot_store import CheckpointStore
    with CheckpointStore(sys.argv[1], busy_timeout=5) as store:
        print(store.create("outsider", "n", {}).id)
    """
)


@pytest.mark.parametrize("iterations", [30])
def test_cancellation_at_random_points_leaves_nothing_partial(db_path, iterations):
    rng = random.Random(15)
    outcomes: dict[str, list[tuple[int, bool]]] = {}

    async def main():
        async with AsyncCheckpointStore(db_path) as store:
            for it in range(iterations):
                managers = [
                    AsyncCheckpointManager(
                        f"s{k}", store=store, max_checkpoints=8, compress_after=4
                    )
                    for k in range(8)
                ]
                tasks = []
                for k, mgr in enumerate(managers):
                    tag = it * 100 + k
                    tasks.append(
                        (
                            mgr.session_id,
                            tag,
                            asyncio.create_task(mgr.create("n", {"tag": tag, "pad": "x" * 300})),
                        )
                    )
                await asyncio.sleep(rng.choice([0, 0, 0.0001, 0.0005, 0.002]))
                for _, _, task in rng.sample(tasks, rng.randint(1, len(tasks))):
                    task.cancel()
                for session, tag, task in tasks:
                    try:
                        await task
                        outcomes.setdefault(session, []).append((tag, True))
                    except asyncio.CancelledError:
                        outcomes.setdefault(session, []).append((tag, False))
            # What a cancelled create did is visible through the store.
            return {k: [c.data["tag"] for c in await store.list_checkpoints(k)] for k in outcomes}

    stored = asyncio.run(main())
    cancelled_stored = cancelled_dropped = 0
    with sqlite3.connect(db_path) as raw:
        for session, seen in outcomes.items():
            tags = [
                json.loads(d)["tag"]
                for (d,) in raw.execute(
                    "SELECT data FROM checkpoints WHERE session_id=? ORDER BY seq", (session,)
                )
            ]
            assert tags == stored[session]
            # Each stored row is whole (its padding is there) and seqs are never reused.
            assert all(
                len(json.loads(d)["pad"]) == 300
                for (d,) in raw.execute(
                    "SELECT data FROM checkpoints WHERE session_id=?", (session,)
                )
            )
            completed = [tag for tag, ok in seen if ok]
            assert set(tags) <= {tag for tag, _ in seen} and tags == sorted(tags)
            # Retention never removes the newest: the last create that returned is kept,
            # or a later one (a cancelled create that had been taken up) is.
            if completed:
                assert max(tags) >= max(completed)
            for tag, ok in seen:
                if not ok:
                    cancelled_stored += tag in tags
                    cancelled_dropped += tag not in tags
        # Counters agree with the rows: the session's last seq is above every row held.
        for session, held, last in raw.execute(
            "SELECT session_id, checkpoints, last_seq FROM session_overview"
        ):
            count, top = raw.execute(
                "SELECT count(*), max(seq) FROM checkpoints WHERE session_id=?", (session,)
            ).fetchone()
            assert held == count and last >= top
    assert cancelled_stored + cancelled_dropped > 0
    print(f"cancelled creates: {cancelled_stored} stored, {cancelled_dropped} not")
    # No lock left: a sync writer in another process gets in at once, and doctor is clean.
    writer = subprocess.run(
        [sys.executable, "-c", DOCTOR_AND_WRITE, str(db_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert writer.returncode == 0, writer.stderr
    assert writer.stdout.strip() == "outsider:1"
    doctor = subprocess.run(
        [str(SCRIPT), "--db", str(db_path), "--json", "doctor"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert json.loads(doctor.stdout)["ok"] is True


def test_a_write_cancelled_before_the_writer_takes_it_is_not_stored(db_path):
    """Cancelled while queued behind a long write: dropped. Cancelled once taken: stored."""

    async def main():
        async with AsyncCheckpointStore(db_path) as store:
            await store.create("a", "n", {})
            release = asyncio.Event()
            loop = asyncio.get_running_loop()

            def slow(conn):
                asyncio.run_coroutine_threadsafe(release.wait(), loop).result()
                return 1

            blocker = asyncio.create_task(store.run(slow, write=True))
            await asyncio.sleep(0.05)  # the writer is inside `slow` now
            queued = asyncio.create_task(store.create("a", "queued", {}))
            await asyncio.sleep(0.05)
            queued.cancel()
            release.set()
            assert await blocker == 1
            with pytest.raises(asyncio.CancelledError):
                await queued
            latest = await store.get_latest("a")
            after = await store.create("a", "after", {})
            return latest, after

    latest, after = asyncio.run(main())
    assert latest.name == "n"
    assert after.id == "a:2"  # the dropped write took no seq


def test_a_write_cancelled_after_the_writer_took_it_commits(db_path):
    async def main():
        async with AsyncCheckpointStore(db_path) as store:
            started = asyncio.Event()
            loop = asyncio.get_running_loop()

            def slow(conn):
                loop.call_soon_threadsafe(started.set)
                conn.execute(
                    text(
                        "INSERT INTO sessions (session_id, base_seq, base_count, created_at,"
                        " base_at) VALUES ('taken', 0, 0, '2026-01-01', '2026-01-01')"
                    )
                )
                import time

                time.sleep(0.1)

            task = asyncio.create_task(store.run(slow, write=True))
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return await store.session_info("taken")

    assert asyncio.run(main()) is not None


# -- close, errors, callbacks --------------------------------------------------------------


def test_close_lets_submitted_writes_finish_then_refuses_writes(db_path):
    async def main():
        store = await AsyncCheckpointStore(db_path).open()
        pending = [asyncio.create_task(store.create("c", "n", {"i": i})) for i in range(50)]
        await asyncio.sleep(0)  # every create is submitted
        await store.close()
        done = await asyncio.gather(*pending)
        with pytest.raises(StoreClosedError):
            await store.create("c", "late", {})
        with pytest.raises(StoreClosedError):
            await store.get_latest("c")
        return done

    done = asyncio.run(main())
    assert [c.seq for c in done] == list(range(1, 51))
    assert gapless(db_path, "c") == list(range(1, 51))


def test_close_lets_calls_waiting_for_the_open_finish(db_path):
    """Calls made before close() that still waited for the lazy open are not refused.

    Found by the hostile campaign: they got StoreClosedError (the open's thread was
    refused the store, and each caller's second step checked ``closed`` again), though
    each call was made before the close.
    """

    async def main():
        store = AsyncCheckpointStore(db_path)  # not open: the first call opens it
        creates = [asyncio.ensure_future(store.create("w", f"n{i}", {"i": i})) for i in range(20)]
        latest = asyncio.ensure_future(store.get_latest("w"))
        count = asyncio.ensure_future(store.count("w"))
        await asyncio.sleep(0)  # every call has started and waits for the open
        await store.close()
        made = await asyncio.gather(*creates)
        await asyncio.gather(latest, count)  # they ran, before or after the creates
        with pytest.raises(StoreClosedError):
            await store.create("w", "late", {})
        with pytest.raises(StoreClosedError):
            await store.get_latest("w")
        return [c.seq for c in made]

    assert asyncio.run(main()) == list(range(1, 21))
    assert gapless(db_path, "w") == list(range(1, 21))
    with sqlite3.connect(db_path) as conn:  # what an operator sees
        names = [r[0] for r in conn.execute("SELECT name FROM checkpoints ORDER BY seq")]
    assert names == [f"n{i}" for i in range(20)]


def _loop_agent(store, name: str, started: threading.Barrier, results: dict) -> None:
    """Ten creates on a loop of this thread, made before ``started`` releases the closer."""

    async def run() -> list:
        calls = [asyncio.ensure_future(store.create(name, f"n{i}", {})) for i in range(10)]
        await asyncio.sleep(0)  # every call has started
        started.wait()
        out = []
        for call in calls:
            try:
                out.append((await call).seq)
            except StoreClosedError:
                out.append("refused")
        return out

    results[name] = asyncio.run(run())


def test_close_from_another_loop_lets_every_loops_waiting_calls_finish(tmp_path):
    """Three threads' loops call a store not yet open; a fourth loop closes it meanwhile.

    Every call made before the close lands (none refused), ids gapless. (Across loops
    on a first use, a loop's creates may land in another order than its calls: see the
    README's async API.)
    """
    for trial in range(10):
        path = tmp_path / f"loops-{trial}.db"
        store = AsyncCheckpointStore(path)
        started = threading.Barrier(4)
        results: dict[str, list] = {}
        threads = [
            threading.Thread(target=_loop_agent, args=(store, name, started, results))
            for name in "abc"
        ]
        for thread in threads:
            thread.start()
        started.wait()
        asyncio.run(store.close())
        for thread in threads:
            thread.join(30)
        assert {name: sorted(map(str, seqs)) for name, seqs in results.items()} == {
            name: sorted(map(str, range(1, 11))) for name in "abc"
        }, (trial, results)
        for name in "abc":
            assert gapless(path, name) == list(range(1, 11))


def test_errors_are_the_sync_apis_and_change_nothing(db_path, tmp_path):
    async def main():
        async with AsyncCheckpointManager("e", store=db_path) as mgr:
            await mgr.create("ok", {})
            with pytest.raises(CheckpointValueError, match=r"data\['x'\]"):
                await mgr.create("bad", {"x": float("nan")})
            with pytest.raises(TypeError):
                await mgr.get_since(__import__("datetime").datetime(2020, 1, 1))
            with pytest.raises(ImportFormatError):
                await mgr.import_checkpoints("[{}]")
            with pytest.raises(BreakpilotStoreError):
                await mgr.store.run(lambda conn: conn.execute(text("SELEC nonsense")))
            return await mgr.count()

    assert asyncio.run(main()) == 1

    async def readonly():
        async with AsyncCheckpointStore(db_path, readonly=True) as store:
            assert (await store.get_latest("e")).name == "ok"
            with pytest.raises(ReadOnlyStoreError):
                await store.create("e", "n", {})

    asyncio.run(readonly())


def test_a_coroutine_callback_is_awaited_and_a_failing_one_propagates(db_path):
    seen = []

    async def main():
        async with AsyncCheckpointManager("cb", store=db_path) as mgr:

            async def record(cp):
                await asyncio.sleep(0)
                # After the commit: another connection already sees it.
                with sqlite3.connect(db_path) as raw:
                    seen.append(
                        (cp.id, raw.execute("SELECT max(seq) FROM checkpoints").fetchone()[0])
                    )

            mgr.on_checkpoint(record)
            await mgr.create("one", {})

            async def fail(cp):
                await asyncio.sleep(0)
                raise RuntimeError("callback broke")

            mgr.on_checkpoint(fail)
            with pytest.raises(RuntimeError, match="callback broke"):
                await mgr.create("two", {})
            return [c.name for c in await mgr.get_all()]

    assert asyncio.run(main()) == ["one", "two"]
    assert seen == [("cb:1", 1)]


def test_manager_opens_and_owns_its_store_and_iterates(db_path):
    async def main():
        mgr = AsyncCheckpointManager("own", store=str(db_path), max_checkpoints=10)
        for i in range(3):
            await mgr.create("s", {"i": i})
        ids = [cp.id async for cp in mgr]
        await mgr.close()
        assert mgr.store.closed
        return ids

    assert asyncio.run(main()) == ["own:1", "own:2", "own:3"]


def test_streams_and_async_iterable_imports(db_path):
    async def main():
        async with AsyncCheckpointStore(db_path) as store:
            for i in range(5):
                await store.create("src", f"n{i}", {"i": i})
            text_pieces = [p async for p in store.export_chunks("src")]
            byte_pieces = [bytes(p) async for p in store.export_bytes("src")]
            assert "".join(text_pieces).encode() == b"".join(byte_pieces)
            assert "".join(text_pieces) == await store.export_json("src")

            async def entries():
                async for cp in store.iter_checkpoints("src"):
                    await asyncio.sleep(0)
                    yield cp.to_dict()

            assert await store.import_checkpoints("dst", entries()) == 5
            assert await store.import_checkpoints("dst", json.loads(text_pieces[0])) == 0
            return [c.data for c in await store.list_checkpoints("dst")]

    assert asyncio.run(main()) == [{"i": i} for i in range(5)]


def test_a_write_from_an_imports_own_async_iterable_is_refused_not_a_hang(backend_url, raw):
    """The iterable is read while the import's transaction is open: such a write would
    wait for the import, which waits for the iterable (it used to hang forever)."""

    async def main():
        async with AsyncCheckpointStore(backend_url) as store:
            await store.create("other", "before", {})
            refused = []

            async def entries():
                for i in range(3):
                    if i == 1:
                        try:
                            await store.create("other", "inside", {})
                        except StoreBusyError as exc:
                            refused.append(str(exc))
                    yield {
                        "id": f"src:{i + 1}",
                        "name": f"n{i}",
                        "timestamp": "2026-01-01T00:00:00+00:00",
                        "data": {"i": i},
                    }

            n = await asyncio.wait_for(store.import_checkpoints("dst", entries()), 30)
            # After the import, from the same task that ran it, writes work again.
            await store.create("other", "after", {})
            return n, refused

    box = []
    # On a daemon thread: a regression hangs in the writer, and the test must fail, not
    # hang the suite.
    runner = threading.Thread(target=lambda: box.append(asyncio.run(main())), daemon=True)
    runner.start()
    runner.join(60)
    assert box, "the import hung on a write from its own iterable"
    n, refused = box[0]
    assert n == 3
    assert len(refused) == 1 and "import_checkpoints" in refused[0]
    db = raw()
    assert db.query("SELECT name FROM checkpoints WHERE session_id = 'other' ORDER BY seq") == [
        ("before",),
        ("after",),
    ]
    assert db.query("SELECT count(*) FROM checkpoints WHERE session_id = 'dst'") == [(3,)]


def test_calls_made_while_the_store_opens_keep_their_order(db_path):
    """Found flaky in the differential test: the first of concurrent creates got the last
    seq when the open (on a thread) finished before the later calls began: they skipped
    the wait and overtook the callers still waiting to be woken."""

    async def main():
        store = AsyncCheckpointStore(db_path)
        first = asyncio.create_task(store.create("s", "first", {}))
        await asyncio.sleep(0)  # the first call starts the open and waits for it
        deadline = time.monotonic() + 30
        # Hold the loop until the open has finished on its thread: the first caller is
        # not woken yet when the second call comes.
        while not (store._opening is not None and store._opening.done):
            if time.monotonic() > deadline:
                raise AssertionError("the store never opened")
            time.sleep(0.01)
        second = await store.create("s", "second", {})
        made = [await first, second]
        await store.close()
        return [(c.name, c.seq) for c in made]

    assert asyncio.run(main()) == [("first", 1), ("second", 2)]


def test_calls_made_while_the_open_is_being_delivered_keep_their_order(db_path, monkeypatch):
    """Found flaky in the differential test again: 35 concurrent creates, the last two
    got seqs 2 and 3. The open's thread woke each waiting caller through its future's
    callbacks, one by one; a caller that came after the open finished added its callback
    to the finished future, which ran it at once, while the thread was still calling the
    earlier ones (the GIL passes between them): the later caller was woken first. Here
    concurrent futures' callbacks are slowed down, as the GIL may slow them (that made
    the old way fail every time; the open no longer wakes its callers that way), and
    the later calls come just after the open finished, while its callers are woken."""
    import concurrent.futures

    def slowly(self):
        for callback in self._done_callbacks:
            time.sleep(0.002)  # another thread (the loop) may run meanwhile
            callback(self)

    monkeypatch.setattr(concurrent.futures.Future, "_invoke_callbacks", slowly)

    async def main():
        store = AsyncCheckpointStore(db_path)
        first = [asyncio.create_task(store.create("s", f"first-{i}", {})) for i in range(5)]
        await asyncio.sleep(0)  # they start the open and wait for it
        deadline = time.monotonic() + 30
        while not (store._opening is not None and store._opening.done):
            assert time.monotonic() < deadline, "the store never opened"
            await asyncio.sleep(0.0005)
        late = [asyncio.create_task(store.create("s", f"late-{i}", {})) for i in range(2)]
        made = await asyncio.gather(*first, *late)
        await store.close()
        return [(c.name, c.seq) for c in made]

    made = asyncio.run(main())
    assert made == [(f"first-{i}", i + 1) for i in range(5)] + [("late-0", 6), ("late-1", 7)]


def test_a_store_dropped_without_close_leaves_no_writer_thread(db_path):
    """Found probing: ten ``asyncio.run``s each opening a store and forgetting it left
    ten writer threads (and their connections) for the life of the process."""
    import gc

    def writers() -> int:
        return sum(1 for t in threading.enumerate() if t.name == "breakpilot-store-writer")

    before = writers()

    async def once(i: int) -> None:
        store = AsyncCheckpointStore(db_path)
        await store.create("s", "a", {"i": i})

    for i in range(5):
        asyncio.run(once(i))
    gc.collect()
    deadline = time.monotonic() + 30
    while writers() > before:  # each ends once its queue is done
        assert time.monotonic() < deadline, f"{writers() - before} writer threads left"
        time.sleep(0.01)
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("SELECT count(*) FROM checkpoints").fetchone() == (5,)
    finally:
        conn.close()


def test_run_seam_reads_and_writes_in_a_group(db_path):
    async def main():
        async with AsyncCheckpointStore(db_path) as store:
            await store.run(lambda c: c.execute(text("CREATE TABLE extra (v INTEGER)")), write=True)
            await asyncio.gather(
                *(
                    store.run(
                        lambda c, v=v: c.execute(text("INSERT INTO extra VALUES (:v)"), {"v": v}),
                        write=True,
                    )
                    for v in range(20)
                )
            )
            return await store.run(lambda c: c.execute(text("SELECT sum(v) FROM extra")).scalar())

    assert asyncio.run(main()) == sum(range(20))


# -- PostgreSQL: group commit there too --------------------------------------------------


def test_group_commit_on_both_backends_counts_commits(backend_url, raw):
    async def main():
        async with AsyncCheckpointStore(backend_url) as store:
            await store.open()
            engine = store.engine  # the writer thread's, on both backends
            commits = []
            event.listen(engine, "commit", lambda conn: commits.append(1))

            def bad(conn):
                conn.execute(text("INSERT INTO sessions (session_id) VALUES (NULL)"))

            calls = [store.create(f"k{i}", "n", {"i": i}) for i in range(100)]
            calls.insert(50, store.run(bad, write=True))
            before = store.commits
            results = await asyncio.gather(*calls, return_exceptions=True)
            return results, len(commits), store.commits - before

    results, commits, counted = asyncio.run(main())
    assert isinstance(results[50], DatabaseError)
    assert [r.id for i, r in enumerate(results) if i != 50] == [f"k{i}:1" for i in range(100)]
    # Group transactions seen by the engine's own commit event, and every commit the
    # writer made (a write alone in its queue commits on the sync hot path's connection).
    assert 1 <= commits <= 10, commits
    assert commits <= counted <= 10, counted
    assert raw().query("SELECT count(*) FROM checkpoints") == [(100,)]


# -- real processes ------------------------------------------------------------------------

ASYNC_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from breakpilot_store import AsyncCheckpointManager, AsyncCheckpointStore
    async def main(path, tasks, each):
        async with AsyncCheckpointStore(path) as store:
            mgr = AsyncCheckpointManager("shared", store=store, compress_after=10**9,
                                         max_checkpoints=10**9)
            async def agent(n):
                return [(await mgr.create("async", {"n": n, "k": k})).id for k in range(each)]
            for ids in await asyncio.gather(*(agent(n) for n in range(tasks))):
                print(*ids, sep="\\n", flush=True)
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
    """
)
SYNC_WRITER = textwrap.dedent(
    """
    import sys
    from breakpilot_store import CheckpointManager
    mgr = CheckpointManager("shared", store=sys.argv[1], compress_after=10**9,
                            max_checkpoints=10**9)
    for k in range(int(sys.argv[2])):
        print(mgr.create("sync", {"k": k}).id, flush=True)
    """
)


def test_sync_and_async_writers_and_the_cli_share_a_session(db_path):
    with CheckpointStore(db_path) as store:  # the schema and session first: this is about writes
        store.create("shared", "start", {})
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ASYNC_WRITER, str(db_path), "20", "10"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ),
        subprocess.Popen(
            [sys.executable, "-c", ASYNC_WRITER, str(db_path), "10", "10"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ),
        subprocess.Popen(
            [sys.executable, "-c", SYNC_WRITER, str(db_path), "100"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ),
    ]
    reads = 0
    while any(p.poll() is None for p in procs) or reads == 0:
        shown = subprocess.run(
            [str(SCRIPT), "--db", str(db_path), "--json", "list", "shared"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        reads += 1
    ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        ids += out.split()
    assert len(ids) == 400 and len(set(ids)) == 400
    assert sorted(int(i.rsplit(":", 1)[1]) for i in ids) == list(range(2, 402))
    assert gapless(db_path, "shared") == list(range(1, 402))
    assert reads > 0


def test_an_in_memory_database_works_from_its_own_thread():
    """``sqlite://`` lives on the thread that made it: the async store keeps it on one."""

    async def main():
        async with AsyncCheckpointStore("sqlite://") as store:
            mgr = AsyncCheckpointManager("m", store=store, max_checkpoints=5, compress_after=3)
            made = await asyncio.gather(*(mgr.create("x", {"i": i}) for i in range(10)))
            exported = await mgr.export()
            streamed = [c.seq async for c in store.iter_checkpoints("m")]
            copied = await AsyncCheckpointManager("n", store=store).import_checkpoints(exported)
            return [c.seq for c in made], streamed, copied, await mgr.count()

    seqs, streamed, copied, count = asyncio.run(main())
    assert seqs == list(range(1, 11))
    assert streamed[-1] == 10 and len(streamed) == count == 5
    assert copied == 5


def test_cancelled_writes_on_both_backends_are_whole_or_absent(backend_url, raw):
    """Queued behind a busy writer, a cancelled create is dropped; a taken one commits."""
    postgres = "://" in backend_url

    def busy(conn):
        # The writer is occupied for a while (on PostgreSQL the op runs on the loop's
        # driver, so it waits in the server rather than in this process).
        if postgres:
            conn.execute(text("SELECT pg_sleep(0.3)"))
        else:
            __import__("time").sleep(0.3)
        conn.execute(
            text(
                "INSERT INTO sessions (session_id, base_seq, base_count, created_at, base_at)"
                " VALUES ('taken', 0, 0, '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')"
            )
        )

    async def main():
        async with AsyncCheckpointStore(backend_url) as store:
            await store.create("q", "first", {})
            taken = asyncio.create_task(store.run(busy, write=True))
            await asyncio.sleep(0.1)  # the writer has taken `busy` up
            queued = [asyncio.create_task(store.create("q", f"n{i}", {})) for i in range(5)]
            await asyncio.sleep(0.05)
            taken.cancel()
            for task in queued[::2]:
                task.cancel()
            outcomes = await asyncio.gather(taken, *queued, return_exceptions=True)
            # The cancellation waited for the taken write: it is visible now.
            info = await store.session_info("taken")
            return outcomes, info, [c.name for c in await store.list_checkpoints("q")]

    outcomes, info, names = asyncio.run(main())
    assert isinstance(outcomes[0], asyncio.CancelledError)
    assert info is not None
    assert [type(o) for o in outcomes[1::2]] == [asyncio.CancelledError] * 3
    assert names == ["first", "n1", "n3"]  # the cancelled creates took no seq
    assert raw().query("SELECT seq FROM checkpoints ORDER BY seq") == [(1,), (2,), (3,)]
