"""LangGraph's own conformance suite (langgraph-checkpoint-conformance) on every backend.

``validate`` runs each capability's tests against a fresh saver from the factory; every
one of the eight capabilities must be detected and pass every test. The stock savers
run on the same suite as reference peers: ours must pass everything they pass, and
the capabilities they do not implement.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES, Capability
from langgraph.checkpoint.conformance.spec import (
    test_copy_thread,
    test_delete_for_runs,
    test_delete_thread,
    test_get_tuple,
    test_list,
    test_prune,
    test_put,
    test_put_writes,
)

from breakpilot_store.langgraph import BreakpilotSaver
from tests.conftest import PG_ENV
from tests.langgraph.conftest import fresh_url

#: How many tests the suite has per capability (read from the suite itself).
SUITE = {
    "put": len(test_put.ALL_PUT_TESTS),
    "put_writes": len(test_put_writes.ALL_PUT_WRITES_TESTS),
    "get_tuple": len(test_get_tuple.ALL_GET_TUPLE_TESTS),
    "list": len(test_list.ALL_LIST_TESTS),
    "delete_thread": len(test_delete_thread.ALL_DELETE_THREAD_TESTS),
    "delete_for_runs": len(test_delete_for_runs.ALL_DELETE_FOR_RUNS_TESTS),
    "copy_thread": len(test_copy_thread.ALL_COPY_THREAD_TESTS),
    "prune": len(test_prune.ALL_PRUNE_TESTS),
}


def run_suite(name: str, factory: object) -> dict[str, tuple[bool | None, int, int, list[str]]]:
    registered = checkpointer_test(name=name)(factory)
    report = asyncio.run(validate(registered))
    return {
        cap: (result.passed, result.tests_passed, result.tests_failed, result.failures)
        for cap, result in report.results.items()
    }


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_every_capability_passes_every_test(kind: str, tmp_path: Path) -> None:
    if kind == "postgres" and not os.environ.get(PG_ENV):
        pytest.skip(f"{PG_ENV} is not set (no PostgreSQL server for this run)")

    async def factory() -> AsyncIterator[BreakpilotSaver]:
        with fresh_url(kind, tmp_path) as url:
            saver = BreakpilotSaver(url)
            try:
                yield saver
            finally:
                await saver.aclose()

    results = run_suite(f"BreakpilotSaver-{kind}", factory)
    assert set(results) == {cap.value for cap in ALL_CAPABILITIES}
    for cap, (passed, ok, failed, failures) in results.items():
        assert passed is True and failed == 0, f"{cap}: {failures}"
        assert ok == SUITE[cap], f"{cap}: {ok} of {SUITE[cap]} tests ran"
    assert sum(ok for _, ok, _, _ in results.values()) == sum(SUITE.values()) == 81


def test_reference_async_sqlite_saver_on_the_same_suite(tmp_path: Path) -> None:
    """The stock AsyncSqliteSaver: the base capabilities pass, the extended ones are absent."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    counter = iter(range(100))

    async def factory() -> AsyncIterator[AsyncSqliteSaver]:
        path = tmp_path / f"ref-{next(counter)}.db"
        async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
            yield saver

    results = run_suite("AsyncSqliteSaver", factory)
    passed = {cap for cap, (ok, *_rest) in results.items() if ok}
    missing = {cap for cap, (ok, *_rest) in results.items() if ok is None}
    assert passed == {c.value for c in ALL_CAPABILITIES} - missing
    assert Capability.COPY_THREAD.value in missing  # what ours adds
    assert sum(results[cap][1] for cap in passed) == sum(SUITE[cap] for cap in passed)


def test_reference_async_postgres_saver_on_the_same_suite() -> None:
    """The stock AsyncPostgresSaver on the same suite, in a schema of its own."""
    if not os.environ.get(PG_ENV):
        pytest.skip(f"{PG_ENV} is not set (no PostgreSQL server for this run)")
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    from tests.pg_support import isolated_postgres_url, libpq_url

    async def factory() -> AsyncIterator[AsyncPostgresSaver]:
        with isolated_postgres_url(os.environ[PG_ENV], "lgref") as url:
            async with AsyncPostgresSaver.from_conn_string(libpq_url(url)) as saver:
                await saver.setup()
                yield saver

    results = run_suite("AsyncPostgresSaver", factory)
    passed = {cap for cap, (ok, *_rest) in results.items() if ok}
    failing = {cap: r[3] for cap, r in results.items() if r[0] is False}
    # Recorded, not required: the reference is what it is (README, "LangGraph").
    assert passed >= {c.value for c in ALL_CAPABILITIES} - {
        Capability.COPY_THREAD.value,
        Capability.PRUNE.value,
        Capability.DELETE_FOR_RUNS.value,
    }, failing
