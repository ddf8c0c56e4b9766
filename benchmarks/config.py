"""Run sizes: the issue's full counts, and ``--quick`` counts for a < 60 s smoke run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    """How much work each workload does.

    Attributes:
        quick: True for the smoke-run sizes.
        reps: Repetitions per figure (contenders interleaved within each).
        create_n: Timed creates per repetition (workload 1 and 5).
        warmup: Untimed operations before each timed loop.
        read_sessions: Sessions in the read database.
        read_per_session: Checkpoints per session in the read database.
        read_ops: Timed reads per repetition and read kind.
        seed_read_sessions: Sessions held by (c) for reads (RAM cap; its per-op
            cost does not depend on the number of sessions, a dict lookup).
        cold_sessions: Sessions in the cold-restart database.
        cold_per_session: Checkpoints per session in the cold-restart database.
        writer_procs: Concurrent writer processes.
        writer_creates: Creates per writer process.
        compression_session: Length of the session compressed in one go.
        memory_n: Creates over which RSS growth is measured.
        bulk_n: Checkpoints in the exported/imported session.
    """

    quick: bool
    reps: int
    create_n: int
    warmup: int
    read_sessions: int
    read_per_session: int
    read_ops: int
    seed_read_sessions: int
    cold_sessions: int
    cold_per_session: int
    writer_procs: int
    writer_creates: int
    compression_session: int
    memory_n: int
    bulk_n: int


FULL = Config(
    quick=False,
    reps=5,
    create_n=20_000,
    warmup=200,
    read_sessions=1_000,
    read_per_session=1_000,
    read_ops=20_000,
    seed_read_sessions=100,
    cold_sessions=100,
    cold_per_session=100,
    writer_procs=4,
    writer_creates=2_000,
    compression_session=10_000,
    memory_n=100_000,
    bulk_n=100_000,
)

QUICK = Config(
    quick=True,
    reps=3,
    create_n=500,
    warmup=50,
    read_sessions=40,
    read_per_session=100,
    read_ops=1_000,
    seed_read_sessions=40,
    cold_sessions=10,
    cold_per_session=20,
    writer_procs=4,
    writer_creates=100,
    compression_session=1_000,
    memory_n=1_000,
    bulk_n=2_000,
)
