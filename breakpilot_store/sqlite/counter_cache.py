"""What a hot-path connection knows of the session counters its own creates left.

``PRAGMA data_version`` changes exactly when another connection, in this process or any
other, has committed to the database since this connection last looked; this
connection's own commits leave it alone. So while it stays the same, the counter this
connection's last create in a session left (its last seq and how many checkpoints it
holds) is still that session's counter, and a create needs neither to read it nor a
transaction of its own making: one guarded ``INSERT`` in autocommit mode, which inserts
only if ``data_version`` is still the one seen here (see
:func:`breakpilot_store.core.repository.append_if_unchanged`). Any other commit (a clear, an
import, another agent's create) changes it, the guard inserts nothing, and the create
falls back to the full transaction, which reads the counter from the database.

The guard is only tried while this connection seems to be the database's only writer
(``quiet``): when the full path finds that someone else committed since this
connection's previous create, it stays on the full path (no wasted statement per create
when several agents share a file) until two full-path creates in a row see no one else.

Each counter also remembers whose lease check its create passed (the *proof*: ``0`` for
a writer without a lease that found no live lease, a holder's fencing token, ``None``
for none). A lease changes only by a commit (an acquisition, a takeover, a release), and
any commit by another connection changes ``data_version``; so while the guard holds, so
does the proof, and a create by the same kind of writer needs no lease check in its
``INSERT`` (see :func:`breakpilot_store.core.repository.append_if_unchanged`).
"""

from __future__ import annotations

from typing import Any


class CounterCache:
    """The session counters one connection's creates left, valid while no one else commits.

    Not thread-safe: each hot-path connection is pinned to one thread and has its own.
    """

    __slots__ = ("_version", "_quiet", "_known", "_staged")

    #: Sessions remembered (an agent writes one; a few managers per thread share this).
    LIMIT = 64

    def __init__(self) -> None:
        self._version: Any = None
        self._quiet = False
        self._known: dict[str, tuple[int, int, int | None]] = {}
        self._staged: tuple[str, int, int, int | None] | None = None

    # -- the full path (inside BEGIN IMMEDIATE) ----------------------------------------

    def lookup(self, data_version: Any, session_id: str) -> tuple[int, int, int | None] | None:
        """Note ``data_version`` as read in a write transaction; return what is known.

        Returns:
            ``(last_seq, held, proof)`` of the session if no other connection has
            committed since this one last looked, else ``None`` (and everything is
            forgotten).
        """
        self._quiet = data_version == self._version
        if not self._quiet:
            self._known.clear()
            self._version = data_version
        return self._known.get(session_id)

    def stage(self, session_id: str, last_seq: int, held: int, proof: int | None = None) -> None:
        """Note the counter the current transaction leaves, to keep once it commits."""
        self._staged = (session_id, last_seq, held, proof)

    def settle(self, committed: bool) -> None:
        """Keep the staged counter if the transaction committed, else forget the session."""
        staged, self._staged = self._staged, None
        if staged is None:
            return
        if committed:
            self._remember(staged[0], staged[1], staged[2], staged[3])
        else:
            self._known.pop(staged[0], None)

    # -- the one-statement path --------------------------------------------------------

    def known(self, session_id: str) -> tuple[Any, int, int, int | None] | None:
        """``(data_version, last_seq, held, proof)`` to guard an append with, if worth it."""
        if not self._quiet:
            return None
        counter = self._known.get(session_id)
        return None if counter is None else (self._version, *counter)

    def appended(self, session_id: str, last_seq: int, held: int, proof: int | None) -> None:
        """Record a guarded append that inserted its row (and so committed)."""
        self._remember(session_id, last_seq, held, proof)

    def forget(self) -> None:
        """Someone else committed (the guard inserted nothing) or the append failed."""
        self._quiet = False
        self._known.clear()

    def _remember(self, session_id: str, last_seq: int, held: int, proof: int | None) -> None:
        known = self._known
        if len(known) >= self.LIMIT and session_id not in known:
            del known[next(iter(known))]  # the oldest entry
        known[session_id] = (last_seq, held, proof)
