"""One conversation turn per process: ``python -m tests.integrations.turn_workers KIND DB TEXT``.

Each run builds the agent from scratch (a fresh process, so nothing survives but the
database), runs one ``Runner`` turn driven by a scripted fake model, and prints JSON:
the agent's reply and what the model was shown (which can only contain the earlier
turns if the session was loaded from the store). No network: the models are local
classes and the SDK's tracing is off.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")


def _texts(value: Any) -> list[str]:
    """Every user text in an SDK input list, in order."""
    out = []
    for item in value if isinstance(value, list) else [{"role": "user", "content": value}]:
        if item.get("role") == "user":
            content = item["content"]
            out.append(content if isinstance(content, str) else content[0]["text"])
    return out


async def sdk_turn(db: str, text: str) -> dict[str, Any]:
    from agents import Agent, Runner, function_tool, set_tracing_disabled
    from agents.items import ModelResponse
    from agents.models.interface import Model
    from agents.usage import Usage
    from openai.types.responses import (
        ResponseFunctionToolCall,
        ResponseOutputMessage,
        ResponseOutputText,
    )

    from breakpilot_store.openai_agents import BreakpilotSession

    set_tracing_disabled(True)
    seen: list[list[str]] = []

    @function_tool
    def add(a: int, b: int) -> str:
        """Add two numbers."""
        return str(a + b)

    class ScriptedModel(Model):
        """Replies with what it heard; on "calc" it first calls the add tool."""

        async def get_response(self, system_instructions, input, *args, **kwargs):  # noqa: ANN001, ANN201
            heard = _texts(input)
            seen.append(heard)
            last = input[-1] if isinstance(input, list) else {}
            if heard[-1] == "calc" and last.get("type") != "function_call_output":
                call = ResponseFunctionToolCall(
                    id="fc_1",
                    call_id="call_1",
                    name="add",
                    arguments='{"a": 2, "b": 3}',
                    type="function_call",
                    status="completed",
                )
                return ModelResponse(output=[call], usage=Usage(), response_id=None)
            extra = f" sum={last['output']}" if last.get("type") == "function_call_output" else ""
            message = ResponseOutputMessage(
                id=f"msg_{len(heard)}",
                role="assistant",
                status="completed",
                type="message",
                content=[
                    ResponseOutputText(
                        type="output_text",
                        text=f"turn {len(heard)}: {heard}{extra}",
                        annotations=[],
                    )
                ],
            )
            return ModelResponse(output=[message], usage=Usage(), response_id=None)

        def stream_response(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
            raise NotImplementedError

    agent = Agent(name="assistant", instructions="Be brief.", model=ScriptedModel(), tools=[add])
    async with BreakpilotSession("user-42", store=db) as session:
        result = await Runner.run(agent, text, session=session)
    return {"reply": result.final_output, "seen": seen}


async def adk_turn(db: str, text: str) -> dict[str, Any]:
    from google.adk.agents import LlmAgent
    from google.adk.models.base_llm import BaseLlm
    from google.adk.models.llm_response import LlmResponse
    from google.adk.runners import Runner
    from google.adk.tools.tool_context import ToolContext
    from google.genai import types

    from breakpilot_store.adk import BreakpilotSessionService

    seen: list[list[str]] = []

    def remember(topic: str, tool_context: ToolContext) -> dict[str, Any]:
        """Remember a topic for this user (user: state) and count app-wide calls."""
        tool_context.state["user:topic"] = topic
        tool_context.state["app:calls"] = tool_context.state.get("app:calls", 0) + 1
        tool_context.state["temp:scratch"] = "never stored"
        return {"ok": True}

    class ScriptedLlm(BaseLlm):
        """Replies with what it heard; on "remember X" it first calls the remember tool."""

        async def generate_content_async(self, llm_request, stream=False):  # noqa: ANN001, ANN201
            heard = [
                p.text for c in llm_request.contents if c.role == "user" for p in c.parts if p.text
            ]
            seen.append(heard)
            last = llm_request.contents[-1].parts[0]
            if heard[-1].startswith("remember ") and last.function_response is None:
                call = types.FunctionCall(name="remember", args={"topic": heard[-1][9:]}, id="c1")
                yield LlmResponse(
                    content=types.Content(role="model", parts=[types.Part(function_call=call)])
                )
                return
            reply = f"turn {len(heard)}: {heard}"
            yield LlmResponse(content=types.Content(role="model", parts=[types.Part(text=reply)]))

    agent = LlmAgent(
        name="assistant",
        model=ScriptedLlm(model="scripted"),
        tools=[remember],
        output_key="last_reply",
    )
    service = BreakpilotSessionService(db)
    runner = Runner(agent=agent, app_name="app", session_service=service)
    session = await service.get_session(app_name="app", user_id="user-42", session_id="conv")
    if session is None:
        await service.create_session(app_name="app", user_id="user-42", session_id="conv")
    reply = None
    message = types.Content(role="user", parts=[types.Part(text=text)])
    async for event in runner.run_async(user_id="user-42", session_id="conv", new_message=message):
        if event.is_final_response() and event.content and event.content.parts:
            reply = event.content.parts[0].text
    session = await service.get_session(app_name="app", user_id="user-42", session_id="conv")
    await service.close()
    return {"reply": reply, "seen": seen, "state": session.state, "events": len(session.events)}


if __name__ == "__main__":
    kind, db, text = sys.argv[1:4]
    turn = sdk_turn if kind == "sdk" else adk_turn
    print(json.dumps(asyncio.run(turn(db, text))))
