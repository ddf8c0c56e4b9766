"""Imports larger than a batch: the writer thread, numbering as entries come, and the
single-statement batch that is tried before any lookup.

Each test runs on every backend (SQLite, and PostgreSQL where configured) and checks the
rows through a separate raw connection. Documents span several batches
(``store.IMPORT_BATCH``), so that parking, renumbering and duplicate checks cross batch
boundaries and the writer thread really runs ahead of the parser.
"""

from __future__ import annotations

import io
import json
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from breakpilot_store import CheckpointManager, CheckpointStore, read_document
from breakpilot_store import store as store_module
from breakpilot_store.core import operations
from breakpilot_store.core import repository as repo
from breakpilot_store.core.importer import ImportWriter
from breakpilot_store.core.pipeline import pipelined
from breakpilot_store.errors import DatabaseError, ImportConflictError, ImportFormatError

BATCH = store_module.IMPORT_BATCH
STAMP = "2026-01-01T00:00:{:02d}.{:06d}+00:00"


@pytest.fixture
def store(backend_url: str) -> Iterator[CheckpointStore]:
    with CheckpointStore(backend_url) as s:
        yield s


def entry(session: str, seq: int, data: Any = None, name: str = "step") -> dict[str, Any]:
    return {
        "id": f"{session}:{seq}",
        "name": name,
        "timestamp": STAMP.format(seq % 60, seq % 1_000_000),
        "data": {"seq": seq, "from": session} if data is None else data,
        "metadata": {"m": seq % 3},
    }


def feed(kind: str, entries: list[dict[str, Any]]) -> Any:
    """The same document as the manager's text, a list, a one-pass generator, or a file."""
    if kind == "text":
        return json.dumps(entries, indent=2)
    if kind == "list":
        return entries
    if kind == "file":  # read in pieces smaller than a batch's text
        return read_document(io.BytesIO(json.dumps(entries, indent=2).encode()))
    return (e for e in entries)


def do_import(store: CheckpointStore, session: str, kind: str, entries: list[dict]) -> int:
    if kind == "text":
        return CheckpointManager(session, store=store).import_checkpoints(feed(kind, entries))
    return store.import_checkpoints(session, feed(kind, entries))


def rows(raw: Any, session: str) -> list[tuple[Any, ...]]:
    return raw().query(
        "SELECT seq, name, origin_id, CAST(data AS TEXT) FROM checkpoints "
        "WHERE session_id = ? ORDER BY seq",
        (session,),
    )


KINDS = ["text", "list", "stream", "file"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_large_foreign_import_is_numbered_in_order_above_the_counter(store, raw, kind):
    manager = CheckpointManager("dst", store=store)
    for i in range(3):
        manager.create("own", {"i": i})
    doc = [entry("src", i) for i in range(1, 2 * BATCH + 501)]
    assert do_import(store, "dst", kind, doc) == len(doc)
    got = rows(raw, "dst")
    assert [r[0] for r in got] == list(range(1, len(doc) + 4))
    assert [r[2] for r in got[3:]] == [e["id"] for e in doc]
    assert [json.loads(r[3]) for r in got[3:]] == [e["data"] for e in doc]
    assert raw().counters() == {"dst": (len(doc) + 3, len(doc) + 3)}
    assert manager.create("own", {}).id == f"dst:{len(doc) + 4}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["next batch", "same batch"])
def test_a_later_own_seq_above_the_foreign_ones_moves_them_above_it(store, raw, kind, where):
    """As if the whole document had been read first: foreign above every own seq."""
    CheckpointManager("dst", store=store).create("own", {"i": 0})  # counter at 1
    first = [entry("src", i) for i in range(1, BATCH + 201)]
    # The own entry lands in the batch after the first foreign ones, or among them.
    split = BATCH + 100 if where == "next batch" else 100
    high = 5 * BATCH
    doc = [*first[:split], entry("dst", high), *first[split:], entry("dst", 2)]
    doc += [entry("other", i) for i in range(1, 301)]
    assert do_import(store, "dst", kind, doc) == len(doc)
    foreign = [e["id"] for e in doc if not e["id"].startswith("dst:")]
    got = rows(raw, "dst")
    assert [(r[0], r[2]) for r in got[:2]] == [(1, None), (2, None)]
    assert (got[2][0], got[2][2]) == (high, None)
    assert [r[0] for r in got[3:]] == list(range(high + 1, high + 1 + len(foreign)))
    assert [r[2] for r in got[3:]] == foreign  # document order
    assert raw().scalar("SELECT count(*) FROM checkpoints WHERE seq < 1") == 0
    last = high + len(foreign)
    assert raw().counters() == {"dst": (last, len(foreign) + 3)}


@pytest.mark.parametrize("kind", KINDS)
def test_the_same_document_again_is_a_no_op_batch_by_batch(store, raw, kind):
    for i in range(BATCH + 50):
        store.create("dst", "n", {"i": i})  # no retention: every seq stays
    own = CheckpointManager("dst", store=store)
    mixed = json.loads(own.export()) + [entry("src", i) for i in range(1, BATCH + 300)]
    assert do_import(store, "dst", kind, mixed) == BATCH + 299  # the own ones are there
    before = raw().dump()
    assert do_import(store, "dst", kind, mixed) == 0
    after = raw().dump()
    assert after[after.index(("checkpoints",)) :] == before[before.index(("checkpoints",)) :]
    assert raw().counters() == {"dst": (2 * BATCH + 349, 2 * BATCH + 349)}


@pytest.mark.parametrize("kind", KINDS)
def test_a_partly_imported_document_writes_only_what_is_new(store, raw, kind):
    doc = [entry("src", i) for i in range(1, 2 * BATCH + 1)]
    assert do_import(store, "dst", kind, doc[: BATCH // 2]) == BATCH // 2
    # The last batch holds the stored half: its single statement fails, the batch is
    # then looked up, and only the new entries go in.
    shuffled = doc[BATCH // 2 :] + doc[: BATCH // 2]
    assert do_import(store, "dst", kind, shuffled) == len(doc) - BATCH // 2
    got = rows(raw, "dst")
    assert [r[2] for r in got] == [e["id"] for e in doc[: BATCH // 2] + shuffled[: -BATCH // 2]]
    assert [r[0] for r in got] == list(range(1, len(doc) + 1))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("gap", [1, BATCH + 7])
def test_duplicates_within_the_document_are_written_once(store, raw, kind, gap):
    doc = [entry("src", i) for i in range(1, BATCH + gap + 2)]
    doc.insert(gap + 1, doc[0])  # the same entry again, in its batch or a later one
    assert do_import(store, "dst", kind, doc) == len(doc) - 1
    assert raw().scalar("SELECT count(*) FROM checkpoints WHERE origin_id = 'src:1'") == 1
    assert [r[0] for r in rows(raw, "dst")] == list(range(1, len(doc)))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("late", [False, True])
def test_a_conflict_in_a_later_batch_writes_nothing(store, raw, kind, late):
    CheckpointManager("dst", store=store).create("own", {"i": 0})
    doc = [entry("src", i) for i in range(1, 2 * BATCH + 1)]
    position = 2 * BATCH - 1 if late else 3
    doc.insert(position, entry("src", 2, data={"changed": True}))
    before = raw().dump()
    with pytest.raises(ImportConflictError, match="'src:2'"):
        do_import(store, "dst", kind, doc)
    assert raw().dump() == before


@pytest.mark.parametrize("kind", KINDS)
def test_a_malformed_entry_in_a_later_batch_writes_nothing(store, raw, kind):
    CheckpointManager("dst", store=store).create("own", {"i": 0})
    doc = [entry("src", i) for i in range(1, 3 * BATCH)]
    doc[-2] = dict(doc[-2], timestamp="yesterday")
    before = raw().dump()
    with pytest.raises(ImportFormatError, match=f"entry {len(doc) - 2} .*not ISO-8601"):
        do_import(store, "dst", kind, doc)
    assert raw().dump() == before


def test_the_callers_iterable_and_callback_stay_on_the_callers_thread(store, raw):
    caller = threading.current_thread()
    seen: set[threading.Thread] = set()

    def entries() -> Iterator[dict[str, Any]]:
        for i in range(1, 2 * BATCH + 2):
            seen.add(threading.current_thread())
            yield entry("src", i)

    def on_entry() -> None:
        seen.add(threading.current_thread())

    assert store.import_checkpoints("dst", entries(), on_entry=on_entry) == 2 * BATCH + 1
    assert seen == {caller}
    assert not [t for t in threading.enumerate() if t.name == "breakpilot-store-writer"]


def test_an_error_in_the_callers_iterable_writes_nothing_and_stops_the_writer(store, raw):
    before = raw().dump()

    def entries() -> Iterator[dict[str, Any]]:
        yield from (entry("src", i) for i in range(1, 3 * BATCH))
        raise RuntimeError("the source went away")

    with pytest.raises(RuntimeError, match="source went away"):
        store.import_checkpoints("dst", entries())
    assert raw().dump() == before
    assert not [t for t in threading.enumerate() if t.name == "breakpilot-store-writer"]
    assert store.import_checkpoints("dst", [entry("src", 1)]) == 1  # the store still works


def test_when_the_writer_fails_the_parser_stops_at_once(store, raw, monkeypatch):
    made = 0

    def entries() -> Iterator[dict[str, Any]]:
        nonlocal made
        for i in range(1, 50 * BATCH):
            made += 1
            yield entry("src", i)

    def broken(conn: Any, session_id: str, rows: Any) -> None:
        raise ValueError("disk on fire")

    monkeypatch.setattr(repo, "insert_rows", broken)
    before = raw().dump()
    with pytest.raises(ValueError, match="disk on fire"):
        store.import_checkpoints("dst", entries())
    assert made < 10 * BATCH  # not the whole source: the failure reached the parser
    assert raw().dump() == before


def test_in_memory_sqlite_imports_on_one_thread():
    with CheckpointStore("sqlite://") as memory:
        doc = [entry("src", i) for i in range(1, 2 * BATCH + 10)]
        assert memory.import_checkpoints("dst", doc) == len(doc)
        assert memory.count("dst") == len(doc)
        assert memory.get_latest("dst").data == doc[-1]["data"]


@pytest.mark.parametrize("kind", ["text", "list"])
def test_batches_of_large_states_end_at_their_text_limit(store, raw, monkeypatch, kind):
    """A batch ends at IMPORT_BATCH_TEXT characters of JSON as well as at IMPORT_BATCH
    entries: an import of large states holds a few of them in memory, not thousands."""
    limit = 50_000
    monkeypatch.setattr(operations, "IMPORT_BATCH_TEXT", limit)
    texts: list[list[int]] = []
    write = ImportWriter.write

    def spy(self: ImportWriter, batch: Any) -> None:
        texts.append([len(e.data_text) + len(e.metadata_text) for e in batch])
        write(self, batch)

    monkeypatch.setattr(ImportWriter, "write", spy)
    doc = [entry("src", i, data={"i": i, "text": "ü" * (9_000 + i)}) for i in range(1, 41)]
    assert do_import(store, "dst", kind, doc) == len(doc)
    # ~9,000 characters each: five stay under the limit, the sixth reaches it
    assert [len(t) for t in texts] == [6, 6, 6, 6, 6, 6, 4]
    for batch in texts[:-1]:  # each one reached the limit with its last entry, not before
        assert sum(batch) >= limit > sum(batch[:-1])
    got = rows(raw, "dst")
    assert [(r[0], r[2]) for r in got] == [(i, f"src:{i}") for i in range(1, 41)]
    assert [json.loads(r[3]) for r in got] == [e["data"] for e in doc]


def test_batches_split_over_statements_where_sqlite_allows_few_parameters(db_path, monkeypatch):
    """An SQLite built with a low parameter limit: several statements, each batch looked up."""
    monkeypatch.setattr(repo, "_rows_per_statement", lambda driver: 7)
    with CheckpointStore(db_path) as s:
        doc = [entry("src", i) for i in range(1, BATCH + 60)]
        assert s.import_checkpoints("dst", doc) == len(doc)
        assert s.import_checkpoints("dst", doc) == 0
        with pytest.raises(ImportConflictError):
            s.import_checkpoints("dst", [*doc, entry("src", 5, data={"other": 1})])
    conn = sqlite3.connect(db_path)
    try:
        got = conn.execute("SELECT seq, origin_id FROM checkpoints ORDER BY seq").fetchall()
    finally:
        conn.close()
    assert got == [(i, f"src:{i}") for i in range(1, len(doc) + 1)]


# -- the pipeline itself ------------------------------------------------------------------


def test_pipelined_writes_every_batch_in_order_on_one_other_thread():
    written: list[tuple[int, threading.Thread]] = []
    pipelined(range(50), lambda b: written.append((b, threading.current_thread())), threaded=True)
    assert [b for b, _ in written] == list(range(50))
    assert len({t for _, t in written}) == 1
    assert written[0][1] is not threading.current_thread()


def test_pipelined_after_a_failed_batch_writes_no_more_and_raises_it():
    written: list[int] = []

    def write(batch: int) -> None:
        if batch == 3:
            raise LookupError("batch 3")
        written.append(batch)

    with pytest.raises(LookupError, match="batch 3"):
        pipelined(range(1_000), write, threaded=True)
    assert written == [0, 1, 2]


def test_pipelined_a_failing_maker_abandons_the_queued_batches():
    release = threading.Event()
    written: list[int] = []

    def write(batch: int) -> None:
        release.wait(5)
        written.append(batch)

    def batches() -> Iterator[int]:
        yield from range(3)  # the writer holds 0; 1 and 2 wait in the queue
        release.set()
        raise KeyError("no more")

    with pytest.raises(KeyError, match="no more"):
        pipelined(batches(), write, threaded=True)
    assert written == [0]


def test_pipelined_a_ctrl_c_while_joining_waits_for_the_writer_first():
    """The transaction ends right after: the writer must be off the connection by then."""
    main = threading.get_ident()
    started, done = threading.Event(), threading.Event()

    def write(batch: int) -> None:
        started.set()
        # Interrupt the caller while it waits in the join, then go on a little.
        signal.pthread_kill(main, signal.SIGINT)
        time.sleep(0.3)
        done.set()

    with pytest.raises(KeyboardInterrupt):
        pipelined([1], write, threaded=True)
    assert started.is_set() and done.is_set()


def test_a_driver_error_in_the_bulk_insert_is_translated_and_writes_nothing(
    store, raw, monkeypatch
):
    """The batch statements run on the bare driver (sqlite3, psycopg's COPY)."""
    monkeypatch.setattr(repo, "_COPY", "COPY no_such_table (x) FROM STDIN")
    monkeypatch.setattr(
        repo, "_insert_values_sql", lambda n: "INSERT INTO no_such_table VALUES (1)"
    )
    before = raw().dump()
    with pytest.raises(DatabaseError) as info:
        store.import_checkpoints("dst", [entry("src", i) for i in range(1, 2 * BATCH)])
    assert "no_such_table" in str(info.value.__cause__)
    assert type(info.value.__cause__).__module__.split(".")[0] in ("sqlite3", "psycopg")
    assert raw().dump() == before
    monkeypatch.undo()
    assert store.import_checkpoints("dst", [entry("src", 1)]) == 1  # the store goes on
