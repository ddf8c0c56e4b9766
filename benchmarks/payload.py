"""Deterministic ~1 KB checkpoint payloads and names from a set of 10.

Every contender gets exactly the same sequence of ``(name, data)`` for the same
``(session_index, step)``, so the runs are comparable and repeatable. Generation is
cheap (a few µs) and always happens outside the timed region.
"""

from __future__ import annotations

import json
from typing import Any

NAMES: tuple[str, ...] = (
    "task_started",
    "plan_made",
    "tool_called",
    "tool_result",
    "llm_called",
    "llm_response",
    "state_saved",
    "subtask_done",
    "error_recovered",
    "task_done",
)

_SENTENCES: tuple[str, ...] = (
    "Please summarise the quarterly report and list the three largest risks.",
    "I will read the report section by section and collect the risks first.",
    "Calling search_documents with query 'quarterly report risks' (top_k=5).",
    "Found 5 documents; the most relevant is finance/q3-report.pdf, pages 4-9.",
    "Risk 1: supplier concentration; 62% of parts come from two vendors.",
    "Risk 2: currency exposure after the expansion into three new markets.",
    "Risk 3: a pending regulatory review of the data-retention practices.",
    "Should the summary include the mitigation plans proposed by the board?",
    "Yes, one sentence per risk, and cite the page numbers you used.",
    "Draft ready: 214 words, three risks, each with a page reference.",
    "Größe der Antwort geprüft – keine Überschreitung des Limits (✓).",
    "Retrying the tool call after a timeout; attempt 2 of 3.",
)

_ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool", "assistant", "user")
_TOOLS: tuple[str, ...] = ("search_documents", "read_pdf", "calculator", "send_mail")


def _mix(session_index: int, step: int) -> int:
    """A cheap deterministic 32-bit hash of the pair (no global RNG state)."""
    x = (session_index * 0x9E3779B1 + step * 0x85EBCA77 + 0x165667B1) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
    x ^= x >> 12
    return x


def name_for(session_index: int, step: int) -> str:
    """The checkpoint name for this step: one of the 10 ``NAMES``."""
    return NAMES[_mix(session_index, step) % len(NAMES)]


def payload_for(session_index: int, step: int) -> dict[str, Any]:
    """A ~1 KB JSON-compatible agent state: a step counter, chat messages, a state dict.

    Args:
        session_index: Index of the session (varies the content between sessions).
        step: The step counter, 1-based.

    Returns:
        A fresh dict (never shared between calls), safe to hand to any contender.
    """
    h = _mix(session_index, step)
    n = len(_SENTENCES)
    messages = [
        {"role": role, "content": _SENTENCES[(h + 5 * i) % n], "turn": step * 6 + i}
        for i, role in enumerate(_ROLES)
    ]
    return {
        "step": step,
        "messages": messages,
        "state": {
            "task": "summarise-quarterly-report",
            "progress": round((h % 1000) / 1000, 3),
            "tools_used": [_TOOLS[(h >> s) % len(_TOOLS)] for s in (0, 3, 7)],
            "retries": (h >> 11) % 3,
            "done": False,
            "notes": _SENTENCES[(h >> 5) % n] + " " + _SENTENCES[(h >> 9) % n],
            "budget": {"tokens_left": 100_000 - step, "usd_left": 5.0},
        },
    }


def encoded_size(session_index: int = 0, step: int = 1) -> int:
    """Size in bytes of one payload as compact UTF-8 JSON (for the report)."""
    text = json.dumps(payload_for(session_index, step), ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8"))
