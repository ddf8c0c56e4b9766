"""The async store's group of creates on PostgreSQL: the schema option, PgBouncer mode.

A group's creates are written in a few statements over arrays (core/group_create), one
of them on the bare psycopg cursor of the group's transaction: it must land in the
store's schema whether ``search_path`` comes with the connection or, behind PgBouncer
in transaction mode, with each transaction.
"""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from breakpilot_store import AsyncCheckpointStore
from tests.pg_support import libpq_url


@pytest.mark.parametrize("pgbouncer", [False, True], ids=["direct", "pgbouncer"])
def test_a_group_of_creates_lands_in_the_stores_schema(pg_base_url, pg_schema, pgbouncer):
    async def main() -> tuple[list[str], int]:
        async with AsyncCheckpointStore(
            pg_base_url, schema=pg_schema, pgbouncer=pgbouncer
        ) as store:
            await store.create("warm", "n", {})
            before = store.commits
            made = await asyncio.gather(
                *(store.create(f"s{i % 10}", f"n{i}", {"i": i}) for i in range(60))
            )
            return [c.id for c in made], store.commits - before

    ids, commits = asyncio.run(main())
    assert ids == [f"s{i % 10}:{i // 10 + 1}" for i in range(60)]
    assert commits < 10  # together: the group path
    with psycopg.connect(libpq_url(pg_base_url)) as conn:
        rows = conn.execute(
            f'SELECT session_id, seq, name, data::text FROM "{pg_schema}".checkpoints '
            "WHERE session_id <> 'warm' ORDER BY session_id, seq"
        ).fetchall()
    expected = sorted((f"s{i % 10}", i // 10 + 1, f"n{i}", f'{{"i":{i}}}') for i in range(60))
    assert rows == expected


def test_lists_of_checkpoints_are_decoded_off_the_event_loop(pg_url, monkeypatch):
    """Through the async connections a list's rows were decoded on the loop's thread,
    all at once (21 states of 0.5 MB held it ~57 ms); now on a worker thread."""
    import threading

    from breakpilot_store import AsyncCheckpointManager
    from breakpilot_store.core import repository

    decoded_on: set[str] = set()
    real_decode = repository.decode

    def recording(text, *args):
        decoded_on.add(threading.current_thread().name)
        return real_decode(text, *args)

    async def main() -> tuple[str, list[int]]:
        async with AsyncCheckpointStore(pg_url) as store:
            mgr = AsyncCheckpointManager("s", store=store)
            for i in range(5):
                await mgr.create("step", {"i": i})
            monkeypatch.setattr(repository, "decode", recording)
            got = [cp.data["i"] for cp in await mgr.get_all()]
            got += [cp.data["i"] for cp in await mgr.get_by_name("step")]
            return threading.current_thread().name, got

    loop_thread, got = asyncio.run(main())
    assert got == [0, 1, 2, 3, 4, 4, 3, 2, 1, 0]
    assert decoded_on and loop_thread not in decoded_on, decoded_on
