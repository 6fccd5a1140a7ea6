r"""Who may talk to a physagent server: loopback by default, a bearer token for anything else.

Every server front end (REST, web UI, MCP over HTTP) calls :func:`check_bind` before it listens:
binding to an address other than loopback without ``PHYSAGENT_API_TOKEN`` is refused, because the
tools read local files and run simulations on the caller's behalf. With a token configured,
:class:`BearerTokenMiddleware` requires ``Authorization: Bearer <token>`` on every HTTP route.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["LOOPBACK_HOSTS", "TOKEN_VARIABLE", "BearerTokenMiddleware", "InsecureBindError", "check_bind",
           "token_from_env"]

TOKEN_VARIABLE = "PHYSAGENT_API_TOKEN"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class InsecureBindError(RuntimeError):
    """A server was asked to listen beyond loopback without an API token."""


def token_from_env() -> str | None:
    """The API token from ``PHYSAGENT_API_TOKEN`` (None when unset or blank)."""
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    return token or None


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen on a non-loopback ``host`` without a token.

    Raises:
        InsecureBindError: ``host`` is not 127.0.0.1, localhost or ::1 and ``token`` is empty.
    """
    if host in LOOPBACK_HOSTS or token:
        return
    raise InsecureBindError(
        f"refusing to listen on {host}: anyone who can reach it could run tools and read files as you. "
        f"Set {TOKEN_VARIABLE} to a long random secret (e.g. `export {TOKEN_VARIABLE}=$(openssl rand -hex 32)`) "
        "and send it as 'Authorization: Bearer <token>', or keep the default --host 127.0.0.1."
    )


class BearerTokenMiddleware:
    """ASGI middleware: every HTTP and websocket request must carry ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token:
            raise ValueError("BearerTokenMiddleware needs a non-empty token")
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"} or self._authorised(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"detail": "missing or wrong API token: send the header "
                                     "'Authorization: Bearer <token>' (the server's PHYSAGENT_API_TOKEN)."}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def _authorised(self, scope: Scope) -> bool:
        provided = dict(scope.get("headers") or []).get(b"authorization", b"")
        return hmac.compare_digest(provided, self._expected)
