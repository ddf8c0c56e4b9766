"""Make the web view's screenshots in docs/ (``python docs/screenshots.py``).

Builds a small store with an agent session that retention has compressed, starts
``breakpilot-store ui`` on it in a child process, and photographs each page in
Debian's headless Chromium (``/usr/bin/chromium`` + ``/usr/bin/chromedriver``).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from breakpilot_store import CheckpointStore

DOCS = Path(__file__).resolve().parent


def build(path: Path) -> None:
    """Write the sessions the screenshots show: an hour of an agent, compressed."""
    start = datetime.now(timezone.utc) - timedelta(hours=1)
    names = ["plan", "tool_call", "tool_result", "step_done"]
    entries = []
    state: dict = {"step": 0, "messages": [], "todo": ["search", "read", "answer"]}
    for i in range(1, 121):
        state = {
            **state,
            "step": i,
            "messages": [*state["messages"][-4:], {"role": "tool", "text": f"result {i}"}],
        }
        if i == 1 or i > 72:  # what retention left: the first and the newest
            entries.append(
                {
                    "id": f"agent-7:{i}",
                    "name": names[i % 4],
                    "timestamp": (start + timedelta(seconds=30 * i)).isoformat(),
                    "data": state,
                    "metadata": {"model": "m-1", "tokens": 100 + i},
                }
            )
    with CheckpointStore(path) as store:
        store.import_checkpoints("agent-7", entries)
        for sid in ("agent-8", "research-1", "research-2"):
            for i in range(5):
                store.create(sid, "step_done", {"step": i})


def main() -> None:
    """Serve a fresh store and photograph each page."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "agents.db"
        build(db)
        server = subprocess.Popen(
            [sys.executable, "-m", "breakpilot_store", "--db", str(db), "ui", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            url = server.stdout.readline().split()[-1]
            options = webdriver.ChromeOptions()
            options.binary_location = "/usr/bin/chromium"
            for arg in ("--headless=new", "--no-sandbox", "--window-size=1280,900"):
                options.add_argument(arg)
            driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
            wait = WebDriverWait(driver, 10)
            try:
                pages = {
                    "ui-sessions.png": ("", None),
                    "ui-session.png": ("session?id=agent-7", "#chart canvas"),
                    "ui-checkpoint.png": ("checkpoint?id=agent-7:120", "#data-tree details"),
                    "ui-diff.png": ("diff?a=agent-7:119&b=agent-7:120", None),
                }
                for name, (path, selector) in pages.items():
                    driver.get(url + path)
                    if selector:
                        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, selector)))
                    time.sleep(0.5)
                    driver.save_screenshot(str(DOCS / name))
                    print("wrote", DOCS / name)
            finally:
                driver.quit()
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
