"""LangGraph checkpointer on a breakpilot store (`pip install "breakpilot-store[langgraph]"`).

``BreakpilotSaver`` keeps LangGraph threads as sessions of the store, one readable row
per checkpoint. LangGraph is imported only here, never by the core package.
"""

from ..naming import NS_SEPARATOR
from .operations import ThreadConflictError, session_id_for
from .saver import BreakpilotSaver
from .values import UnknownValueTypeError, ValueCodec

__all__ = [
    "NS_SEPARATOR",
    "BreakpilotSaver",
    "ThreadConflictError",
    "UnknownValueTypeError",
    "ValueCodec",
    "session_id_for",
]
