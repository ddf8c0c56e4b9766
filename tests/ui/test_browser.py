"""What a person sees in the web view, in real headless Chromium, over a real server."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from breakpilot_store import CheckpointStore

HOSTILE_ID = '<script>window.__pwned = 1</script>"x'
HOSTILE_NAME = '<img src=x onerror="window.__pwned = 2">'
BIG = "é" * 1_000_000  # a 1 MB (2 MB of UTF-8) string


@pytest.fixture
def store_file(tmp_path: Path) -> Path:
    path = tmp_path / "agents.db"
    with CheckpointStore(path) as store:
        for i in range(1, 81):
            name = ("plan", "tool_call", "step_done")[i % 3]
            store.create("agent-7", name, {"step": i, "note": f"n{i}"}, {"k": i}, compress_after=40)
        store.create("agent-8", "start", {"step": 0})
        store.create(HOSTILE_ID, HOSTILE_NAME, {"html": "</script><b>bold</b>", "big": BIG})
        store.create(HOSTILE_ID, "second", {"html": "<i>changed</i>", "added": [1, 2]})
    return path


def held_seqs(path: Path, session: str) -> list[int]:
    """The seqs a session holds, read as an operator would, with a plain sqlite3 connection."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT seq FROM checkpoints WHERE session_id = ? ORDER BY seq", (session,)
        ).fetchall()
    finally:
        conn.close()
    return [r[0] for r in rows]


def gap_ranges(seqs: list[int]) -> list[tuple[int, int]]:
    return [(a + 1, b - 1) for a, b in zip(seqs, seqs[1:], strict=False) if b > a + 1]


def _wait(browser, css: str, timeout: float = 15):
    return WebDriverWait(browser, timeout).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def _not_pwned(browser) -> None:
    assert browser.execute_script("return window.__pwned === undefined")
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018


def test_sessions_page_rows_sorting_filter_and_escaping(browser, serve, store_file):
    server = serve(store_file)
    browser.get(server.url)
    rows = browser.find_elements(By.CSS_SELECTOR, "#sessions tbody tr")
    ids = [row.find_element(By.CSS_SELECTOR, "td.id").text for row in rows]
    assert ids == sorted(["agent-7", "agent-8", HOSTILE_ID])
    # The hostile id is shown as text, its script never ran, and no tag was made of it.
    assert HOSTILE_ID in ids
    assert not browser.find_elements(By.CSS_SELECTOR, "#sessions td.id script, td.name img")
    held = {
        r.find_element(By.CSS_SELECTOR, "td.id").text: r.find_element(By.CSS_SELECTOR, ".held").text
        for r in rows
    }
    assert held["agent-7"] == str(len(held_seqs(store_file, "agent-7")))
    # Sort by checkpoints held, largest first; then filter by prefix.
    browser.find_element(By.LINK_TEXT, "held").click()
    browser.find_element(By.PARTIAL_LINK_TEXT, "held").click()
    first = browser.find_element(By.CSS_SELECTOR, "#sessions tbody tr td.id").text
    assert first == "agent-7"
    box = browser.find_element(By.NAME, "prefix")
    box.send_keys("agent-")
    box.submit()
    ids = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#sessions tbody td.id")]
    assert sorted(ids) == ["agent-7", "agent-8"]
    time.sleep(1.5)  # a live refresh has redrawn the rows by now, escaped again
    ids = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#sessions tbody td.id")]
    assert sorted(ids) == ["agent-7", "agent-8"]
    _not_pwned(browser)


def test_session_page_chart_gaps_and_rows(browser, serve, store_file):
    server = serve(store_file)
    browser.get(server.base + "session?id=agent-7")
    _wait(browser, "#chart canvas")
    legend = browser.find_element(By.CSS_SELECTOR, ".u-legend").text
    for name in ("plan", "tool_call", "step_done"):
        assert name in legend
    # Retention's gaps, as the database holds them, are listed and counted.
    held = held_seqs(store_file, "agent-7")
    gaps = gap_ranges(held)
    assert gaps  # compress_after=40 over 80 creates removed some
    shown = browser.find_element(By.ID, "gaps").text
    for a, b in gaps:
        assert (f"seq {a}–{b}" if b != a else f"seq {a} ") in shown + " "
    assert browser.find_element(By.ID, "removed").text == str(80 - len(held))
    seqs = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#entries tbody tr td.num a")]
    assert seqs == [str(s) for s in sorted(held, reverse=True)]
    # The checkpoint link opens the checkpoint page.
    browser.find_element(By.LINK_TEXT, "80").click()
    _wait(browser, "#data-tree details")
    assert browser.find_element(By.ID, "cp-id").text == "agent-7:80"


def test_hostile_session_page_and_big_value(browser, serve, store_file):
    server = serve(store_file)
    browser.get(server.base + "session?" + urlencode({"id": HOSTILE_ID}))
    _wait(browser, "#chart canvas")
    assert browser.find_element(By.ID, "session-id").text == HOSTILE_ID
    assert HOSTILE_NAME in browser.find_element(By.ID, "entries").text
    _not_pwned(browser)
    # The checkpoint with a 1 MB string: the page shows it cut, with a button for the rest.
    browser.find_element(By.LINK_TEXT, "1").click()
    button = _wait(browser, "#data-tree button")
    assert "show all 1,000,000 characters" in button.text
    assert HOSTILE_NAME == browser.find_element(By.ID, "cp-name").text
    tree = browser.find_element(By.ID, "data-tree").text
    assert '"</script><b>bold</b>"' in tree
    holder = button.find_element(By.XPATH, "..")
    assert len(holder.find_element(By.CSS_SELECTOR, ".str").text) < 5000
    button.click()
    length = browser.execute_script(
        "return arguments[0].querySelector('.str').textContent.length", holder
    )
    assert length == 1_000_002  # the whole string, in quotes
    _not_pwned(browser)
    command = browser.find_element(By.ID, "command").text
    assert command.startswith("sqlite3 -readonly")


def test_diff_page(browser, serve, store_file):
    server = serve(store_file)
    browser.get(server.base + "diff?" + urlencode({"a": f"{HOSTILE_ID}:1", "b": f"{HOSTILE_ID}:2"}))
    summary = browser.find_element(By.ID, "summary").text
    assert summary == "1 added · 1 removed · 2 changed"
    rows = browser.find_elements(By.CSS_SELECTOR, "#changes tbody tr")
    got = {
        r.find_element(By.CSS_SELECTOR, ".path").text: (
            r.find_element(By.CSS_SELECTOR, ".kind").text,
            r.find_element(By.CSS_SELECTOR, ".old").text,
            r.find_element(By.CSS_SELECTOR, ".new").text,
        )
        for r in rows
    }
    assert got["name"] == ("changed", json.dumps(HOSTILE_NAME), '"second"')
    assert got["data['html']"] == ("changed", '"</script><b>bold</b>"', '"<i>changed</i>"')
    assert got["data['added']"][0] == "added"
    assert got["data['big']"][0] == "removed"
    old = got["data['big']"][1]
    assert old.endswith("cut: 1.9 MiB in all") and len(old) < 3000  # a 1 MB value, cut
    _not_pwned(browser)


def test_the_diff_picker_on_the_session_page(browser, serve, store_file):
    server = serve(store_file)
    browser.get(server.base + "session?id=agent-7")
    browser.find_element(By.CSS_SELECTOR, "tr[data-seq='79'] input[name=a]").click()
    browser.find_element(By.CSS_SELECTOR, "tr[data-seq='80'] input[name=b]").click()
    browser.find_element(By.CSS_SELECTOR, "#diff-form button").click()
    _wait(browser, "#summary")
    # Wait for the table itself too: under load the page can be seen half-parsed.
    assert "data['step']" in _wait(browser, "#changes").text


WRITER = """
import sys, time
from breakpilot_store import CheckpointStore
with CheckpointStore(sys.argv[1]) as store:
    for i in range(3):
        store.create("agent-7", "from_another_process", {"i": i})
        time.sleep(0.3)
"""


def test_a_checkpoint_written_by_another_process_appears_live(browser, serve, store_file):
    server = serve(store_file)
    browser.get(server.base + "session?id=agent-7")
    _wait(browser, "#chart canvas")
    browser.get(server.url)
    browser.execute_script("window.__marker = 1")  # the page is never reloaded
    browser.get(server.base + "session?id=agent-7")
    browser.execute_script("window.__marker = 1")
    subprocess.run([sys.executable, "-c", WRITER, str(store_file)], check=True, timeout=60)
    WebDriverWait(browser, 15).until(
        lambda b: (
            b.find_element(By.CSS_SELECTOR, "#entries tbody tr").get_attribute("data-seq") == "83"
        )
    )
    assert browser.execute_script("return window.__marker") == 1
    top = browser.find_element(By.CSS_SELECTOR, "#entries tbody tr")
    assert "from_another_process" in top.text
    assert browser.find_element(By.ID, "last-seq").text == "83"
    assert browser.find_element(By.ID, "new-count").text == "+3 new"
    legend = browser.find_element(By.CSS_SELECTOR, ".u-legend").text
    assert "from_another_process" in legend  # the chart took the new points too
    # And the sessions page counts it without a reload.
    browser.get(server.url)
    browser.execute_script("window.__marker = 2")
    subprocess.run(
        [sys.executable, "-c", WRITER.replace("range(3)", "range(1)"), str(store_file)],
        check=True,
        timeout=60,
    )
    WebDriverWait(browser, 15).until(
        lambda b: b.find_element(By.CSS_SELECTOR, "tr[data-id='agent-7'] .seq").text == "84"
    )
    assert browser.execute_script("return window.__marker") == 2


def test_with_a_token_the_printed_link_opens_a_working_page(browser, serve, store_file):
    token = "a-token-of-the-test-0123456789"
    server = serve(store_file, "--token", token)
    browser.delete_all_cookies()
    browser.get(server.base + "session?id=agent-7")
    assert "a token is required" in browser.find_element(By.TAG_NAME, "body").text
    browser.get(server.url)  # the link the server printed: it carries the token once
    _wait(browser, "#sessions tbody tr")
    # From there the cookie carries it: other pages, their scripts and the live polls.
    browser.get(server.base + "session?id=agent-7")
    _wait(browser, "#chart canvas")
    WebDriverWait(browser, 10).until(lambda b: b.find_element(By.ID, "live").text == "live")
    browser.delete_all_cookies()
