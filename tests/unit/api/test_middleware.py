"""RequestLimits as an ASGI component: bodies read whole and bounded before the app runs."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from service.api.middleware import RequestLimits


async def echo_app(scope: dict, receive: Any, send: Any) -> None:
    message = await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": message["body"]})


def call(headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[int, bytes, dict]:
    """Send one request through the middleware; return status, body and headers."""
    incoming = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    asyncio.run(RequestLimits(echo_app, max_bytes=10, max_header_bytes=200)(scope, receive, send))
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], body, dict(start["headers"])


def test_a_chunked_body_reaches_the_app_whole() -> None:
    status, body, _ = call([], [b"01234", b"5678"])
    assert (status, body) == (200, b"012345678")


def test_a_body_over_the_limit_is_refused_even_without_a_declared_size() -> None:
    status, body, headers = call([], [b"012345", b"67890"])
    assert status == 413
    assert "MAX_REQUEST_BYTES" in json.loads(body)["detail"]
    assert headers[b"connection"] == b"close"


def test_a_declared_size_over_the_limit_is_refused_before_reading() -> None:
    status, _, _ = call([(b"content-length", b"11")], [])
    assert status == 413


def test_content_length_with_transfer_encoding_is_refused() -> None:
    status, body, _ = call([(b"content-length", b"2"), (b"transfer-encoding", b"chunked")], [b"ok"])
    assert status == 400
    assert "Transfer-Encoding" in json.loads(body)["detail"]


def test_oversized_headers_get_431() -> None:
    status, _, _ = call([(b"x-filler", b"x" * 300)], [b"ok"])
    assert status == 431
