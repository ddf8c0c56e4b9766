"""The web view's gate and its reads on both backends, over real HTTP to the real server."""

from __future__ import annotations

import html
import json
import re
import subprocess

from breakpilot_store import CheckpointManager, CheckpointStore
from breakpilot_store.ui.server import check_binding


def _fill(url: str) -> None:
    with CheckpointStore(url) as store:
        store.create("agent-7", "plan", {"step": 1})
        store.create("agent-7", "act", {"step": 2, "tool": "search"})
        store.create("other", "x", {})


def test_pages_and_json_on_each_backend(serve, backend_url, raw):
    _fill(backend_url)
    raw().age("2026-01-01T00:00:00+00:00", "other")
    server = serve(backend_url)
    status, body, _ = server.get("")
    assert status == 200 and "agent-7" in body and "other" in body
    status, body, _ = server.get("api/sessions?prefix=agent")
    got = json.loads(body)
    assert [r["session_id"] for r in got["rows"]] == ["agent-7"]
    assert got["rows"][0]["checkpoints"] == 2 and got["total"] == 1
    # Idle filter: only the session aged by hand has had no write for an hour.
    got = json.loads(server.get("api/sessions?idle=1h")[1])
    assert [r["session_id"] for r in got["rows"]] == ["other"]
    status, body, _ = server.get("?idle=1h")
    assert "other" in body and "agent-7" not in body
    assert server.get("?idle=soon")[0] == 400
    got = json.loads(server.get("api/sessions?sort=checkpoints&order=desc")[1])
    assert [r["session_id"] for r in got["rows"]] == ["agent-7", "other"]
    status, body, _ = server.get("api/entries?id=agent-7&after=1")
    got = json.loads(body)
    assert [e["seq"] for e in got["entries"]] == [2] and got["last_seq"] == 2
    status, body, _ = server.get("diff?a=agent-7:1&b=agent-7:2")
    assert status == 200 and "data[&#39;tool&#39;]" in body
    status, body, _ = server.get("checkpoint?id=agent-7:2")
    assert status == 200
    assert ("sqlite3 -readonly" if "://" not in backend_url else "psql ") in body
    assert server.get("checkpoint?id=agent-7:9")[0] == 404
    # The view never wrote: no session or checkpoint appeared or changed.
    with CheckpointStore(backend_url) as store:
        assert [s.checkpoints for s in store.list_sessions()] == [2, 1]


def test_nothing_but_get_and_only_loopback_hosts(serve, tmp_path):
    db = tmp_path / "a.db"
    _fill(str(db))
    server = serve(db)
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, body, headers = server.get("api/sessions", method=method)
        assert status == 405, method
    # DNS rebinding: a page on another name that resolves here gets nothing.
    status, _, _ = server.get("", headers={"Host": "evil.example:8765"})
    assert status == 403
    status, _, headers = server.get("", headers={"Host": "localhost:1"})
    assert status == 200
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"


def test_a_token_is_required_on_every_request(serve, tmp_path):
    db = tmp_path / "a.db"
    _fill(str(db))
    token = "s3cret-token-for-the-test"
    server = serve(db, "--token", token)
    assert server.url.endswith(f"?token={token}")
    for path in ("", "session?id=agent-7", "api/sessions", "static/app.js"):
        assert server.get(path)[0] == 401, path
        assert server.get(path, headers={"Authorization": "Bearer wrong"})[0] == 401
        assert server.get(path, headers={"Authorization": f"Bearer {token}"})[0] == 200
        assert server.get(path, headers={"Cookie": f"breakpilot_token={token}"})[0] == 200
    status, _, headers = server.get(f"?token={token}")
    assert status == 200
    assert "HttpOnly" in headers["set-cookie"] and "SameSite=Strict" in headers["set-cookie"]


def test_other_addresses_get_a_token_and_short_ones_are_refused():
    assert check_binding("127.0.0.1", None) is None
    assert check_binding("::1", None) is None
    made = check_binding("0.0.0.0", None)
    assert made is not None and len(made) >= 24
    assert check_binding("192.0.2.1", "x" * 20) == "x" * 20
    import pytest

    from breakpilot_store.errors import CheckpointValueError

    with pytest.raises(CheckpointValueError, match="at least 16"):
        check_binding("0.0.0.0", "short")


def test_ctrl_c_stops_the_server_quietly(serve, tmp_path):
    db = tmp_path / "a.db"
    _fill(str(db))
    server = serve(db)
    assert server.stop() == 0
    assert "Traceback" not in server.proc.stderr.read()


def test_the_shell_command_shown_for_a_checkpoint_shows_it(serve, tmp_path):
    db = tmp_path / "it's here.db"  # a quote in the path and in the session id
    with CheckpointStore(db) as store:
        store.create("o'brien", "plan", {"step": 1, "text": "héllo"})
    server = serve(db)
    status, body, _ = server.get("checkpoint?id=o%27brien:1")
    assert status == 200
    command = html.unescape(re.search(r'<pre class="command" id="command">(.*?)</pre>', body)[1])
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "id = o'brien:1" in done.stdout
    assert '"text":"héllo"' in done.stdout


def test_large_lists_page(serve, tmp_path):
    db = tmp_path / "many.db"
    with CheckpointStore(db) as store:
        for i in range(105):
            store.create(f"s-{i:03d}", "x", {"i": i})
        for i in range(120):
            store.create("long", "step", {"i": i})
    server = serve(db)
    status, body, _ = server.get("?sort=id")
    assert status == 200 and "page 1 of 2" in body
    assert body.count('<tr data-id="') == 100
    status, body, _ = server.get("?sort=id&order=asc&page=2")
    assert status == 200 and body.count('<tr data-id="') == 6  # s-100..s-104 and long
    status, body, _ = server.get("session?id=long")
    seqs = [int(s) for s in re.findall(r'<tr data-seq="(\d+)"', body)]
    assert seqs == list(range(120, 70, -1))  # the newest 50
    older = html.unescape(re.search(r'id="older" href="([^"]+)"', body)[1])
    status, body, _ = server.get(older.lstrip("/"))
    assert [int(s) for s in re.findall(r'<tr data-seq="(\d+)"', body)] == list(range(70, 20, -1))


def test_the_sessions_page_shows_leases_escaped(serve, tmp_path):
    """Revision 0003's lease columns of session_overview show on the sessions page.

    The page shows whatever columns the view has beyond revision 0002's, so the lease
    holder, token and expiry appear as they are; the holder is agent-chosen text, so it
    is escaped (and raw in the JSON API).
    """
    db = tmp_path / "leases.db"
    _fill(str(db))
    mgr = CheckpointManager("agent-7", store=str(db), lease=60.0, owner="<b>worker-1</b>")
    try:
        server = serve(db)
        status, body, _ = server.get("")
        assert status == 200
        for column in ("lease_owner", "lease_token", "lease_expires_at"):
            assert f'<th class="extra">{column}</th>' in body
        assert "&lt;b&gt;worker-1&lt;/b&gt;" in body and "<b>worker-1</b>" not in body
        assert 'id="lease-hint"' not in body  # the schema has them
        got = json.loads(server.get("api/sessions")[1])
        rows = {row["session_id"]: row for row in got["rows"]}
        assert rows["agent-7"]["lease_owner"] == "<b>worker-1</b>"
        assert rows["agent-7"]["lease_token"] == 1
        assert rows["other"]["lease_owner"] is None
    finally:
        mgr.close()


def test_tokens_a_url_cookie_or_header_would_not_keep_are_refused():
    """Found by our hostile round 5: a token with a non-latin-1 character made every
    request a 500 (the cookie could not be encoded); one with a space, '"' or ';' lost
    the cookie, so the page's own requests got 401 after the first load."""
    import pytest

    from breakpilot_store.errors import CheckpointValueError

    for token in ("tökén-€-1234567890abc", "my secret token 12345", 'quote"tok\\en1234567890'):
        with pytest.raises(CheckpointValueError, match="may hold only letters"):
            check_binding("0.0.0.0", token)
    for token in ("plain-token-1234567890", "plus+slash/equals=~_.", "x" * 16):
        assert check_binding("0.0.0.0", token) == token


def test_ids_no_session_can_have_are_not_found_on_each_backend(serve, backend_url):
    """Found by our hostile round 5: ids with NUL or over 1024 characters gave 503 (a
    server error) on /api/checkpoint and /diff, and on PostgreSQL on every page (the
    server refuses a NUL); and an error's JSON echoed a hostile id with a raw '<'."""
    _fill(backend_url)
    server = serve(backend_url)
    long = "x" * 20_000
    for path in (
        "api/checkpoint?id=%00:1",
        f"api/checkpoint?id={long}:1",
        "diff?a=%00:1&b=agent-7:1",
        f"diff?a={long}:1&b=agent-7:1",
        "checkpoint?id=%00:1",
        "session?id=%00",
        f"session?id={long}",
    ):
        assert server.get(path)[0] == 404, path
    for path in ("api/entries?id=%00", "api/timeline?id=%00", f"api/entries?id={long}"):
        status, body, _ = server.get(path)
        assert status == 200, path
        assert json.loads(body).get("exists", False) is False and not json.loads(body).get("points")
    status, body, _ = server.get("api/checkpoint?id=%3Cscript%3Ealert(1)%3C/script%3E:3")
    assert status == 404 and "<" not in body and "\\u003cscript" in body


def test_a_bad_token_is_a_usage_error(tmp_path):
    """Found by our docs audit: a bad --token exited 1 where docs/cli.md says a bad value
    is a usage error (status 2)."""
    from click.testing import CliRunner

    from breakpilot_store.cli.commands import cli

    for token in ("short", "with space 1234567890"):
        result = CliRunner().invoke(
            cli, ["--db", str(tmp_path / "a.db"), "ui", "--host", "0.0.0.0", "--token", token]
        )
        assert result.exit_code == 2, result.output
        assert "Invalid value for --token" in result.output
