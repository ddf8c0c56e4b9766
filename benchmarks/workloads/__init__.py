"""The workloads (issue 6, issue 15's ``agents``, issue 19's ``leases``); each adds figures."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.workloads import (
    agents,
    bulk,
    cold_restart,
    compression,
    create,
    large_states,
    leases,
    memory,
    postgres,
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
    "postgres": postgres.run,
    "large_states": large_states.run,
    "leases": leases.run,
}

__all__ = ["WORKLOADS", "Context"]
