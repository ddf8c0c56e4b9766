"""The web view's gate: only GET, only the right Host on loopback, the token elsewhere.

An ASGI middleware in front of every route (static files included):

* Methods other than ``GET``/``HEAD`` get 405: no endpoint writes, and none can.
* On loopback without a token, the ``Host`` header must name a loopback address, so a
  page elsewhere cannot read the store through DNS rebinding.
* With a token (required off loopback), every request carries it: ``?token=`` (the link
  the server prints; it then sets an HttpOnly, SameSite=Strict cookie so the page's own
  requests carry it), the cookie, or ``Authorization: Bearer``. Compared in constant time.
* Every response says: no inline scripts or styles, nothing from elsewhere, no framing,
  no referrer (the token may be in the URL).
"""

from __future__ import annotations

import hmac
import ipaddress
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

COOKIE = "breakpilot_token"

SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        b"form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is on the loopback interface only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The host part of a ``Host`` header (``[::1]:8765`` -> ``::1``)."""
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Gate:
    """The ASGI middleware described in the module docstring.

    Args:
        app: The application behind the gate.
        token: The secret every request must carry, or ``None`` (loopback only).
    """

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: D102
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["method"] not in ("GET", "HEAD"):
            await _plain(send, 405, "read-only: only GET requests", [(b"allow", b"GET, HEAD")])
            return
        set_cookie = False
        if self.token is None:
            if not is_loopback(_host_name(headers.get("host", ""))):
                await _plain(send, 403, "this view answers only to a loopback Host")
                return
        else:
            given = self._given(scope, headers)
            if given is None or not hmac.compare_digest(given[0].encode(), self.token.encode()):
                await _plain(send, 401, "a token is required: open the link the server printed")
                return
            set_cookie = given[1]
        await self.app(scope, receive, self._wrap(send, set_cookie))

    def _given(self, scope: dict[str, Any], headers: dict[str, str]) -> tuple[str, bool] | None:
        """The token the request carries and whether it came in the query string."""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if "token" in query:
            return query["token"][0], True
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip(), False
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is no token
            return None
        if COOKIE in cookie:
            return cookie[COOKIE].value, False
        return None

    def _wrap(self, send: Any, set_cookie: bool) -> Any:
        token = self.token

        async def wrapped(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += SECURITY_HEADERS
                if set_cookie and token is not None:
                    value = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
                    headers.append((b"set-cookie", value.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        return wrapped


async def _plain(
    send: Any, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = (text + "\n").encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *SECURITY_HEADERS,
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
