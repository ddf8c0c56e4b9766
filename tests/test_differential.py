"""Differential property test: random operation sequences, applied to a small reference
model of the seed's semantics (with design.md's defects fixed) and to the database-backed
manager, must agree on ids, names, order, data, metadata, counts and export.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breakpilot_store import (
    AsyncCheckpointManager,
    AsyncCheckpointStore,
    CheckpointManager,
    CheckpointStore,
)
from tests.async_adapter import Blocking, LoopThread

KEEP_RECENT = 20


@dataclass
class Row:
    seq: int
    name: str
    data: dict[str, Any]
    metadata: dict[str, Any]


@dataclass
class Model:
    """The seed's manager, in memory, with the fixes design.md lists."""

    session_id: str
    max_checkpoints: int
    compress_after: int
    rows: list[Row] = field(default_factory=list)
    last_seq: int = 0

    def id(self, row: Row) -> str:
        return f"{self.session_id}:{row.seq}"

    def create(self, name: str, data: dict, metadata: dict | None) -> str:
        self.last_seq += 1
        # A snapshot: later mutation of the caller's dict must not show.
        row = Row(self.last_seq, name, json.loads(json.dumps(data)), dict(metadata or {}))
        self.rows.append(row)
        if len(self.rows) > self.compress_after:
            first, recent, middle = (
                self.rows[0],
                self.rows[-KEEP_RECENT:],
                self.rows[1:-KEEP_RECENT],
            )
            latest: dict[str, int] = {}
            for r in middle:
                latest[r.name] = max(latest.get(r.name, 0), r.seq)  # highest seq, not clock
            keep = {first.seq, *(r.seq for r in recent), *latest.values()}  # a set: no dupes
            self.rows = [r for r in self.rows if r.seq in keep]
        excess = len(self.rows) - self.max_checkpoints
        if excess > 0:  # hard cap: oldest first, the first one last, the newest never
            order = self.rows[1:-1] + self.rows[:1]
            drop = {r.seq for r in order[:excess]}
            self.rows = [r for r in self.rows if r.seq not in drop]
        return self.id(row)

    def clear(self) -> int:
        n = len(self.rows)
        self.rows = []
        return n

    def by_name(self, name: str) -> list[str]:
        return [self.id(r) for r in reversed(self.rows) if r.name == name]

    def latest(self, name: str | None) -> str | None:
        rows = [r for r in self.rows if name is None or r.name == name]
        return self.id(rows[-1]) if rows else None

    def import_own(self, entries: list[dict]) -> int:
        present = {r.seq for r in self.rows}
        added = 0
        for e in entries:
            seq = int(e["id"].rsplit(":", 1)[1])
            if seq not in present:
                self.rows.append(Row(seq, e["name"], e["data"], e["metadata"]))
                present.add(seq)
                added += 1
            self.last_seq = max(self.last_seq, seq)
        self.rows.sort(key=lambda r: r.seq)
        return added

    def export_view(self) -> list[tuple]:
        return [(self.id(r), r.name, r.data, r.metadata) for r in self.rows]


NAMES = st.sampled_from(["plan", "act", "observe", "reflect", "done"])
JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
DATA = st.dictionaries(st.text(max_size=6), JSON, max_size=4)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("create"), NAMES, DATA, st.one_of(st.none(), DATA)),
        st.tuples(st.just("create_many"), st.integers(1, 40), NAMES),
        st.tuples(st.just("clear")),
        st.tuples(st.just("latest"), st.one_of(st.none(), NAMES)),
        st.tuples(st.just("by_name"), NAMES),
        st.tuples(st.just("get"), st.integers(0, 80)),
        st.tuples(st.just("snapshot")),
        st.tuples(st.just("reimport")),
        st.tuples(st.just("restart")),
    ),
    max_size=25,
)

_counter = itertools.count()


def view(manager: CheckpointManager) -> list[tuple]:
    return [(c.id, c.name, c.data, c.metadata) for c in manager.get_all()]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ops=OPS,
    max_checkpoints=st.integers(1, 60),
    compress_after=st.integers(1, 60),
)
@pytest.mark.parametrize("api", ["sync", "async"])
def test_manager_agrees_with_reference_model(tmp_path, api, ops, max_checkpoints, compress_after):
    path = tmp_path / "diff.db"
    session_id = f"s:{next(_counter)}"  # a fresh session per example, ':' included
    if api == "sync":
        store = CheckpointStore(path, durability="normal")

        def open_manager():
            return CheckpointManager(session_id, max_checkpoints, compress_after, store=store)

    else:
        # The async manager, driven from a loop thread; its create_many runs concurrently.
        runner = LoopThread()
        front = AsyncCheckpointStore(path, durability="normal")
        store = Blocking(front, runner)

        def open_manager():
            async_manager = AsyncCheckpointManager(
                session_id, max_checkpoints, compress_after, store=front
            )
            return Blocking(async_manager, runner)

    try:
        model = Model(session_id, max_checkpoints, compress_after)
        real = open_manager()
        snapshot: str | None = None
        for op in ops:
            kind = op[0]
            if kind == "create":
                _, name, data, metadata = op
                expected = model.create(name, data, metadata)
                got = real.create(name, data, metadata)
                data["mutated-after-create"] = True  # must not reach the store
                assert got.id == expected
            elif kind == "create_many" and api == "async":
                # Concurrent creates share group commits; ids follow the calls' order.
                async def concurrently(name=op[2], n=op[1], target=real.target):
                    return await asyncio.gather(*(target.create(name, {"i": i}) for i in range(n)))

                made = real.runner.run(concurrently())
                assert [c.id for c in made] == [
                    model.create(op[2], {"i": i}, None) for i in range(op[1])
                ]
            elif kind == "create_many":
                for i in range(op[1]):
                    assert real.create(op[2], {"i": i}).id == model.create(op[2], {"i": i}, None)
            elif kind == "clear":
                assert real.clear() == model.clear()
            elif kind == "latest":
                got = real.get_latest(op[1])
                assert (got.id if got else None) == model.latest(op[1])
            elif kind == "by_name":
                assert [c.id for c in real.get_by_name(op[1])] == model.by_name(op[1])
            elif kind == "get":
                cid = f"{session_id}:{op[1]}"
                got = real.get(cid)
                expected = [r for r in model.rows if model.id(r) == cid]
                assert (got.data if got else None) == (expected[0].data if expected else None)
            elif kind == "snapshot":
                snapshot = real.export()
            elif kind == "reimport" and snapshot is not None:
                assert real.import_checkpoints(snapshot) == model.import_own(json.loads(snapshot))
            elif kind == "restart":
                real = open_manager()
            assert len(real) == len(model.rows)
        assert view(real) == model.export_view()
        exported = json.loads(real.export())
        assert [(e["id"], e["name"], e["data"], e["metadata"]) for e in exported] == (
            model.export_view()
        )
        summary = real.get_summary()
        assert summary["total_count"] == len(model.rows)
        assert summary["unique_names"] == len({r.name for r in model.rows})
        # The next id continues the numbering whatever happened before.
        assert real.create("final", {}).id == f"{session_id}:{model.last_seq + 1}"
    finally:
        if api == "sync":
            store.close()
        else:
            runner.run(front.close())
            runner.close()
