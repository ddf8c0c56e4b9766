"""Overlap making batches (the calling thread) with writing them (one worker thread).

A bulk import is two kinds of work: parsing, validating and encoding entries, which is
Python holding the GIL, and inserting them, which is mostly SQLite's (or the server's)
own work, done with the GIL released. Run one after the other they add up; with the
writes on a second thread they overlap (measured on 100,000 checkpoints: ~1.5 s of
parsing and ~1 s of inserting take ~1.5 s together). A write is a few large statements
per batch, not one per row, because each statement the worker starts must win the GIL
back from the busy parser before it can go on.

Only the store's own connection crosses to the worker, and only one thread uses it at a
time: the caller's thread opens and ends the transaction, the worker runs the
statements in between. The caller's iterable and callbacks stay on the caller's thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

#: Batches made ahead of the writer: enough to keep it busy, few enough that memory
#: stays a handful of batches whatever the document's size.
DEPTH = 2

_DONE = object()


def pipelined(batches: Iterable[T], write: Callable[[T], object], *, threaded: bool) -> None:
    """Call ``write`` on every batch, in order, while the next batches are being made.

    Args:
        batches: Made on the calling thread, as the writer takes them.
        write: Called on a worker thread, one batch at a time, in order.
        threaded: False runs everything on the calling thread (a connection that must
            stay on the thread that made it, such as SQLite's ``:memory:``).

    Raises:
        BaseException: The first error of either side, as it was raised. The other side
            stops at its next batch; the worker has finished when this returns.
    """
    if not threaded:
        for batch in batches:
            write(batch)
        return
    handoff: queue.Queue[object] = queue.Queue(maxsize=DEPTH)
    failed: list[BaseException] = []
    abandon = threading.Event()
    # Set as the worker's last act. Not Thread.join(): on Python 3.11 a join that a
    # Ctrl-C interrupts can mark the thread as stopped while it still runs.
    done = threading.Event()

    def work() -> None:
        try:
            while (batch := handoff.get()) is not _DONE:
                if not abandon.is_set():
                    write(batch)  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failed.append(exc)
            # Keep taking batches so that the maker never blocks on a full queue.
            while handoff.get() is not _DONE:
                pass
        finally:
            done.set()

    worker = threading.Thread(target=work, name="breakpilot-store-writer", daemon=True)
    worker.start()
    finished = False
    try:
        for batch in batches:
            if failed:
                break
            handoff.put(batch)
        finished = True
    finally:
        _finish(handoff, done, abandon, finished)
        worker.join()  # the worker is past its last act: this returns at once
    if failed:
        raise failed[0]


def _finish(
    handoff: queue.Queue[object],
    done: threading.Event,
    abandon: threading.Event,
    finished: bool,
) -> None:
    """Tell the worker there is no more and wait for it, even through a Ctrl-C.

    The caller's transaction ends next, on the connection the worker may still be
    using: so an interruption here (a KeyboardInterrupt, say) is held until the worker
    is done, then raised.
    """
    interrupted: BaseException | None = None
    sent = False
    while True:
        try:
            if not finished:  # the maker failed: the queued batches are not to be written
                abandon.set()
            if not sent:
                handoff.put(_DONE)
                sent = True
            while not done.wait():
                pass
            break
        except BaseException as exc:  # noqa: BLE001 - raised once the worker is done
            interrupted = exc
    if interrupted is not None:
        raise interrupted
