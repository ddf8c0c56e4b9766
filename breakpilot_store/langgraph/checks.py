"""The saver's argument checks: LangGraph configs, ids, limits and id lists.

LangGraph hands the saver what its callers put in ``config["configurable"]``; a
hostile campaign found that wrong types and unencodable text there reached SQLite or
orjson as ``AttributeError``, ``ValueError``, ``OverflowError`` or
``UnicodeEncodeError``. Each check here turns them into the store's typed errors
before anything runs, so a refused call writes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import orjson

from ..codec import check_key
from ..errors import BreakpilotStoreError, CheckpointTypeError, CheckpointValueError

#: A limit above this is "all": no thread holds more rows (and it fits a 64-bit bind).
MAX_LIMIT = 2**62


def configurable(config: Any, what: str = "config") -> dict[str, Any]:
    """Return ``config["configurable"]`` (``{}`` if absent), checking the types."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise CheckpointTypeError(
            f"{what} must be a dict (a RunnableConfig), not {type(config).__name__}"
        )
    inner = config.get("configurable") or {}
    if not isinstance(inner, dict):
        raise CheckpointTypeError(
            f"{what}['configurable'] must be a dict, not {type(inner).__name__}"
        )
    return inner


def optional_id(value: Any, what: str) -> str | None:
    """A checkpoint id (or task id, channel): ``None``, or a str a database can store."""
    if value is None:
        return None
    return check_key(value, what)


def config_id(value: Any, what: str) -> str | None:
    """A config's ``checkpoint_id``: as :func:`optional_id`, with ``""`` meaning none.

    SqliteSaver and InMemorySaver read an empty one as "the newest".
    """
    return None if isinstance(value, str) and not value else optional_id(value, what)


def checkpoint(value: Any) -> str:
    """Check a checkpoint handed to ``put`` and return its id.

    A dict with a str ``id`` (LangGraph's are uuid6 text) and, if it has them, a dict of
    channel values. Anything else was stored before and then could not be read back.
    """
    if not isinstance(value, dict):
        raise CheckpointTypeError(f"checkpoint must be a dict, not {type(value).__name__}")
    if "id" not in value:
        raise CheckpointValueError("checkpoint has no 'id'")
    values = value.get("channel_values", {})
    if not isinstance(values, dict):
        raise CheckpointTypeError(
            f"checkpoint['channel_values'] must be a dict, not {type(values).__name__}"
        )
    return check_key(value["id"], "checkpoint['id']")


def limit(value: Any) -> int | None:
    """``list``'s ``limit``: ``None`` or an int; beyond any thread's size means all."""
    if value is None:
        return None
    if type(value) is not int:
        raise CheckpointTypeError(f"limit must be an int or None, not {type(value).__name__}")
    return None if value > MAX_LIMIT else value


def id_list(values: Any, what: str) -> list[str]:
    """Run or thread ids: an iterable of ids (not one str, which would be its characters).

    Items that are not str (a run's ``UUID``) are taken as their ``str``, as before.
    """
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise CheckpointTypeError(f"{what} must be a list of ids, not {type(values).__name__}")
    one = what[:-1] if what.endswith("s") else what
    return [check_key(v if isinstance(v, str) else str(v), one) for v in values]


@contextlib.contextmanager
def encodable(what: str) -> Iterator[None]:
    """Turn orjson's refusal (a lone surrogate in a value) into a typed error.

    A typed error the value hook raised inside orjson (``UnknownValueTypeError``, a
    ``TypeError``, as the README says) leaves as it is, not rewrapped.
    """
    try:
        yield
    except BreakpilotStoreError:
        raise  # (orjson.JSONEncodeError is TypeError itself: UnknownValueTypeError is one)
    except orjson.JSONEncodeError as exc:
        raise CheckpointValueError(f"{what} cannot be stored as JSON: {exc}") from exc
