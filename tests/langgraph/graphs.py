"""Small real LangGraph graphs for the tests (no network: scripted models and tools)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import interrupt
from typing_extensions import TypedDict


class ChatState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def scripted_agent(state: ChatState) -> dict[str, Any]:
    """A chat model stand-in: asks for the tool once, then answers from its result."""
    last = state["messages"][-1]
    if isinstance(last, ToolMessage):
        model = GenericFakeChatModel(
            messages=iter([AIMessage(content=f"The answer is {last.content}.")])
        )
        return {"messages": [model.invoke(state["messages"])]}
    call = {"name": "multiply", "args": {"a": 6, "b": 7}, "id": f"call-{len(state['messages'])}"}
    return {"messages": [AIMessage(content="", tool_calls=[call])]}


def tool_agent(checkpointer: Any) -> Any:
    """agent -> tools -> agent, with add_messages state and LangGraph's ToolNode."""
    builder = StateGraph(ChatState)
    builder.add_node("agent", scripted_agent)
    builder.add_node("tools", ToolNode([multiply]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


class ReviewState(TypedDict):
    draft: str
    verdict: str


def review_graph(checkpointer: Any) -> Any:
    """write -> review (interrupts for a human verdict) -> end."""

    def write(state: ReviewState) -> dict[str, Any]:
        return {"draft": f"draft of {state['draft']}"}

    def review(state: ReviewState) -> dict[str, Any]:
        answer = interrupt({"question": "approve?", "draft": state["draft"]})
        return {"verdict": answer}

    builder = StateGraph(ReviewState)
    builder.add_node("write", write)
    builder.add_node("review", review)
    builder.add_edge(START, "write")
    builder.add_edge("write", "review")
    builder.add_edge("review", END)
    return builder.compile(checkpointer=checkpointer)


def nested_graph(checkpointer: Any) -> Any:
    """A parent whose node is a subgraph that interrupts (a non-empty checkpoint_ns)."""

    def inner_step(state: ChatState) -> dict[str, Any]:
        answer = interrupt("inner question")
        return {"messages": [AIMessage(content=f"inner got {answer}")]}

    inner = StateGraph(ChatState)
    inner.add_node("inner_step", inner_step)
    inner.add_edge(START, "inner_step")
    inner_graph = inner.compile()

    def outer_step(state: ChatState) -> dict[str, Any]:
        return {"messages": [AIMessage(content="outer done")]}

    outer = StateGraph(ChatState)
    outer.add_node("child", inner_graph)
    outer.add_node("outer_step", outer_step)
    outer.add_edge(START, "child")
    outer.add_edge("child", "outer_step")
    outer.add_edge("outer_step", END)
    return outer.compile(checkpointer=checkpointer)


class CountState(TypedDict):
    count: int
    messages: Annotated[list[AnyMessage], add_messages]


def counting_graph(checkpointer: Any, steps: int, delay: float = 0.0) -> Any:
    """One node that loops ``steps`` times, a message per step (for kill tests)."""

    def step(state: CountState) -> dict[str, Any]:
        if delay:
            time.sleep(delay)
        n = state["count"] + 1
        return {"count": n, "messages": [AIMessage(content=f"step {n}", id=f"m-{n}")]}

    def more(state: CountState) -> str:
        return "step" if state["count"] < steps else END

    builder = StateGraph(CountState)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", more)
    return builder.compile(checkpointer=checkpointer)


def start_count() -> dict[str, Any]:
    return {"count": 0, "messages": [HumanMessage(content="count", id="m-0")]}
