"""Running the web view: the listening socket, the token rule, uvicorn."""

from __future__ import annotations

import re
import secrets
import socket
from collections.abc import Callable
from typing import Any

from ..errors import CheckpointValueError
from ..store import CheckpointStore
from .app import create_app
from .security import is_loopback

#: What a token may hold: characters a URL, a cookie and an HTTP header all keep.
TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9._~+/=-]+")


def check_binding(host: str, token: str | None) -> str | None:
    """Return the token the server needs for ``host`` (``None`` on loopback without one).

    Raises:
        CheckpointValueError: A token was given but is too short to be a secret, or
            holds characters a URL, cookie or header would not keep.
    """
    if token is not None and len(token) < 16:
        raise CheckpointValueError("--token must be at least 16 characters")
    if token is not None and not TOKEN_CHARACTERS.fullmatch(token):
        # It travels in a URL, a cookie and a header: others broke one of them (a
        # non-latin-1 one made every request a 500; a space or ';' lost the cookie).
        raise CheckpointValueError(
            "--token may hold only letters, digits and - . _ ~ + / = (as a URL keeps them)"
        )
    if token is None and not is_loopback(host):
        return secrets.token_urlsafe(24)
    return token


def listen(host: str, port: int) -> socket.socket:
    """Bind and listen (port 0 picks a free one); the caller learns the port from it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except (OSError, TypeError, UnicodeError) as exc:
        # A name that does not resolve, a port in use, or text that is no host name at
        # all (non-UTF-8 argv: TypeError "encoding of hostname failed"): one Error: line.
        sock.close()
        reason = getattr(exc, "strerror", None) or str(exc)
        raise CheckpointValueError(f"cannot listen on {host!r} port {port}: {reason}") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(
    store: CheckpointStore,
    sock: socket.socket,
    token: str | None,
    on_ready: Callable[[], Any] | None = None,
) -> None:
    """Serve the view over ``store`` on ``sock`` until interrupted (Ctrl-C)."""
    import uvicorn

    config = uvicorn.Config(
        create_app(store, token),
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    if on_ready is not None:
        original = server.startup

        async def startup(sockets: Any = None) -> None:
            await original(sockets=sockets)
            on_ready()

        server.startup = startup  # type: ignore[method-assign]
    server.run(sockets=[sock])
