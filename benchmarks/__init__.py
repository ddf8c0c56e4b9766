"""Benchmark harness for breakpilot_store (issue 6).

Run from the repository root with ``python -m benchmarks`` or
``python benchmarks/run.py``; ``--quick`` for a smoke run, ``--only WORKLOAD`` for one
workload, ``--out benchmarks/RESULTS.md`` for the report.

Contenders, measured side by side in one run:

- ``store``: the product (``breakpilot_store``), through its public API;
- ``a``: raw stdlib ``sqlite3`` doing the same durable transaction by hand on the
  same schema and PRAGMAs;
- ``b``: LangGraph's ``SqliteSaver`` (optional ``bench`` extra:
  ``langgraph-checkpoint-sqlite``);
- ``c``: the seed's in-memory ``CheckpointManager`` (no durability; the ceiling).
"""
