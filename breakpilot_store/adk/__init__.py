"""Google ADK sessions on breakpilot_store (extra ``[adk]``).

::

    from breakpilot_store.adk import BreakpilotSessionService

    service = BreakpilotSessionService("agents.db")
    runner = Runner(agent=agent, app_name="app", session_service=service)
"""

try:
    import google.adk  # noqa: F401 - only to name the missing extra
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "breakpilot_store.adk needs Google ADK: pip install 'breakpilot-store[adk]'"
    ) from exc

from .errors import AdkSessionExistsError, AdkSessionNotFoundError, AdkStaleSessionError
from .operations import SESSION_PREFIX, store_key
from .service import BreakpilotSessionService

__all__ = [
    "SESSION_PREFIX",
    "AdkSessionExistsError",
    "AdkSessionNotFoundError",
    "AdkStaleSessionError",
    "BreakpilotSessionService",
    "store_key",
]
