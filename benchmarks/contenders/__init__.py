"""The contenders: the product and comparators (a), (b), (c), behind one small interface.

``load_contenders()`` returns every contender that can run here, and a line per one
that cannot (``breakpilot_store`` not importable yet, LangGraph's saver not installed).
"""

from __future__ import annotations

from benchmarks.contenders.base import Backend, Contender, Retention, Writer

__all__ = ["Backend", "Contender", "Retention", "Writer", "load_contenders"]

ORDER: tuple[str, ...] = ("store", "a", "b", "c")


def load_contenders(wanted: tuple[str, ...] = ORDER) -> tuple[list[Contender], list[str]]:
    """Import the contender modules that work in this environment.

    Args:
        wanted: Contender keys to try, in report order.

    Returns:
        The usable contenders, and one human-readable line per skipped contender.
    """
    from benchmarks.contenders.registry import load

    usable: list[Contender] = []
    skipped: list[str] = []
    for key in wanted:
        contender, why = load(key)
        if contender is None:
            skipped.append(f"{key}: unavailable ({why})")
        else:
            usable.append(contender)
    return usable, skipped
