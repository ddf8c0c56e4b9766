"""OpenAI Agents SDK sessions on breakpilot_store (extra ``[openai-agents]``).

::

    from breakpilot_store.openai_agents import BreakpilotSession

    session = BreakpilotSession("user-42", store="agents.db")
    result = await Runner.run(agent, "Hello", session=session)
"""

try:
    import agents  # noqa: F401 - only to name the missing extra
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "breakpilot_store.openai_agents needs the OpenAI Agents SDK: "
        "pip install 'breakpilot-store[openai-agents]'"
    ) from exc

from .session import SESSION_PREFIX, BreakpilotSession

__all__ = ["SESSION_PREFIX", "BreakpilotSession"]
