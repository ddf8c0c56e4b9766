"""The workloads (seven of issue 6, ``agents`` of issue 15); each ``run(ctx)`` adds figures to ``ctx.results``."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.workloads import (
    agents,
    bulk,
    cold_restart,
    compression,
    create,
    memory,
    reads,
    writers,
)
from benchmarks.workloads.common import Context

WORKLOADS: dict[str, Callable[[Context], None]] = {
    "create": create.run,
    "reads": reads.run,
    "cold_restart": cold_restart.run,
    "writers": writers.run,
    "compression": compression.run,
    "memory": memory.run,
    "bulk": bulk.run,
    "agents": agents.run,
}

__all__ = ["WORKLOADS", "Context"]
