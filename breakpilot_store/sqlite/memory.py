"""One in-memory SQLite database per store, usable from any thread.

An in-memory database lives inside its connection: SQLAlchemy's default pool for
``sqlite://`` gives each thread a connection of its own, so a second thread saw an
empty database ("no such table"). Here the store keeps exactly one connection (made
with ``check_same_thread=False``) and lends it to one transaction at a time: another
thread waits for it up to ``busy_timeout``, as it would for a file's write lock.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy.pool import StaticPool

from ..errors import StoreBusyError


class SharedMemoryPool(StaticPool):
    """A :class:`StaticPool` whose one connection serves one checkout at a time.

    Args:
        creator: As for any pool.
        timeout: Seconds a checkout waits for the connection (the store's busy_timeout).
        **kw: As for :class:`StaticPool`.
    """

    def __init__(self, creator: Any, timeout: float = 30.0, **kw: Any) -> None:
        super().__init__(creator, **kw)
        self._timeout = timeout
        self._turn = threading.Lock()
        self._owner: int | None = None

    def recreate(self) -> SharedMemoryPool:  # noqa: D102 - as the base class
        return self.__class__(
            self._creator,
            timeout=self._timeout,
            recycle=self._recycle,
            reset_on_return=self._reset_on_return,
            pre_ping=self._pre_ping,
            echo=self.echo,
            logging_name=self._orig_logging_name,
            _dispatch=self.dispatch,
            dialect=self._dialect,
        )

    def _do_get(self) -> Any:
        me = threading.get_ident()
        if self._owner == me:
            # Waiting would wait for ourselves: a call made while this thread's own
            # transaction (an open iterator, say) holds the database.
            raise StoreBusyError(
                "the in-memory database is in use by a transaction of this same thread "
                "(an unfinished iterator?); finish it first"
            )
        if not self._turn.acquire(timeout=self._timeout):
            raise StoreBusyError(
                "the in-memory database was in use by another thread's transaction for "
                f"busy_timeout ({self._timeout:g} s); nothing was written"
            )
        self._owner = me
        try:
            return super()._do_get()
        except BaseException:
            self._owner = None
            self._turn.release()
            raise

    def _do_return_conn(self, record: Any) -> None:
        self._owner = None
        self._turn.release()
