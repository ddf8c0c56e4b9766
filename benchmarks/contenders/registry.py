"""Import contenders lazily so that a missing optional dependency skips only that one."""

from __future__ import annotations

from benchmarks.contenders.base import Contender


def load(key: str) -> tuple[Contender | None, str]:
    """The contender for ``key``, or None and the reason it cannot run here."""
    if key == "a":
        from benchmarks.contenders.raw_sqlite import RawSqliteContender

        return RawSqliteContender(), ""
    if key == "c":
        from benchmarks.contenders.seed_memory import SeedContender

        return SeedContender(), ""
    if key == "b":
        from benchmarks.contenders import langgraph_saver

        if langgraph_saver.IMPORT_ERROR is not None:
            return None, (
                f"{langgraph_saver.IMPORT_ERROR}; "
                "install the bench extra: pip install langgraph-checkpoint-sqlite"
            )
        return langgraph_saver.LangGraphContender(), ""
    if key == "store":
        from benchmarks.contenders import product

        if product.IMPORT_ERROR is not None:
            return None, f"import breakpilot_store failed: {product.IMPORT_ERROR}"
        return product.StoreContender(), ""
    return None, f"unknown contender {key!r}"
