"""Portability: whatever SQLite accepts round-trips identically on PostgreSQL.

Hypothesis drives the same calls into a SQLite store and a PostgreSQL store side by side.
For every call either both succeed and return, read back and store exactly the same
thing (down to the JSON text, ``-0.0`` and int-versus-float), or both refuse it with the
same error type. Values include what JSONB would break (``\\u0000``, key order, ``-0.0``,
``1e308``) and what both must refuse (NaN, lone surrogates, huge ints, sets, NUL in ids).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from breakpilot_store import CheckpointStore
from tests.pg_support import isolated_postgres_url, raw_postgres

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Valid values, and (less often) invalid ones that both backends must refuse alike.
text = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["", "\x00", "a\x00b", "\u2028", "😀", "é", '"\\', "\U0010ffff", "\\u0000"]
)
bad_leaves = st.sampled_from(
    [
        "\ud800",
        "a\udfff",
        2**64,
        -(2**63) - 1,
        2**70,
        float("nan"),
        float("inf"),
        float("-inf"),
        (1, 2),
        frozenset({1}),
        b"x",
        {1: "int key"},
    ]
)
leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.sampled_from([0, -(2**63), 2**63 - 1, 2**64 - 1])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([-0.0, 0.0, 1e308, -1e308, 5e-324, 0.1, 1e-7, 1.0, 2.0**53 + 1])
    | text
)
values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)
good_objects = st.dictionaries(text, values, max_size=5)
bad_objects = (
    st.builds(lambda d, k, bad: {**d, k: bad}, good_objects, text, bad_leaves)
    | st.builds(lambda d, k, bad: {**d, k: [bad]}, good_objects, text, bad_leaves)
    | values
)


def mostly(good: st.SearchStrategy, bad: st.SearchStrategy) -> st.SearchStrategy:
    """``good`` about 9 times in 10 (and when shrinking), else ``bad``."""
    return st.integers(0, 9).flatmap(lambda i: bad if i == 9 else good)


objects = mostly(good_objects, bad_objects)
key_chars = st.characters(codec="utf-8", exclude_characters="\x00")
good_keys = st.text(key_chars, min_size=1, max_size=12) | st.sampled_from(
    ["agent-1", "team:a:agent:1", "é😀"]
)
keys = mostly(good_keys, st.sampled_from(["", "a\x00b", "\ud800"]))
offsets = st.timedeltas(
    min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
).map(lambda d: timezone(timedelta(minutes=d // timedelta(minutes=1))))
stamps = st.builds(
    lambda dt, tz: dt.replace(tzinfo=tz),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    offsets,
)


def canon(value: Any) -> Any:
    """A form that tells ``-0.0`` from ``0.0`` and ``1`` from ``1.0`` (plain == does not)."""
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, bool) or value is None:
        return ("const", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, dict):
        return ("dict", [(k, canon(v)) for k, v in value.items()])  # key order matters
    if isinstance(value, list):
        return ("list", [canon(v) for v in value])
    return (type(value).__name__, value)


def outcome(call: Any) -> tuple[str, Any]:
    try:
        return ("ok", call())
    except Exception as exc:  # the error type is what is compared
        return ("error", type(exc), str(exc))


@pytest.fixture(scope="module")
def pair(pg_base_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    path = tmp_path_factory.mktemp("portability") / "agents.db"
    with isolated_postgres_url(pg_base_url, "port") as pg_url:
        with CheckpointStore(path) as lite, CheckpointStore(pg_url) as pg:
            lite_raw = sqlite3.connect(path)
            pg_raw = raw_postgres(pg_url)
            try:
                yield lite, pg, lite_raw, pg_raw
            finally:
                lite_raw.close()
                pg_raw.close()


def stored_text(lite_raw: Any, pg_raw: Any, session_id: str, seq: int) -> tuple[Any, Any]:
    sql = (
        "SELECT name, CAST(data AS TEXT), CAST(metadata AS TEXT), origin_id "
        "FROM checkpoints WHERE session_id = {p} AND seq = {p}"
    )
    lite = lite_raw.execute(sql.format(p="?"), (session_id, seq)).fetchall()
    with pg_raw.cursor() as cur:
        cur.execute(sql.format(p="%s"), (session_id, seq))
        pg = [tuple(r) for r in cur.fetchall()]
    pg_raw.rollback()
    return lite, pg


def same_checkpoint(a: Any, b: Any) -> None:
    assert (a.id, a.name) == (b.id, b.name)
    assert canon(a.data) == canon(b.data) and canon(a.metadata) == canon(b.metadata)
    assert a.timestamp.utcoffset() == b.timestamp.utcoffset() == timedelta(0)


@SETTINGS
@given(session_id=keys, name=keys, data=objects, metadata=st.none() | objects)
def test_create_and_read_back_agree(pair, session_id, name, data, metadata) -> None:
    lite, pg, lite_raw, pg_raw = pair
    a = outcome(lambda: lite.create(session_id, name, data, metadata))
    b = outcome(lambda: pg.create(session_id, name, data, metadata))
    event(f"create: {a[0]}" if a[0] == "ok" else f"create: {a[1].__name__} {a[2][:40]}")
    assert a[0] == b[0], (a, b)
    if a[0] == "error":
        assert a[1] is b[1]
        return
    cp_lite, cp_pg = a[1], b[1]
    same_checkpoint(cp_lite, cp_pg)
    assert canon(cp_lite.data) == canon(data)  # and both kept the caller's value exactly
    got_lite, got_pg = lite.get(cp_lite.id), pg.get(cp_pg.id)
    same_checkpoint(got_lite, got_pg)
    assert got_lite.timestamp == cp_lite.timestamp and got_pg.timestamp == cp_pg.timestamp
    assert canon(got_pg.data) == canon(data)
    assert canon(got_pg.metadata) == canon(metadata if metadata is not None else {})
    # What an operator reads is the same text on both.
    lite_row, pg_row = stored_text(lite_raw, pg_raw, cp_lite.session_id, cp_lite.seq)
    assert lite_row == pg_row and len(pg_row) == 1


@SETTINGS
@given(
    entries=st.lists(
        st.fixed_dictionaries(
            {
                "id": mostly(
                    st.integers(1, 2**62).map(lambda n: f"other:{n}"),
                    # Repeats (no-op or conflict), and own ids keeping seqs beyond 32 bits.
                    st.sampled_from(["other:1", "imp:3", f"imp:{2**31}", f"imp:{2**62}"]),
                ),
                "name": keys,
                "timestamp": stamps.map(datetime.isoformat),
                "data": objects,
            },
            optional={"metadata": objects},
        ),
        min_size=1,
        max_size=3,
    )
)
def test_import_agrees_timestamps_included(pair, entries) -> None:
    lite, pg, lite_raw, pg_raw = pair
    try:
        doc = json.dumps(entries)
    except (TypeError, ValueError):
        doc = entries  # not JSON-serialisable: import the objects themselves
    a = outcome(
        lambda: lite.import_checkpoints("imp", doc if isinstance(doc, list) else json.loads(doc))
    )
    b = outcome(
        lambda: pg.import_checkpoints("imp", doc if isinstance(doc, list) else json.loads(doc))
    )
    event(f"import: {a[0]}" if a[0] == "ok" else f"import: {a[1].__name__}")
    assert a[0] == b[0], (a, b)
    if a[0] == "error":
        assert a[1] is b[1]
    else:
        assert a[1] == b[1]
    cps_lite = lite.list_checkpoints("imp")
    cps_pg = pg.list_checkpoints("imp")
    assert len(cps_lite) == len(cps_pg)
    for x, y in zip(cps_lite, cps_pg, strict=True):
        same_checkpoint(x, y)
        assert x.timestamp == y.timestamp  # TIMESTAMPTZ keeps every microsecond
    assert lite.export_json("imp") == pg.export_json("imp")


def test_session_order_agrees_whatever_the_database_locale(pg_base_url, tmp_path) -> None:
    # An ICU English database sorts "B" after "a" and ignores "_"/"-"; ids and names are
    # COLLATE "C" on PostgreSQL, so the order is SQLite's (code points) all the same.
    from tests.pg_support import admin_connect, libpq_url, unique_schema

    name = unique_schema("icu")
    with admin_connect(pg_base_url) as admin:
        admin.execute(
            f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu "
            "ICU_LOCALE 'en' LOCALE 'C.UTF-8'"
        )
    try:
        base = libpq_url(pg_base_url).rsplit("/", 1)[0]
        pg_url = base.replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"
        ids = ["a", "B", "_x", "é", "Z", "-y", "a b", "ab", "A"]
        orders = []
        for url in (str(tmp_path / "agents.db"), pg_url):
            with CheckpointStore(url) as store:
                for sid in ids:
                    store.create(sid, "n", {})
                orders.append([s.session_id for s in store.list_sessions()])
                orders.append([s.session_id for s in store.list_sessions(prefix="a")])
        assert orders[0] == orders[2] == sorted(ids)  # code point order
        assert orders[1] == orders[3] == ["a", "a b", "ab"]
    finally:
        with admin_connect(pg_base_url) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
