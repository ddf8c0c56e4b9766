"""Long waits are never silent: a spinner on stderr while a statement waits over a second.

A command that needs SQLite's write lock (or a PostgreSQL row lock) while an agent or an
open shell transaction holds it waits up to its busy timeout inside one statement. The
CLI listens to every engine's statement events: when one statement has been running
for :data:`AFTER` seconds, a line on stderr says what it waits for and for how long,
redrawn until the statement returns, then erased. Only on a terminal: pipes, files and
``--json`` consumers never see it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

#: Seconds a statement runs before the notice appears.
AFTER = 1.0
_FRAMES = "|/-\\"


class _Watch:
    """The statement the main thread is in, if any, and since when."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.lock = threading.Lock()

    def before(self, *_args: Any) -> None:
        with self.lock:
            self.since = time.monotonic()

    def after(self, *_args: Any) -> None:
        with self.lock:
            self.since = None


@contextmanager
def lock_wait_notice(stream: Any = None, after: float = AFTER) -> Iterator[None]:
    """Show a spinner on ``stream`` (stderr) while a database statement runs over ``after`` s.

    Does nothing unless the stream is a terminal.
    """
    stream = stream if stream is not None else sys.stderr
    if not (hasattr(stream, "isatty") and stream.isatty()):
        yield
        return
    watch = _Watch()
    main = threading.get_ident()

    def before(*args: Any) -> None:
        if threading.get_ident() == main:
            watch.before()

    def after_statement(*args: Any) -> None:
        if threading.get_ident() == main:
            watch.after()

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after_statement)
    event.listen(Engine, "handle_error", after_statement)
    stop = threading.Event()

    def spin() -> None:
        shown = False
        frame = 0
        while not stop.wait(0.1):
            with watch.lock:
                since = watch.since
            waited = time.monotonic() - since if since is not None else 0.0
            if since is not None and waited >= after:
                stream.write(
                    f"\r{_FRAMES[frame % 4]} waiting for the database for {waited:.0f} s "
                    "(another connection holds a lock; Ctrl-C to give up)"
                )
                stream.flush()
                shown = True
                frame += 1
            elif shown:
                stream.write("\r\x1b[2K")
                stream.flush()
                shown = False
        if shown:
            stream.write("\r\x1b[2K")
            stream.flush()

    thread = threading.Thread(target=spin, name="lock-wait-notice", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        event.remove(Engine, "before_cursor_execute", before)
        event.remove(Engine, "after_cursor_execute", after_statement)
        event.remove(Engine, "handle_error", after_statement)
