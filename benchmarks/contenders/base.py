"""The interface every contender implements (structural typing, no base class needed)."""

from __future__ import annotations

from typing import Any, Literal, Protocol

Durability = Literal["full", "normal"]
# "default": the contender's own defaults (store and seed: compress_after=50,
# max_checkpoints=100); "off": compression disabled (compress_after and
# max_checkpoints = 10**9). Contenders without retention ignore it.
Retention = Literal["default", "off"]
NO_RETENTION: dict[str, int] = {"compress_after": 10**9, "max_checkpoints": 10**9}


class Writer(Protocol):
    """Creates checkpoints in one session."""

    def create(self, name: str, data: dict[str, Any]) -> str:
        """One durable create; returns the new checkpoint's id."""
        ...


class Backend(Protocol):
    """One open database (or in-memory state) of a contender."""

    def writer(self, session_id: str, retention: Retention = "default") -> Writer:
        """A writer for ``session_id`` (the store's/seed's manager, or a raw handle)."""
        ...

    def get_latest(self, session_id: str) -> Any:
        """The latest checkpoint of the session, fully decoded."""
        ...

    def get(self, session_id: str, seq: int) -> Any:
        """Checkpoint number ``seq`` of the session, fully decoded."""
        ...

    def export(self, session_id: str) -> str:
        """The session as the seed's export JSON (NotImplementedError if none)."""
        ...

    def import_(self, session_id: str, text: str) -> int:
        """Import an export into ``session_id``; returns the count."""
        ...

    def fill(self, sessions: list[tuple[int, str]], per_session: int) -> None:
        """Populate ``per_session`` checkpoints in each session, as fast as it allows.

        Used to build the databases for reads, cold restart and bulk; not timed.

        Args:
            sessions: ``(session_index, session_id)`` pairs; the index seeds payloads.
            per_session: Checkpoints per session, seq 1..per_session.
        """
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


class Contender(Protocol):
    """A factory of backends plus what the report needs to know about it."""

    key: str
    label: str
    durable: bool

    def open(self, path: str, durability: Durability) -> Backend:
        """Open (creating if needed) the database at ``path``."""
        ...

    def cold_restart_code(self) -> str | None:
        """Python source for a fresh process: argv[1]=db path, argv[2]=session id.

        It imports what a user would import, opens the database, fetches the
        session's latest checkpoint and exits. None if the notion does not apply.
        """
        ...
