"""Waking the callers on an event loop from a writer thread: one eventfd per loop.

asyncio's own way in from another thread, ``loop.call_soon_threadsafe``, writes a byte
to the loop's self-pipe; the woken loop then runs two callbacks: the one scheduled and
``_read_from_self``, which reads the byte and reads again until the socket raises
``BlockingIOError`` (two system calls and an exception). A lone create is waiting for
all of that: ~14 µs of the ~50 µs between the end of its write on the writer thread and
its caller resuming (benchmarks/OPTIMISATIONS.md, the async API, third round).

Here each event loop gets one ``eventfd``, registered once with ``loop.add_reader``: a
writer thread appends the outcomes to a deque and adds 1 to the eventfd; the loop's one
callback reads it (one system call) and wakes the callers
(:func:`~breakpilot_store.core.group.wake`). Without ``os.eventfd`` (not Linux) or
``add_reader`` (the Windows proactor loop), :func:`waker_for` returns ``None`` and the
writer uses ``call_soon_threadsafe`` as before.
"""

from __future__ import annotations

import collections
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from .group import WaitingWrite, wake

#: A group's writes posted to a loop, and what to call once all are woken.
_Posted = tuple[Sequence[WaitingWrite], Callable[[], object] | None]

#: One waker (or ``None``: not available) per event loop, for as long as the loop lives.
_WAKERS: weakref.WeakKeyDictionary[Any, LoopWaker | None] = weakref.WeakKeyDictionary()

#: Per thread, the last loop looked up and its waker (weak references: neither is
#: kept alive, nor the waker's descriptor open, by the cache): a ``WeakKeyDictionary``
#: lookup makes a weak reference each time, ~2% of the loop's CPU at 1,000 agents
#: (py-spy). A thread runs one loop at a time.
_LAST = threading.local()


class LoopWaker:
    """A loop's way in for writer threads (see the module docstring).

    The eventfd lives as long as the waker: every thread that can still post holds the
    waker (through the pending writes it resolves), so a posted-to descriptor is never
    one already closed and reused.
    """

    __slots__ = ("_fd", "_outcomes", "__weakref__")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._outcomes: collections.deque[_Posted] = collections.deque()
        weakref.finalize(self, os.close, fd)

    def post(self, items: Sequence[WaitingWrite], done: Callable[[], object] | None) -> None:
        """Hand ``items`` (their outcomes set) to the loop; any thread.

        ``done`` as for :func:`~breakpilot_store.core.group.wake`.
        """
        self._outcomes.append((items, done))  # before the write: the loop finds it
        os.eventfd_write(self._fd, 1)

    def _ready(self) -> None:
        """The loop's reader callback: wake every caller posted so far."""
        try:
            os.eventfd_read(self._fd)  # resets the count: one read for any number of posts
        except BlockingIOError:
            pass  # an earlier call took this post's count along with its own
        outcomes = self._outcomes
        while outcomes:
            items, done = outcomes.popleft()
            wake(items, 0, done)


def waker_for(loop: Any) -> LoopWaker | None:
    """The waker of ``loop``, made on first use; call on the loop's own thread.

    ``None`` where the loop or the platform has no use for one (no ``os.eventfd``, or a
    loop without ``add_reader``): post with ``call_soon_threadsafe`` then.
    """
    cached = getattr(_LAST, "pair", None)  # (every write looks it up: see _LAST)
    if cached is not None and cached[0]() is loop:
        # Alive as long as the loop is (_WAKERS): the weak reference still holds it.
        return None if cached[1] is None else cached[1]()
    try:
        waker = _WAKERS[loop]
    except KeyError:
        waker = _make(loop)
        _WAKERS[loop] = waker
    _LAST.pair = (weakref.ref(loop), None if waker is None else weakref.ref(waker))
    return waker


def _make(loop: Any) -> LoopWaker | None:
    waker = None
    if hasattr(os, "eventfd"):
        fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        waker = LoopWaker(fd)
        try:
            loop.add_reader(fd, waker._ready)
        except (NotImplementedError, AttributeError):
            waker = None  # (its finalizer closes the descriptor)
    return waker
