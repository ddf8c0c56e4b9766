"""OpenAI Agents SDK sessions on breakpilot_store (extra ``[openai-agents]``).

::

    from breakpilot_store.openai_agents import BreakpilotSession

    session = BreakpilotSession("user-42", store="agents.db")
    result = await Runner.run(agent, "Hello", session=session)
"""

from .session import SESSION_PREFIX, BreakpilotSession

__all__ = ["SESSION_PREFIX", "BreakpilotSession"]
