"""The guard in front of every request of `medsam2 serve` (a pure ASGI middleware).

Everything a browser can send is untrusted. In order:

1. ``Host`` must be an allowed name (localhost, 127.0.0.1, [::1], plus an explicit remote
   ``--host``) — a DNS-rebinding page cannot talk to the server under its own name.
2. The path must be plain (no ``..``, encoded dots or slashes, backslashes); the query string
   may carry ``token`` and nothing else.
3. Every route but ``/healthz`` needs the launch token: ``?token=`` (then a cookie is set and
   the browser is redirected to the same path without it), the cookie, or an
   ``X-Medsam2-Token`` header; compared with ``hmac.compare_digest``.
4. State-changing methods need a same-origin ``Origin`` (when sent) and never a cross-site
   ``Sec-Fetch-Site``; bodies must be JSON and at most `body_limit` bytes (413).
5. Every response gets a strict CSP (``default-src 'self'``), no-sniff, no framing, no referrer
   and no caching; no CORS header is ever sent.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, unquote

__all__ = ["Guard", "LOOPBACK_HOSTS", "SECURITY_HEADERS", "is_loopback"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
PUBLIC_PATHS = ("/healthz",)
SAFE_METHODS = ("GET", "HEAD")
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
_BAD_PATH = re.compile(r"(\.\.|%2e|%2f|%5c|\\|//|\x00)", re.IGNORECASE)


def is_loopback(host: str) -> bool:
    return host.strip("[]").lower() in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


def _host_name(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


async def _json(send: Send, status: int, message: str, extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *extra]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware enforcing the checks of the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str,
        port: int,
        hosts: Iterable[str] = LOOPBACK_HOSTS,
        any_host: bool = False,
        body_limit: int = 64 * 1024,
    ) -> None:
        self.app = app
        self.token = token.encode()
        self.cookie = f"medsam2_{port}"
        self.hosts = {h.lower() for h in hosts}
        self.any_host = any_host
        self.origins = {f"http://{h}:{port}" for h in self.hosts}
        self.body_limit = body_limit

    def _token_ok(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), self.token)

    def _check(
        self, scope: Scope, headers: dict[str, str], query: list[tuple[str, str]]
    ) -> tuple[int, str] | None:
        """(status, message) of the first failed check, or None."""
        if not self.any_host and _host_name(headers.get("host", "")) not in self.hosts:
            return 400, "Host header not allowed (use http://127.0.0.1 or localhost)"
        raw = scope.get("raw_path") or scope["path"].encode()
        if _BAD_PATH.search(raw.decode("latin-1")) or _BAD_PATH.search(unquote(scope["path"])):
            return 400, "bad path"
        if any(k != "token" for k, _ in query) or len(query) > 1:
            return 400, "unexpected query parameters"
        if scope["path"] in PUBLIC_PATHS:
            return None
        cookies = SimpleCookie()
        try:
            cookies.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is just no cookie
            cookies = SimpleCookie()
        candidates = [dict(query).get("token"), headers.get("x-medsam2-token")]
        if self.cookie in cookies:
            candidates.append(cookies[self.cookie].value)
        if not any(self._token_ok(c) for c in candidates):
            return 401, "missing or wrong token: open the URL printed by medsam2 serve"
        if scope["method"] not in SAFE_METHODS:
            return self._check_write(headers)
        return None

    def _check_write(self, headers: dict[str, str]) -> tuple[int, str] | None:
        origin = headers.get("origin")
        # a wildcard bind (--allow-remote on 0.0.0.0) accepts any Host: then Origin must match it
        allowed = {f"http://{headers.get('host', '').lower()}"} if self.any_host else self.origins
        if origin is not None and origin.lower() not in allowed:
            return 403, "cross-origin request refused"
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return 403, "cross-site request refused"
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.body_limit):
            return 413, f"request body larger than {self.body_limit} bytes"
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if (length not in (None, "0") or "transfer-encoding" in headers) and ctype != "application/json":
            return 415, "request bodies must be application/json"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # no websockets
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        failure = self._check(scope, headers, query)
        if failure is not None:
            log.info("refused %s %s: %s", scope["method"], scope["path"], failure[1])
            await _json(send, *failure)
            return
        if query and scope["method"] == "GET" and scope["path"] == "/":  # set the cookie, drop the token
            cookie = f"{self.cookie}={self.token.decode()}; HttpOnly; SameSite=Strict; Path=/"
            extra = [(b"set-cookie", cookie.encode()), (b"location", scope["path"].encode())]
            await _json(send, 303, "see the page without the token", extra)
            return
        body = await self._read_body(receive)
        if body is None:
            await _json(send, 413, f"request body larger than {self.body_limit} bytes")
            return
        await self.app(scope, self._replay(body, receive), self._with_headers(send))

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.body_limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(chunks)

    @staticmethod
    def _replay(body: bytes, upstream: Receive) -> Receive:
        """The body read already, then the real channel (which reports the disconnect)."""
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if sent:
                return await upstream()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return receive

    @staticmethod
    def _with_headers(send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    (k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k.encode() not in names
                ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        return wrapped
