"""Hostile requests to the web view, over real HTTP to the real server (round 3).

Found: numbers past 64 bits in ``page`` and ``before`` and an idle time reaching
before year 1 became 500 pages (``OverflowError`` binding or subtracting them); a
60,000-character prefix a 503 "LIKE pattern too complex" where the API (and
PostgreSQL) answer "no session". Every request here must get an answer that is not a
5xx, a hostile id must come back escaped, and the database must be byte-for-byte the
same afterwards (the view is read-only).
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse

from breakpilot_store import CheckpointStore

SCRIPT = "<script>alert(1)</script>"
HUGE = "9" * 30


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_hostile_query_strings_get_answers_not_errors(serve, tmp_path):
    db = tmp_path / "a.db"
    with CheckpointStore(db) as store:
        store.create(SCRIPT, "<img src=x onerror=alert(2)>", {"k": "</script>" + SCRIPT})
        store.create("agent-7", "plan", {"step": 1})
        store.wal_checkpoint("TRUNCATE")
    before = _digest(db)
    server = serve(db)
    sid = urllib.parse.quote(SCRIPT)
    paths = [
        f"?page={HUGE}",
        f"?page=-{HUGE}",
        "?idle=9999999w",
        "?idle=999999999d",
        "?idle=nan",
        "?prefix=" + "x" * 60_000,
        "?prefix=%ED%A0%80",
        "?prefix=%00",
        "?sort=%00&order=%ff",
        f"session?id={sid}&before={HUGE}",
        f"session?id={sid}&before=-{HUGE}",
        "session?id=%ED%A0%80",
        "session?id=%00",
        "session?id=" + "x" * 60_000,
        f"checkpoint?id=agent-7:{HUGE}",
        "checkpoint?id=%ED%A0%80:1",
        "checkpoint?id=%00:1",
        f"diff?a=agent-7:1&b=agent-7:{HUGE}",
        f"api/sessions?page={HUGE}",
        "api/sessions?idle=9999999w",
        "api/sessions?prefix=" + "x" * 60_000,
        f"api/entries?id=agent-7&after={HUGE}&held={HUGE}",
        f"api/entries?id=agent-7&after=-{HUGE}",
        "api/timeline?id=%ED%A0%80",
        f"api/checkpoint?id=agent-7:{HUGE}",
        "static/..%2f..%2fapp.py",
        "static/%2e%2e/%2e%2e/store.py",
    ]
    for path in paths:
        status, body, _ = server.get(path)
        assert status < 500, (path[:80], status, body[:300])
        assert SCRIPT not in body and "<img src=x" not in body, path[:80]
    # The same call means the same thing as the API: no session has so long an id.
    status, body, _ = server.get("api/sessions?prefix=" + "x" * 60_000)
    assert status == 200 and json.loads(body)["total"] == 0
    status, body, _ = server.get("api/sessions?idle=9999999w")  # idle since before year 1
    assert status == 200 and json.loads(body)["total"] == 0
    # A page past the end is empty, not an error; "before" past every seq is the top.
    status, body, _ = server.get(f"api/sessions?page={HUGE}")
    assert status == 200 and json.loads(body)["rows"] == []
    status, body, _ = server.get(f"session?id={sid}&before={HUGE}")
    assert status == 200 and "&lt;script&gt;" in body
    status, body, _ = server.get(f"api/entries?id=agent-7&after={HUGE}")
    assert status == 200 and json.loads(body)["entries"] == []
    server.stop()
    assert _digest(db) == before  # read-only: not one byte changed


def _nested(depth: int) -> dict:
    value: dict = {"leaf": "<b>"}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def test_a_checkpoint_nested_as_deep_as_the_store_allows_is_shown(serve, tmp_path):
    # The store takes nesting up to 500 levels; orjson, which the view's JSON and diff
    # rendered with, stops at 254: both answered 500 on such a checkpoint (and the
    # CLI's `list --json` / `watch --json` stopped with the catch-all's error).
    db = tmp_path / "deep.db"
    with CheckpointStore(db) as store:
        store.create("deep", "shallow", {"k": 1})
        store.create("deep", "deep", _nested(400))
        store.wal_checkpoint("TRUNCATE")
    before = _digest(db)
    server = serve(db)
    status, body, _ = server.get("api/checkpoint?id=deep:2")
    assert status == 200, body[:300]
    assert json.loads(body)["data"] == _nested(400)
    assert "<b>" not in body  # still escaped as \u003c
    status, body, _ = server.get("diff?a=deep:1&b=deep:2")
    assert status == 200, body[:300]
    assert "<b>" not in body
    status, body, _ = server.get("checkpoint?id=deep:2")
    assert status == 200
    assert _digest(db) == before
