"""A chat-history agent state of a given size: what real agents checkpoint.

Messages of ~70 words, every fourth an assistant turn with a tool call (a name, an id
and JSON arguments) followed by the tool's result; a small state dict beside them. The
state grows by whole messages until its compact JSON reaches the size asked for, so
``chat_state(step, 120_000)`` is ~120 KB. Deterministic for the same arguments;
generated outside every timed region.
"""

from __future__ import annotations

import functools
import json
from typing import Any

_WORDS = (
    "the report lists three risks supplier concentration currency exposure and a "
    "pending regulatory review each needs a mitigation plan before the board meets "
    "next quarter we should cite page numbers summarise the findings in plain words "
    "and check the figures against the ledger export from finance größe geprüft ✓"
).split()

#: Sizes used by the large-state workloads: ~1 KB, ~120 KB and ~1 MB.
SIZES: dict[str, int] = {"1 KB": 1_000, "120 KB": 120_000, "1 MB": 1_000_000}


def _text(seed: int, words: int = 70) -> str:
    n = len(_WORDS)
    return " ".join(_WORDS[(seed * 7 + i * 3) % n] for i in range(words))


def _message(i: int, step: int) -> dict[str, Any]:
    seed = i * 31 + step
    if i % 4 == 2:
        return {
            "role": "assistant",
            "content": _text(seed, 20),
            "tool_calls": [
                {
                    "id": f"call_{step}_{i}",
                    "type": "function",
                    "function": {
                        "name": "search_documents",
                        "arguments": json.dumps({"query": _text(seed, 6), "top_k": 5}),
                    },
                }
            ],
        }
    if i % 4 == 3:
        return {"role": "tool", "tool_call_id": f"call_{step}_{i - 1}", "content": _text(seed)}
    return {"role": "user" if i % 4 == 0 else "assistant", "content": _text(seed), "id": i}


@functools.lru_cache(maxsize=8)
def _messages_for(size: int) -> int:
    """How many messages make a state of ``size`` bytes (measured once per size)."""
    count = 1
    while len(_encoded(chat_state_n(1, count))) < size:
        count = max(count + 1, int(count * size / max(len(_encoded(chat_state_n(1, count))), 1)))
    return count


def _encoded(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def chat_state_n(step: int, messages: int) -> dict[str, Any]:
    """A state with ``messages`` messages at ``step`` (a fresh dict every call)."""
    return {
        "step": step,
        "messages": [_message(i, step) for i in range(messages)],
        "state": {"task": "summarise-quarterly-report", "turn": step, "done": False},
    }


def chat_state(step: int, size: int) -> dict[str, Any]:
    """A state of about ``size`` bytes of compact JSON at ``step``."""
    return chat_state_n(step, _messages_for(size))


def encoded_size(size: int) -> int:
    """The exact JSON size of the states :func:`chat_state` makes for ``size``."""
    return len(_encoded(chat_state(1, size)))
