"""``fork()`` waits for the store calls in progress on other threads.

A forked child gets a copy of the parent's memory but only the forking thread. If
another thread is inside a store call at that moment, the child inherits whatever that
call held, frozen: a SQLite connection's mutex (any use of it in the child then hangs),
and SQLite's in-process lock state, which is shared by every connection to the file in
the process. A write transaction caught this way leaves the child believing it holds
the WAL write lock, so every write from the child fails as busy, forever, even through
a new store. Nothing in the child can release that state safely: rolling the inherited
transaction back would rewrite the ``-shm`` index the parent is still using.

So the store never lets a fork land inside one of its calls: each call (a transaction,
a hot-path statement, opening or closing connections) holds this gate, and an
``os.register_at_fork`` hook makes ``fork()`` wait until no other thread holds it,
while new calls wait for the fork to finish. Calls are cheap to count: each thread
keeps its own depth, and the forking thread reads them all (the GIL orders the two
sides' flag writes and reads, Dekker-style, so no lock is taken on the hot path). The
forking thread's own calls do not count: a process may fork from inside a call, e.g.
while it iterates an export, and then the child inherits that thread's transaction
as it would its variables.

An iterator that stays open between items (``iter_checkpoints``, ``export_bytes``)
releases the gate while it is suspended (:meth:`ForkGate.suspending`), so a slow
consumer never holds up a fork; its connection is then idle in a read transaction,
which the child leaves alone.

The wait is bounded by :data:`FORK_WAIT` seconds: a call that never ends (a generator
of entries blocked on the forking thread, say) must not deadlock the fork. Past it the
fork goes ahead as before and a :class:`RuntimeWarning` says why the child may find
the database busy.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
import weakref
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

#: Seconds ``fork()`` waits for other threads' store calls to finish.
FORK_WAIT = 30.0


class _Depth:
    """How deep one thread is in store calls (0: not in one)."""

    __slots__ = ("depth", "__weakref__")

    def __init__(self) -> None:
        self.depth = 0


class ForkGate:
    """Counts the store calls in progress per thread; lets ``fork()`` wait for them."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._threads: weakref.WeakSet[_Depth] = weakref.WeakSet()
        self._register = threading.Lock()
        self._forking = False
        self._forking_pid = 0
        self._resume = threading.Event()
        self._resume.set()
        self.timed_out = False

    def _mine(self) -> _Depth:
        try:
            return self._local.depth
        except AttributeError:
            state = self._local.depth = _Depth()
            with self._register:
                self._threads.add(state)
            return state

    def enter(self) -> None:
        """Start a store call on this thread (waits while a fork is in progress)."""
        state = self._mine()
        if state.depth:
            state.depth += 1
            return
        state.depth = 1
        while self._forking:  # read after our own flag is set: see the module docstring
            if os.getpid() != self._forking_pid:
                # A child, before its after-fork hooks: Python drops the other threads'
                # states there, and their connections go back to the pool (a finished
                # thread's pin). Nothing runs concurrently in the child: go ahead.
                return
            state.depth = 0
            self._resume.wait()
            state.depth = 1

    def exit(self) -> None:
        """End a store call on this thread."""
        state = self._mine()
        if state.depth > 0:
            state.depth -= 1

    def __enter__(self) -> None:
        self.enter()

    def __exit__(self, *exc_info: object) -> None:
        self.exit()

    def suspending(self, items: Iterable[T]) -> Iterator[T]:
        """Yield from ``items``, releasing the gate while the consumer holds each item.

        Used inside a call that holds the gate, around the yields of an iterator that
        may stay open (and may be resumed on another thread).
        """
        for item in items:
            self.exit()
            try:
                yield item
            finally:
                self.enter()

    # -- the fork hooks ----------------------------------------------------------------

    def before_fork(self) -> None:
        """Wait (up to :data:`FORK_WAIT`) until no other thread is inside a store call."""
        mine = getattr(self._local, "depth", None)
        self._resume.clear()
        self._forking_pid = os.getpid()
        self._forking = True
        deadline = time.monotonic() + FORK_WAIT
        delay = 0.0002
        self.timed_out = False
        while True:
            with self._register:
                busy = [s for s in self._threads if s.depth and s is not mine]
            if not busy:
                return
            if time.monotonic() > deadline:
                self.timed_out = True
                warnings.warn(
                    f"fork() waited {FORK_WAIT:g} s for {len(busy)} other thread(s) to "
                    "finish a breakpilot_store call and went ahead: the child may find "
                    "the database busy",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def after_fork_in_parent(self) -> None:
        """Let the parent's threads start calls again."""
        self._forking = False
        self._resume.set()

    def after_fork_in_child(self) -> None:
        """Start afresh: the child has only the forking thread."""
        mine = getattr(self._local, "depth", None)
        for state in list(self._threads):
            if state is not mine:
                state.depth = 0
        # Locks another thread held at the fork stay held in the child: new ones.
        self._register = threading.Lock()
        self._resume = threading.Event()
        self._resume.set()
        self._forking = False


#: The process's gate: every store of the process shares it (a fork copies them all).
GATE = ForkGate()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=GATE.before_fork,
        after_in_parent=GATE.after_fork_in_parent,
        after_in_child=GATE.after_fork_in_child,
    )
