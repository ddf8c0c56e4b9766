"""``copy`` keeps provenance and the sessions' own times (found by the campaign).

``copy`` re-imported each row under its own id, so rows the source had imported from
other sessions lost ``origin_id`` on the target: importing the same foreign document
again after a migration wrote every entry a second time where the source would write
none. The copy also stamped every session with the copy's time, so a migrated
fleet looked busy to ``prune`` and ``sessions --idle-for``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from breakpilot_store import CheckpointStore
from tests.seed.checkpoint_manager import Checkpoint as SeedCheckpoint

FOREIGN = [
    {"id": f"upstream:{i}", "name": "n", "timestamp": "2026-01-01T00:00:00+00:00", "data": {"i": i}}
    for i in range(1, 6)
]


def _times(path: Path) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT session_id, created_at, updated_at FROM session_overview ORDER BY session_id"
        ).fetchall()
    finally:
        conn.close()


def test_copy_keeps_origin_ids_and_reimports_stay_no_ops(run, tmp_path):
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    with CheckpointStore(src) as store:
        store.create("agent", "own", {"n": 0})
        assert store.import_checkpoints("agent", FOREIGN) == 5
        assert store.import_checkpoints("agent", FOREIGN) == 0  # the source: no-ops
        exported = json.loads(store.export_json("agent"))
    # The export carries origin_id, and the seed still reads every entry.
    assert [e.get("origin_id") for e in exported] == [None, *(e["id"] for e in FOREIGN)]
    assert all(SeedCheckpoint.from_dict(e).id == e["id"] for e in exported)
    time.sleep(0.01)
    result = run("--db", src, "copy", "--to", dst)
    assert result.exit_code == 0, result.output
    raw = sqlite3.connect(dst)
    try:
        rows = raw.execute(
            "SELECT seq, origin_id FROM checkpoints WHERE session_id = 'agent' ORDER BY seq"
        ).fetchall()
    finally:
        raw.close()
    assert rows == [(1, None), *((i + 1, f"upstream:{i}") for i in range(1, 6))]
    with CheckpointStore(dst) as store:
        assert store.import_checkpoints("agent", FOREIGN) == 0  # as on the source
        # A copy of the copy's export into a third session still knows the origins.
        assert store.import_checkpoints("third", json.loads(store.export_json("agent"))) == 6
        assert store.import_checkpoints("third", FOREIGN) == 0
    # The sessions' own times came along; a second copy changes nothing at all.
    assert _times(dst)[0] == _times(src)[0]
    before = _times(dst)
    assert run("--db", src, "copy", "--to", dst).exit_code == 0
    assert _times(dst) == before


def test_an_import_that_writes_nothing_is_not_activity(tmp_path):
    path = tmp_path / "s.db"
    with CheckpointStore(path) as store:
        store.import_checkpoints("s", FOREIGN)
        store.create("s", "own", {})
        before = _times(path)
        time.sleep(0.01)
        assert store.import_checkpoints("s", FOREIGN) == 0
        assert store.import_checkpoints("s", [store.get("s:6").to_dict()]) == 0
        assert store.compress("s", compress_after=100) == []  # nothing to remove
        assert store.clear("nobody") == 0
        assert _times(path) == before
        # A write that changes something still counts.
        store.clear("s")
        assert _times(path)[0][2] > before[0][2]
