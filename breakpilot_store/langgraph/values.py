"""Channel values as readable JSON: plain JSON where it can, a documented tag where not.

LangGraph's own savers store values as msgpack blobs; this module stores them as JSON
text an operator can read with ``json_extract``. What JSON cannot carry becomes a
*tagged object*: a JSON object with the reserved key ``"$type"``.

Built-in tags (the payload is in the other keys)::

    {"$type": "bytes", "b64": "aGk="}           bytes (also "bytearray")
    {"$type": "tuple", "items": [...]}          tuple (also "set", "frozenset", "deque")
    {"$type": "datetime", "iso": "..."}         datetime, date, time (ISO 8601)
    {"$type": "timedelta", "days": 0, "seconds": 5, "microseconds": 0}
    {"$type": "uuid", "value": "..."}           UUID
    {"$type": "decimal", "value": "1.10"}       Decimal (exact)
    {"$type": "float", "value": "nan"}          NaN and the infinities
    {"$type": "int", "value": "123..."}         integers beyond 64 bits
    {"$type": "dict", "items": [[k, v], ...]}   a dict with non-str keys or a "$type" key
    {"$type": "path", "value": "/tmp/x"}        pathlib paths
    {"$type": "zoneinfo", "key": "Europe/Paris"}
    {"$type": "ipaddress", "class": "IPv4Address", "value": "10.0.0.1"}
    {"$type": "pattern", "pattern": "a+", "flags": 0}

Instances of classes: ``"$type"`` is ``"module:QualName"`` and the object's fields are
the other keys, so a message reads as it prints::

    {"$type": "langchain_core.messages.human:HumanMessage", "content": "hi", "id": "..."}

pydantic models (LangChain messages and other serializable objects are pydantic) keep
the fields that differ from their defaults; dataclasses, named tuples and slotted
classes such as ``Send`` keep every field; an ``Enum`` member is ``{"$type": cls,
"value": ...}``. An exception is stored as its ``repr`` string, as LangGraph's default
serializer does.

Loading never imports a module that a stored text names: a class tag resolves only for
classes of ``langchain_core`` and ``langgraph`` and for the classes the user allows
(``allowed_types``). Any other tag raises :class:`UnknownValueTypeError`; so does
storing an instance of a class that loading would refuse, so a thread never holds a
value it cannot read back. There is no pickle anywhere.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import importlib
import ipaddress
import pathlib
import re
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from ..errors import BreakpilotStoreError

#: The reserved key of a tagged object.
TAG = "$type"

#: Modules whose classes load without being allowed explicitly (prefix match).
KNOWN_MODULE_PREFIXES = ("langchain_core.", "langgraph.")

#: The pathlib classes a path is stored as, and read back as: a concrete path of the
#: other system's flavour (it cannot be made here) comes back as its pure class.
_PATH_CLASS = {  # (the concrete classes first: they derive from the pure ones)
    pathlib.PosixPath: "PosixPath",
    pathlib.WindowsPath: "WindowsPath",
    pathlib.PurePosixPath: "PurePosixPath",
    pathlib.PureWindowsPath: "PureWindowsPath",
}
_HERE = pathlib.Path  # PosixPath or WindowsPath, as this system makes them
_PATH_READ: dict[str, Callable[[str], pathlib.PurePath]] = {
    "PurePosixPath": pathlib.PurePosixPath,
    "PureWindowsPath": pathlib.PureWindowsPath,
    "PosixPath": _HERE if _HERE().__class__ is pathlib.PosixPath else pathlib.PurePosixPath,
    "WindowsPath": _HERE if _HERE().__class__ is pathlib.WindowsPath else pathlib.PureWindowsPath,
}

_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_IP_CLASSES = {
    cls.__name__: cls
    for cls in (
        ipaddress.IPv4Address,
        ipaddress.IPv4Interface,
        ipaddress.IPv4Network,
        ipaddress.IPv6Address,
        ipaddress.IPv6Interface,
        ipaddress.IPv6Network,
    )
}
_COLLECTIONS: dict[str, Callable[[list[Any]], Any]] = {
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
    "deque": deque,
}


_MISSING = object()


class UnknownValueTypeError(BreakpilotStoreError, TypeError):
    """A value's type is neither known nor allowed (on store or on load).

    Allow a class with ``BreakpilotSaver(..., allowed_types=[MyModel])``.
    """


def class_key(cls: type) -> str:
    """The tag of a class: ``"module:QualName"``."""
    return f"{cls.__module__}:{cls.__qualname__}"


class ValueCodec:
    """Encode values to tagged JSON text and back, with an allowlist of classes.

    Args:
        allowed_types: Extra classes (or ``"module:QualName"`` strings) that may be
            stored and loaded, beyond those of ``langchain_core`` and ``langgraph``.
    """

    def __init__(self, allowed_types: Iterable[type | str] = ()) -> None:
        self._allowed: dict[str, type | None] = {}
        for item in allowed_types:
            if isinstance(item, type):
                self._allowed[class_key(item)] = item
            elif isinstance(item, str) and ":" in item:
                self._allowed[item] = None  # resolved on first use, by name only
            else:
                raise UnknownValueTypeError(
                    f"allowed_types takes classes or 'module:QualName' strings, not {item!r}"
                )
        self._classes: dict[str, type] = {}
        self._encoders: dict[type, Callable[[Any], Any]] = {}

    def allows(self, key: str) -> bool:
        """Whether values of the class ``"module:QualName"`` may be stored and loaded."""
        return key in self._allowed or key.partition(":")[0].startswith(KNOWN_MODULE_PREFIXES)

    def extended(self, keys: Iterable[str]) -> ValueCodec:
        """A codec that also allows the classes ``keys`` (``"module:QualName"``)."""
        codec = ValueCodec()
        codec._allowed = {**self._allowed, **dict.fromkeys(keys)}
        for key, cls in self._allowed.items():
            codec._allowed[key] = cls
        return codec

    # -- encoding ----------------------------------------------------------------------

    def dumps(self, value: Any) -> str:
        """Return ``value`` as tagged JSON text."""
        return orjson.dumps(self.to_json(value)).decode()

    def to_json(self, value: Any) -> Any:
        """Return a structure of plain JSON types that :meth:`from_json` turns back."""
        kind = type(value)
        if kind is str or kind is bool or value is None:
            return value
        if kind is int:
            return value if _INT_MIN <= value <= _INT_MAX else {TAG: "int", "value": str(value)}
        if kind is float:
            if value != value or value in (float("inf"), float("-inf")):
                return {TAG: "float", "value": repr(value)}
            return value
        if kind is list:
            return [self.to_json(item) for item in value]
        if kind is dict:
            if TAG in value or any(type(key) is not str for key in value):
                return {
                    TAG: "dict",
                    "items": [[self.to_json(k), self.to_json(v)] for k, v in value.items()],
                }
            return {key: self.to_json(item) for key, item in value.items()}
        # Classes seen before go straight to their encoder (a chat history is the same
        # few message classes over and over; the isinstance chain cost ~30% of a put).
        encoder = self._encoders.get(kind)
        if encoder is None:
            encoder = self._encoders[kind] = self._encoder_for(kind)
        return encoder(value)

    def _encoder_for(self, kind: type) -> Callable[[Any], Any]:  # noqa: C901 - one switch
        """The function that encodes instances of ``kind`` (chosen once per class)."""
        if issubclass(kind, enum.Enum):
            key = self._allowed_key(kind)
            return lambda v: {TAG: key, "value": self.to_json(v.value)}
        if issubclass(kind, (bytes, bytearray)):
            name = "bytes" if issubclass(kind, bytes) else "bytearray"
            return lambda v: {TAG: name, "b64": base64.b64encode(v).decode()}
        if issubclass(kind, dt.datetime):
            return lambda v: {TAG: "datetime", "iso": v.isoformat()}
        if issubclass(kind, dt.date):
            return lambda v: {TAG: "date", "iso": v.isoformat()}
        if issubclass(kind, dt.time):
            return lambda v: {TAG: "time", "iso": v.isoformat()}
        if issubclass(kind, dt.timedelta):
            return lambda v: {
                TAG: "timedelta",
                "days": v.days,
                "seconds": v.seconds,
                "microseconds": v.microseconds,
            }
        if issubclass(kind, uuid.UUID):
            return lambda v: {TAG: "uuid", "value": str(v)}
        if issubclass(kind, decimal.Decimal):
            return lambda v: {TAG: "decimal", "value": str(v)}
        if issubclass(kind, pathlib.PurePath):
            # Its class too: read back as Path, a PureWindowsPath became a one-part
            # PosixPath (a different, wrong path).
            name = next(n for k, n in _PATH_CLASS.items() if issubclass(kind, k))
            return lambda v: {TAG: "path", "class": name, "value": str(v)}
        if issubclass(kind, ZoneInfo):
            return lambda v: {TAG: "zoneinfo", "key": v.key}
        if _IP_CLASSES.get(kind.__name__) is kind:
            return lambda v: {TAG: "ipaddress", "class": kind.__name__, "value": str(v)}
        if issubclass(kind, re.Pattern):
            return lambda v: {TAG: "pattern", "pattern": v.pattern, "flags": v.flags}
        if issubclass(kind, BaseException):
            return repr
        if issubclass(kind, tuple) and hasattr(kind, "_asdict"):  # a named tuple
            key = self._allowed_key(kind)
            return lambda v: self._object(key, v._asdict())
        for name, maker in _COLLECTIONS.items():
            if kind is maker:
                return lambda v, name=name: {TAG: name, "items": [self.to_json(i) for i in v]}
        if hasattr(kind, "model_fields") and hasattr(kind, "model_dump"):
            return self._pydantic_encoder(kind)
        if dataclasses.is_dataclass(kind):
            key = self._allowed_key(kind)
            names = [f.name for f in dataclasses.fields(kind)]
            return lambda v: self._object(key, {n: getattr(v, n) for n in names})
        # Subclasses of the JSON types travel as their base type, as with LangGraph's
        # default serializer (an OrderedDict or defaultdict comes back as a dict).
        for base in (str, int, float, list, dict):
            if issubclass(kind, base):
                return lambda v, base=base: self.to_json(base(v))
        slots = getattr(kind, "__slots__", None)
        if slots and kind.__module__.startswith(KNOWN_MODULE_PREFIXES):
            key = self._allowed_key(kind)
            return lambda v: self._object(key, {n: getattr(v, n) for n in slots})
        raise UnknownValueTypeError(
            f"cannot store a value of type {class_key(kind)}: it is not JSON, not "
            "one of the tagged types, and not a pydantic model, dataclass or enum"
        )

    def _object(self, key: str, fields: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {TAG: key}
        to_json = self.to_json
        for name, item in fields.items():
            out[name] = to_json(item)
        return out

    def _pydantic_encoder(self, cls: type) -> Callable[[Any], Any]:
        """The encoder of a pydantic model class: its fields that differ from their defaults.

        One function per class, the defaults computed once: a chat history is the same
        few message classes over and over, re-encoded in every checkpoint of its thread.
        Text, ``None`` and bools are stored as they are without a call to :meth:`to_json`.
        """
        key = self._allowed_key(cls)
        defaults: dict[str, Any] = {}
        for name, field in cls.model_fields.items():  # type: ignore[attr-defined]
            if field.is_required():
                continue
            try:
                defaults[name] = field.get_default(call_default_factory=True)
            except Exception:  # noqa: BLE001 - a factory that needs arguments: keep the field
                continue
        to_json = self.to_json
        get = defaults.get

        def encode(value: Any) -> dict[str, Any]:
            out: dict[str, Any] = {TAG: key}
            # pydantic v2 keeps a model's fields in its __dict__, in declaration order.
            for name, item in value.__dict__.items():
                default = get(name, _MISSING)
                kind = type(item)
                if default is _MISSING or kind is not type(default) or item != default:
                    out[name] = (
                        item if kind is str or item is None or kind is bool else to_json(item)
                    )
            extra = getattr(value, "__pydantic_extra__", None)
            if extra:
                for name, item in extra.items():
                    out[name] = to_json(item)
            return out

        return encode

    def _allowed_key(self, cls: type) -> str:
        key = class_key(cls)
        if key in self._allowed or cls.__module__.startswith(KNOWN_MODULE_PREFIXES):
            self._classes.setdefault(key, cls)
            return key
        raise UnknownValueTypeError(
            f"cannot store a value of type {key}: the class is not allowed, so it could not be "
            "loaded back; allow it with "
            f"BreakpilotSaver(..., allowed_types=[{cls.__qualname__}])"
        )

    # -- decoding ----------------------------------------------------------------------

    def loads(self, text: str | bytes) -> Any:
        """Return the value that :meth:`dumps` wrote as ``text``."""
        return self.from_json(orjson.loads(text))

    def from_json(self, value: Any) -> Any:
        """Turn a structure of plain JSON types back into the value it stands for."""
        kind = type(value)
        if kind is list:
            return [self.from_json(item) for item in value]
        if kind is not dict:
            return value
        tag = value.get(TAG)
        if tag is None:
            return {key: self.from_json(item) for key, item in value.items()}
        return self._untag(tag, value)

    def _untag(self, tag: Any, value: dict[str, Any]) -> Any:  # noqa: C901 - one switch
        try:
            if tag in _COLLECTIONS:
                return _COLLECTIONS[tag]([self.from_json(item) for item in value["items"]])
            if tag == "dict":
                return {self.from_json(k): self.from_json(v) for k, v in value["items"]}
            if tag == "bytes":
                return base64.b64decode(value["b64"])
            if tag == "bytearray":
                return bytearray(base64.b64decode(value["b64"]))
            if tag == "datetime":
                return dt.datetime.fromisoformat(value["iso"])
            if tag == "date":
                return dt.date.fromisoformat(value["iso"])
            if tag == "time":
                return dt.time.fromisoformat(value["iso"])
            if tag == "timedelta":
                return dt.timedelta(
                    days=value["days"], seconds=value["seconds"], microseconds=value["microseconds"]
                )
            if tag == "uuid":
                return uuid.UUID(value["value"])
            if tag == "decimal":
                return decimal.Decimal(value["value"])
            if tag == "float":
                return float(value["value"])
            if tag == "int":
                return int(value["value"])
            if tag == "path":
                return _PATH_READ[value.get("class", "PosixPath")](value["value"])
            if tag == "zoneinfo":
                return ZoneInfo(value["key"])
            if tag == "ipaddress":
                return _IP_CLASSES[value["class"]](value["value"])
            if tag == "pattern":
                return re.compile(value["pattern"], value["flags"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UnknownValueTypeError(f"malformed tagged value {value!r}: {exc}") from exc
        if not isinstance(tag, str) or ":" not in tag:
            raise UnknownValueTypeError(f"unknown value tag {tag!r} in {value!r}")
        return self._revive(self._resolve(tag), value)

    def _resolve(self, key: str) -> type:
        cls = self._classes.get(key)
        if cls is not None:
            return cls
        module_name, _, qualname = key.partition(":")
        if key not in self._allowed and not module_name.startswith(KNOWN_MODULE_PREFIXES):
            raise UnknownValueTypeError(
                f"stored value of type {key} is not allowed; loading imports only known "
                "classes (langchain_core, langgraph) and those given in allowed_types"
            )
        try:
            obj: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise UnknownValueTypeError(f"stored value of type {key} names no class") from exc
        if not isinstance(obj, type):
            raise UnknownValueTypeError(f"stored value of type {key} names no class")
        self._classes[key] = obj
        return obj

    def _revive(self, cls: type, value: dict[str, Any]) -> Any:
        fields = {name: self.from_json(item) for name, item in value.items() if name != TAG}
        try:
            if issubclass(cls, enum.Enum):
                return cls(fields["value"])
            if dataclasses.is_dataclass(cls):
                init = {f.name for f in dataclasses.fields(cls) if f.init}
                obj = cls(**{k: v for k, v in fields.items() if k in init})
                for name, item in fields.items():
                    if name not in init:
                        object.__setattr__(obj, name, item)
                return obj
            return cls(**fields)
        except Exception as exc:
            raise UnknownValueTypeError(
                f"cannot rebuild a stored {class_key(cls)} from {sorted(fields)}: {exc}"
            ) from exc
