"""The tagged JSON of channel values: round trips, the allowlist, custom serde."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import ipaddress
import pathlib
import re
import sqlite3
import uuid
from collections import deque, namedtuple
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pydantic
import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Command, Interrupt, Send

from breakpilot_store import BreakpilotStoreError
from breakpilot_store.langgraph import BreakpilotSaver, UnknownValueTypeError, ValueCodec


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Point:
    x: int
    y: float
    tags: tuple[str, ...] = ()


class Profile(pydantic.BaseModel):
    name: str
    born: dt.date
    scores: list[int] = []


Pair = namedtuple("Pair", "left right")

SAMPLES: list[Any] = [
    b"\x00\xffbytes",
    bytearray(b"ba"),
    (1, "two", (3.0,)),
    {1, 2, 3},
    frozenset({"a"}),
    deque([1, 2]),
    dt.datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=dt.timezone.utc),
    dt.datetime(2026, 12, 7, 1, 2, 3),
    dt.date(2026, 12, 7),
    dt.time(13, 45, 1, 5),
    dt.timedelta(days=-1, seconds=5, microseconds=7),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    Decimal("1.10"),
    float("inf"),
    float("-inf"),
    2**70,
    -(2**70),
    {1: "int key", (1, 2): "tuple key"},
    {"$type": "a user's own key", "x": 1},
    pathlib.Path("/tmp/x"),
    # Round 6: read back as Path, a PureWindowsPath became a one-part PosixPath.
    pathlib.PureWindowsPath("C:/Users/x"),
    pathlib.PurePosixPath("/a/b"),
    ZoneInfo("Europe/Paris"),
    ipaddress.IPv4Address("10.0.0.1"),
    ipaddress.IPv6Network("2001:db8::/32"),
    re.compile("a+b", re.IGNORECASE),
    {"nested": [{"deep": (b"x", {uuid.UUID(int=1)})}]},
    "text with \x00 NUL and ünïcode",
    None,
    True,
    -0.0,
]


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
def test_builtin_values_round_trip_exactly(value: Any) -> None:
    codec = ValueCodec()
    back = codec.loads(codec.dumps(value))
    assert back == value and type(back) is type(value)


def test_subclasses_of_json_types_come_back_as_the_base_type() -> None:
    from collections import OrderedDict, defaultdict

    codec = ValueCodec()
    value = {"o": OrderedDict(a=1), "d": defaultdict(list, b=[1])}
    back = codec.loads(codec.dumps(value))
    assert back == {"o": {"a": 1}, "d": {"b": [1]}} and type(back["d"]) is dict


def test_nan_round_trips() -> None:
    codec = ValueCodec()
    back = codec.loads(codec.dumps(float("nan")))
    assert back != back


def test_langchain_and_langgraph_objects_round_trip_and_read_plainly() -> None:
    codec = ValueCodec()
    values = [
        HumanMessage(content="hi", id="h1"),
        AIMessage(
            content="",
            id="a1",
            tool_calls=[{"name": "f", "args": {"a": 1}, "id": "c1", "type": "tool_call"}],
            usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
        ),
        ToolMessage(content="42", tool_call_id="c1", id="t1"),
        SystemMessage(content=[{"type": "text", "text": "be brief"}]),
        Document(page_content="doc", metadata={"k": 1}),
        Send("node", {"arg": 1}),
        Interrupt(value={"q": 1}, id="i1"),
        Command(resume="yes"),
    ]
    for value in values:
        text = codec.dumps(value)
        back = codec.loads(text)
        assert back == value and type(back) is type(value), text
    plain = orjson.loads(codec.dumps(values[0]))
    assert plain == {
        "$type": "langchain_core.messages.human:HumanMessage",
        "content": "hi",
        "id": "h1",
    }


def test_what_jsonplus_round_trips_in_graphs_this_does_too() -> None:
    # The values LangGraph's default serializer carries for graphs, compared side by side.
    jsonplus = JsonPlusSerializer()
    codec = ValueCodec(allowed_types=[Point, Profile, Color, Pair])
    for value in [
        Point(1, 2.5, ("a",)),
        Profile(name="p", born=dt.date(2000, 1, 2), scores=[1]),
        Color.BLUE,
        Pair(1, [2]),
        [HumanMessage(content="x", id="1"), {"when": dt.datetime(2026, 1, 1)}],
    ]:
        ours = codec.loads(codec.dumps(value))
        theirs = jsonplus.loads_typed(jsonplus.dumps_typed(value))
        assert ours == value and type(ours) is type(value)
        assert type(theirs) is type(value)
    # Exact also where JsonPlus is not: it brings a tuple back as a list.
    point = Point(1, 2.5, ("a",))
    assert jsonplus.loads_typed(jsonplus.dumps_typed(point)).tags == ["a"]
    assert codec.loads(codec.dumps(point)).tags == ("a",)


def test_unknown_classes_are_refused_on_store_and_on_load() -> None:
    codec = ValueCodec()
    with pytest.raises(UnknownValueTypeError, match="allowed_types=\\[Point\\]"):
        codec.dumps(Point(1, 2.0))
    with pytest.raises(UnknownValueTypeError, match="not allowed"):
        codec.loads('{"$type": "os:system", "command": "echo pwned"}')
    with pytest.raises(UnknownValueTypeError, match="unknown value tag"):
        codec.loads('{"$type": "pickle", "data": "gASV"}')
    with pytest.raises(UnknownValueTypeError, match="malformed"):
        codec.loads('{"$type": "bytes"}')
    with pytest.raises(UnknownValueTypeError, match="names no class"):
        codec.loads('{"$type": "langgraph.types:NoSuchThing"}')
    with pytest.raises(UnknownValueTypeError, match="cannot store"):
        codec.dumps(object())
    assert issubclass(UnknownValueTypeError, BreakpilotStoreError)
    # Allowed by name: loads without the class object having been seen before.
    named = ValueCodec(allowed_types=[f"{Point.__module__}:Point"])
    assert named.loads(ValueCodec([Point]).dumps(Point(3, 4.0))) == Point(3, 4.0)


def test_a_saver_refuses_a_value_it_could_not_load_and_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    with BreakpilotSaver(str(db)) as saver:
        with pytest.raises(UnknownValueTypeError):
            saver.put(
                config, _checkpoint({"p": Point(1, 2.0)}), {"source": "input", "step": -1}, {}
            )
        assert saver.get_tuple(config) is None
    with BreakpilotSaver(str(db), allowed_types=[Point]) as saver:
        saver.put(config, _checkpoint({"p": Point(1, 2.0)}), {"source": "input", "step": -1}, {})
        assert saver.get_tuple(config).checkpoint["channel_values"] == {"p": Point(1, 2.0)}
    with BreakpilotSaver(str(db)) as saver, pytest.raises(UnknownValueTypeError):
        saver.get_tuple(config)  # a reader that does not allow it gets a clear error


def test_pending_writes_refuse_an_unknown_class_as_the_readme_says(tmp_path: Path) -> None:
    # Round 6: put_writes (and so every graph step) rewrapped it as CheckpointValueError,
    # not a TypeError (orjson.JSONEncodeError is TypeError itself, and caught it).
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    with BreakpilotSaver(str(tmp_path / "w.db")) as saver:
        stored = saver.put(config, _checkpoint({}), {"source": "input", "step": -1}, {})
        with pytest.raises(UnknownValueTypeError, match="allowed_types"):
            saver.put_writes(stored, [("v", Point(1, 2.0))], "task")
        assert list(saver.get_tuple(stored).pending_writes) == []
        with pytest.raises(UnknownValueTypeError):
            meta = {"source": "loop", "step": 0, "p": Point(1, 2.0)}
            saver.put(config, _checkpoint({}), meta, {})


def _checkpoint(values: dict[str, Any], checkpoint_id: str | None = None) -> Any:
    from langgraph.checkpoint.base import empty_checkpoint

    cp = empty_checkpoint()
    cp["channel_values"] = values
    cp["channel_versions"] = dict.fromkeys(values, 1)
    if checkpoint_id:
        cp["id"] = checkpoint_id
    return cp


class RecordingSerde(JsonPlusSerializer):
    def __init__(self) -> None:
        super().__init__()
        self.dumped: list[Any] = []
        self.loaded = 0

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        self.dumped.append(obj)
        return super().dumps_typed(obj)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        self.loaded += 1
        return super().loads_typed(data)


def test_a_custom_serde_is_honoured(tmp_path: Path) -> None:
    serde = RecordingSerde()
    db = tmp_path / "s.db"
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    with BreakpilotSaver(str(db), serde=serde) as saver:
        stored = saver.put(
            config, _checkpoint({"k": {"v": 1}}), {"source": "input", "step": -1}, {}
        )
        saver.put_writes(stored, [("k", "w")], "task")
        tup = saver.get_tuple(config)
    assert tup.checkpoint["channel_values"] == {"k": {"v": 1}}
    assert tup.pending_writes == [("task", "k", "w")]
    assert serde.dumped == [{"v": 1}, "w"] and serde.loaded == 2
    raw = sqlite3.connect(db)
    try:
        tag = raw.execute(
            "SELECT json_extract(data, '$.channel_values.k.\"$type\"'), "
            "json_extract(data, '$.channel_values.k.format') FROM checkpoints"
        ).fetchone()
    finally:
        raw.close()
    assert tag == ("serde", "msgpack")


def test_bad_arguments_are_typed_errors(tmp_path: Path) -> None:
    for bad, error in [(0, ValueError), (-1, ValueError), ("3", TypeError), (1.5, TypeError)]:
        with pytest.raises(error) as info:
            BreakpilotSaver(str(tmp_path / "x.db"), keep_last=bad)
        assert isinstance(info.value, BreakpilotStoreError)
    with BreakpilotSaver(str(tmp_path / "x.db")) as saver:
        with pytest.raises(BreakpilotStoreError, match="thread_id"):
            saver.get_tuple({"configurable": {}})
        with pytest.raises(BreakpilotStoreError, match="thread_id must not be empty"):
            saver.get_tuple({"configurable": {"thread_id": ""}})
        with pytest.raises(BreakpilotStoreError, match="strategy"):
            saver.prune(["t"], strategy="keep_some")
        with pytest.raises(BreakpilotStoreError, match="checkpoint_id"):
            saver.put_writes({"configurable": {"thread_id": "t"}}, [("ch", 1)], "task")


def test_a_row_edited_into_bad_json_is_a_typed_error(tmp_path: Path) -> None:
    db = tmp_path / "bad.db"
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    with BreakpilotSaver(str(db)) as saver:
        saver.put(config, _checkpoint({"k": 1}), {"source": "input", "step": -1}, {})
    raw = sqlite3.connect(db)
    with raw:
        raw.execute("UPDATE checkpoints SET data = '{broken' WHERE session_id = 't'")
    raw.close()
    with BreakpilotSaver(str(db)) as saver, pytest.raises(BreakpilotStoreError, match="t:1"):
        saver.get_tuple(config)


def test_a_messages_fields_keep_their_tags_in_every_position() -> None:
    # A model's encoder stores text, None and bools as they are and passes everything
    # else through the tags: a field, a nested value or a pydantic extra.
    import datetime as dt

    at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    codec = ValueCodec()
    message = AIMessage(
        content="x",
        id=None,
        name="n",
        example=True,
        additional_kwargs={"at": at, "n": 2**70},
        seen_at=at,  # an extra (messages allow them)
    )
    text = codec.dumps(message)
    back = codec.loads(text)
    assert back == message and back.additional_kwargs["at"] == at
    assert back.seen_at == at  # type: ignore[attr-defined]
    plain = orjson.loads(text)
    assert plain["example"] is True and plain["name"] == "n" and "id" not in plain
    assert plain["additional_kwargs"]["at"] == {"$type": "datetime", "iso": at.isoformat()}
    assert plain["seen_at"] == {"$type": "datetime", "iso": at.isoformat()}


def test_a_path_subclass_comes_back_as_its_pathlib_class() -> None:
    class Windowsish(pathlib.PureWindowsPath):
        pass

    codec = ValueCodec()
    back = codec.loads(codec.dumps(Windowsish("C:/a/b")))
    assert type(back) is pathlib.PureWindowsPath and back.parts == ("C:\\", "a", "b")
