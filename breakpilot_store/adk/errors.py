"""Typed errors of the ADK integration: the store's and ADK's at once.

Code written against ADK's own services keeps catching ``SessionNotFoundError``,
``AlreadyExistsError`` and ``StaleSessionError``; code written against the store
catches :class:`~breakpilot_store.errors.BreakpilotStoreError`.
"""

from __future__ import annotations

from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError

from ..errors import BreakpilotStoreError, UnknownSessionError


class AdkSessionNotFoundError(UnknownSessionError, SessionNotFoundError):
    """No ADK session with this app name, user id and session id; nothing was written."""


class AdkSessionExistsError(BreakpilotStoreError, AlreadyExistsError):
    """``create_session`` was given the id of a session that exists; nothing was written."""


class AdkStaleSessionError(BreakpilotStoreError, StaleSessionError):
    """The session object is older than the stored session (another writer appended).

    Reload it with ``get_session`` and append again. Nothing was written.
    """


__all__ = ["AdkSessionExistsError", "AdkSessionNotFoundError", "AdkStaleSessionError"]
