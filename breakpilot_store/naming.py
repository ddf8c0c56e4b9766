"""How the framework integrations name the store sessions they keep.

Dependency-free, so that the core (copies and forks of a LangGraph thread) and each
integration agree on one rule without importing one another:

* Google ADK: ``adk:<app>:<user>:<session>`` (``breakpilot_store.adk``);
* the OpenAI Agents SDK: ``oai:<session>`` (``breakpilot_store.openai_agents``);
* a LangGraph thread's namespace: the thread id, then ``|`` and the namespace if it is
  not the root one. In the thread id ``%`` is written ``%25`` and ``|`` ``%7C``
  (revision 0008), so the first ``|`` ends it; the namespace is kept as it is, since
  LangGraph joins a nested namespace's levels with ``|`` itself.

A LangGraph thread never starts a session with an ADK or OpenAI prefix: its rows would
be read as events or items, and theirs as checkpoints of the thread.
"""

from __future__ import annotations

#: The store sessions of Google ADK's sessions begin with this.
ADK_PREFIX = "adk:"
#: The store sessions of the OpenAI Agents SDK's sessions begin with this.
OPENAI_PREFIX = "oai:"
#: Whose sessions those prefixes name, for messages.
INTEGRATION_PREFIXES = {ADK_PREFIX: "a Google ADK", OPENAI_PREFIX: "an OpenAI Agents SDK"}

#: Between a thread id and a non-empty namespace in a session id.
NS_SEPARATOR = "|"


def integration_prefix(session_id: str) -> str | None:
    """The ADK or OpenAI prefix ``session_id`` begins with, if any."""
    for prefix in INTEGRATION_PREFIXES:
        if session_id.startswith(prefix):
            return prefix
    return None


def thread_session_id(thread_id: str, checkpoint_ns: str) -> str:
    """The store session of a LangGraph thread's namespace (see the module docstring)."""
    if "|" in thread_id or "%" in thread_id:
        thread_id = thread_id.replace("%", "%25").replace("|", "%7C")
    return thread_id if not checkpoint_ns else f"{thread_id}{NS_SEPARATOR}{checkpoint_ns}"


def root_thread_of(session_id: str) -> str | None:
    """The thread whose root namespace is ``session_id``, or ``None`` if none can be.

    ``None`` for a session id holding ``|`` (a namespace's), a ``%`` that is not one of
    the two escapes, or an ADK or OpenAI prefix.
    """
    if NS_SEPARATOR in session_id or integration_prefix(session_id) is not None:
        return None
    thread_id = session_id
    if "%" in session_id:
        thread_id = session_id.replace("%7C", "|").replace("%25", "%")
    return thread_id if thread_session_id(thread_id, "") == session_id else None
