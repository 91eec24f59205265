"""ASGI middleware: the request body's size and framing, and HTTP metrics by route template."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.observability import metrics


class RequestLimits:
    """Check the headers, then read the whole body, up to `max_bytes`, before the app runs.

    Headers over `max_header_bytes` get a 431 (the h11 parser bounds only headers that
    arrive in pieces). Any body over the limit gets a 413, whether its size was declared
    or it came chunked; a request with both Content-Length and Transfer-Encoding gets a
    400 (the ambiguity request smuggling is made of) and its connection closed. The app
    then reads the body from memory, and after it the server's own messages (a disconnect).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, max_header_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if sum(len(name) + len(value) + 4 for name, value in scope["headers"]) > (
            self.max_header_bytes
        ):
            await _send_error(
                send, 431, "request headers larger than HTTP_MAX_HEADER_BYTES", close=True
            )
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and b"transfer-encoding" in headers:
            await _send_error(
                send, 400, "Content-Length and Transfer-Encoding together are refused", close=True
            )
            return
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _send_error(send, 413, self._too_large(), close=True)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before its body was complete
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _send_error(send, 413, self._too_large(), close=True)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"request body larger than the limit of {self.max_bytes} bytes (MAX_REQUEST_BYTES)"


async def _send_error(send: Send, status: int, detail: str, *, close: bool = False) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:  # the rest of the body is never read, so the connection cannot be reused
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# Clients choose the method token freely; an open label set would grow without bound.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """Count and time requests by method, route template (never the raw path) and status.

    Every label has a bounded set of values, so `/metrics` does not grow with traffic.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._pid = -1
        self._worker_requests: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_template(scope)
            method = scope["method"] if scope["method"] in _METHODS else "other"
            metrics.HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
            metrics.HTTP_REQUEST_SECONDS.labels(method=method, route=route).observe(
                time.perf_counter() - start
            )
            if self._pid != os.getpid():  # the app may be built before the fork
                self._pid = os.getpid()
                self._worker_requests = metrics.WORKER_REQUESTS.labels(pid=str(self._pid))
            self._worker_requests.inc()


def _route_template(scope: dict[str, Any]) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_JSON = b"application/json"


class JsonBodies:
    """Read a request body as JSON whatever Content-Type it declares (a proxy may send
    `text/plain`), but only when the request carries no `Origin` or an allowed one.

    A page on another site can send a "simple" cross-site request (text/plain, no
    preflight); its Origin is not allowed, so its body stays unreadable (422) and it
    cannot drive the API.
    """

    def __init__(self, app: ASGIApp, allowed_origins: list[str]) -> None:
        self.app = app
        self.any_origin = "*" in allowed_origins
        self.allowed = {origin.encode() for origin in allowed_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in _BODY_METHODS:
            headers = scope["headers"]
            declared = next((v for k, v in headers if k == b"content-type"), None)
            if declared is None or not declared.lower().startswith(_JSON):
                origin = next((v for k, v in headers if k == b"origin"), None)
                if origin is None or self.any_origin or origin in self.allowed:
                    kept = [(k, v) for k, v in headers if k != b"content-type"]
                    scope = {**scope, "headers": [*kept, (b"content-type", _JSON)]}
        await self.app(scope, receive, send)
