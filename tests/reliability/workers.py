"""Process entry points for the multiprocessing ("spawn") tests; importable by children."""

from __future__ import annotations

import logging
import traceback
from typing import Any


def write_many(path: str, session_id: str, count: int, start: Any, results: Any) -> None:
    """Open a store, wait for ``start``, create ``count`` checkpoints; report ids and errors."""
    from breakpilot_store import CheckpointStore

    ids: list[str] = []
    errors: list[str] = []
    try:
        store = CheckpointStore(path)
        start.wait(60)
        for i in range(count):
            try:
                ids.append(store.create(session_id, f"n{i % 7}", {"i": i}).id)
            except Exception as exc:  # every error is a failure the parent reports
                errors.append(f"{type(exc).__name__}: {exc}")
        store.close()
    except Exception:
        errors.append(traceback.format_exc())
    results.put((session_id, ids, errors))


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.upgrades = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "Running upgrade" in record.getMessage():
            self.upgrades += 1


def open_once(path: str, start: Any, results: Any) -> None:
    """Wait for ``start``, open the store; report how many alembic upgrades this process ran."""
    counter = _Counter()
    log = logging.getLogger("alembic")
    log.setLevel(logging.INFO)
    log.addHandler(counter)
    try:
        from breakpilot_store import CheckpointStore

        start.wait(60)
        store = CheckpointStore(path)
        store.create("opener", "hello", {})
        store.close()
        results.put((counter.upgrades, None))
    except Exception:
        results.put((counter.upgrades, traceback.format_exc()))
