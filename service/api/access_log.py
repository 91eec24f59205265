"""The access log (ACCESS_LOG=true; off by default): one JSON line per request on the
`service.access` logger, written to stderr on its own (not through the service's text
format), so a log shipper can parse it as it is.

Each line: `ts`, `worker` (pid), `request_id`, `method`, `path`, `route` (the template),
`status`, `duration_ms`, `bytes` (the response body), and `thread_id` / `run_id` when
the request names them (in its path, or for a new run in its `Content-Location`).
A client's `X-Request-ID` (letters, digits, `.`, `_`, `-`; up to 128) is kept, else
one is made; it is sent back in the response's `X-Request-ID`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys
import time
import uuid
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("service.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_RUN_LOCATION = re.compile(r"^/threads/([^/]+)/runs/([^/?]+)")
REQUEST_ID_HEADER = "X-Request-ID"


def configure_access_log() -> None:
    """JSON lines to stderr, apart from the service's text log."""
    if any(getattr(h, "access_log", False) for h in log.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.access_log = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        configure_access_log()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        sent = Headers(scope=scope).get(REQUEST_ID_HEADER)
        request_id = sent if sent and _REQUEST_ID.match(sent) else uuid.uuid4().hex
        line: dict[str, Any] = {"status": 500, "bytes": 0}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                line["status"] = message["status"]
                headers = list(message.get("headers", ()))
                for key, value in headers:
                    if key == b"content-location":
                        line["location"] = value.decode("latin-1")
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                line["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            log.info(self._line(scope, request_id, line, time.perf_counter() - start))

    @staticmethod
    def _line(scope: Scope, request_id: str, line: dict[str, Any], seconds: float) -> str:
        params = scope.get("path_params") or {}
        thread_id, run_id = params.get("thread_id"), params.get("run_id")
        found = _RUN_LOCATION.match(line.pop("location", "") or "")
        if found:
            thread_id, run_id = thread_id or found.group(1), run_id or found.group(2)
        route = getattr(scope.get("route"), "path", None)
        entry = {
            "ts": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "worker": os.getpid(),
            "request_id": request_id,
            "method": scope["method"],
            "path": scope["path"][:512],
            "route": route if isinstance(route, str) else None,
            "status": line["status"],
            "duration_ms": round(seconds * 1000, 3),
            "bytes": line["bytes"],
            "thread_id": thread_id,
            "run_id": run_id,
        }
        return json.dumps(entry, separators=(",", ":"))
