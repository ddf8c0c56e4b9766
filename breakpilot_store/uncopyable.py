"""Stores and managers refuse to be pickled or copied, with a message that says why.

They hold connections, threads and (with a lease) a heartbeat, none of which can cross
into another process or be duplicated. Without this, ``pickle`` (as ``multiprocessing``
does to a ``spawn`` child's arguments) or ``copy.deepcopy`` failed deep inside
SQLAlchemy with ``AttributeError: Can't pickle local object`` or ``TypeError: cannot
pickle 'module' object``.
"""

from __future__ import annotations

from typing import Any, NoReturn


class Uncopyable:
    """Mixin: ``pickle``, ``copy.copy`` and ``copy.deepcopy`` raise a clear ``TypeError``."""

    __slots__ = ()

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        name = type(self).__name__
        raise TypeError(
            f"a {name} cannot be pickled or copied: it holds open connections and "
            "threads; pass its URL (and session id) instead and open one where it is used"
        )
