"""Drive the async API from sync test code: one event loop on a thread, calls wait for it.

``blocking(obj, loop)`` wraps an ``AsyncCheckpointStore`` or ``AsyncCheckpointManager``
so that the contract tests written against the sync API run unchanged against the async
one: a coroutine method becomes a call that waits for its result (its exception is
raised as is), an async iterator becomes an iterator, ``len(m)`` is ``await m.count()``
and ``iter(m)`` is ``async for``.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Iterator
from typing import Any


class LoopThread:
    """An event loop running on a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, awaitable: Any) -> Any:
        async def wrapped() -> Any:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout=120)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


def _pull(aiterator: Any, runner: LoopThread) -> Iterator[Any]:
    async def step() -> tuple[bool, Any]:
        try:
            return True, await aiterator.__anext__()
        except StopAsyncIteration:
            return False, None

    while True:
        more, value = runner.run(step())
        if not more:
            return
        yield value


class Blocking:
    """A sync face of an async store or manager (see the module docstring)."""

    def __init__(self, target: Any, runner: LoopThread) -> None:
        self.target = target
        self.runner = runner

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.target, name)
        if inspect.iscoroutinefunction(attribute):

            def call(*args: Any, **kwargs: Any) -> Any:
                return self.runner.run(attribute(*args, **kwargs))

            return call
        if inspect.isasyncgenfunction(attribute):

            def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
                return _pull(attribute(*args, **kwargs), self.runner)

            return stream
        if name == "store":
            return Blocking(attribute, self.runner)
        return attribute

    def __len__(self) -> int:
        return self.runner.run(self.target.count())

    def __iter__(self) -> Iterator[Any]:
        return _pull(self.target.__aiter__(), self.runner)

    def __enter__(self) -> Blocking:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.runner.run(self.target.close())
