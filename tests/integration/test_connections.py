"""Connections are bounded: idle and stalled ones are closed, ambiguous framing refused.

Raw sockets against a real two-worker server with short deadlines, so each case
takes about a second.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.observability.support import scrape
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.timeout(120), pytest.mark.backends("sqlite")]

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.5
KEEPALIVE_S = 1


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "HTTP_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "HTTP_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "HTTP_KEEPALIVE_TIMEOUT_S": str(KEEPALIVE_S),
        "HTTP_MAX_HEADER_BYTES": "8192",
    }
    with ServerProcess(tmp_path_factory.mktemp("connections"), workers=2, env=env) as proc:
        yield proc


def connect(srv: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port))
    sock.settimeout(15)
    return sock


def read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:  # closed with our unread bytes still in its buffer
        pass
    sock.close()
    return received, time.monotonic() - started


def thread_exists(srv: ServerProcess, thread_id: str) -> bool:
    return httpx.get(f"{srv.base_url}/threads/{thread_id}").status_code == 200


STALLS = {
    "idle": (b"", HEADER_TIMEOUT_S),
    "half-sent headers": (b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Slow: ", HEADER_TIMEOUT_S),
    "unterminated chunked body": (
        b"POST /threads HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b'content-type: application/json\r\n\r\n5\r\n{"thr\r\n',
        BODY_TIMEOUT_S,
    ),
    "huge chunk size": (
        b"POST /threads HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"FFFFFFFFFFFFFFFFFF\r\nabc",
        BODY_TIMEOUT_S,
    ),
    "short body": (
        b"POST /threads HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"content-length: 100\r\n\r\n{",
        BODY_TIMEOUT_S,
    ),
}


@pytest.mark.parametrize("name", list(STALLS))
def test_stalled_connections_are_closed(srv: ServerProcess, name: str) -> None:
    sent, deadline = STALLS[name]
    sock = connect(srv)
    sock.sendall(sent)
    received, took = read_until_closed(sock)
    assert received == b""
    assert deadline * 0.8 <= took <= deadline + 3, took


def test_headers_trickled_one_byte_at_a_time_are_cut_off(srv: ServerProcess) -> None:
    sock = connect(srv)
    sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Pad: ")
    started = time.monotonic()
    try:
        while time.monotonic() - started < 10:
            sock.send(b"a")
            time.sleep(0.02)
    except OSError:
        took = time.monotonic() - started
    else:
        pytest.fail("the server kept a trickling connection open for 10 s")
    finally:
        sock.close()
    assert took <= HEADER_TIMEOUT_S + 3


def test_many_idle_connections_are_all_released(srv: ServerProcess) -> None:
    socks = [connect(srv) for _ in range(200)]
    time.sleep(HEADER_TIMEOUT_S + 1)
    for sock in socks:
        sock.settimeout(5)
        assert sock.recv(10) == b""
        sock.close()
    assert httpx.get(f"{srv.base_url}/ok").status_code == 200


def test_an_idle_keepalive_connection_is_closed(srv: ServerProcess) -> None:
    sock = connect(srv)
    sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
    received, took = read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 200")
    assert took <= KEEPALIVE_S + 3


def test_a_slow_but_steady_request_is_served(srv: ServerProcess) -> None:
    """Deadlines bound a phase, not each byte: a body sent in pieces within them is fine."""
    body = b'{"thread_id": "steady", "metadata": {"a": 1}}'
    sock = connect(srv)
    sock.sendall(
        b"POST /threads HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(body)
    )
    for piece in (body[:10], body[10:30], body[30:]):
        time.sleep(0.3)
        sock.sendall(piece)
    received, _ = read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 200"), received[:200]
    assert thread_exists(srv, "steady")


def test_content_length_with_transfer_encoding_is_refused(srv: ServerProcess) -> None:
    body = b'{"thread_id": "smuggled"}'
    sock = connect(srv)
    sock.sendall(
        b"POST /threads HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
        % (len(body), len(body), body)
    )
    received, _ = read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 400"), received[:200]
    assert b'"detail"' in received
    assert not thread_exists(srv, "smuggled")


@pytest.mark.parametrize("chunks", [1, 40])
def test_an_oversize_chunked_body_is_413(srv: ServerProcess, chunks: int) -> None:
    payload = b'{"thread_id": "oversize", "metadata": {"a": "' + b"x" * 300_000 + b'"}}'
    size = -(-len(payload) // chunks)
    framed = b"".join(
        b"%x\r\n%s\r\n" % (len(part), part)
        for part in (payload[i : i + size] for i in range(0, len(payload), size))
    )
    sock = connect(srv)
    sock.sendall(
        b"POST /threads HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n"
    )
    received, _ = read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 413"), received[:200]
    assert b"MAX_REQUEST_BYTES" in received
    assert not thread_exists(srv, "oversize")


def test_oversize_headers_are_refused(srv: ServerProcess) -> None:
    big = {"X-Big": "a" * 20_000}
    response = httpx.post(f"{srv.base_url}/threads", json={"thread_id": "big"}, headers=big)
    assert response.status_code == 431 and response.json()["detail"]
    assert not thread_exists(srv, "big")
    sock = connect(srv)  # the same headers arriving in pieces stop at the parser
    sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n")
    for _ in range(20):
        sock.sendall(b"X-Pad: " + b"a" * 1000 + b"\r\n")
    received, took = read_until_closed(sock)
    assert received == b"" or received.startswith(b"HTTP/1.1 4"), received[:100]
    assert took < HEADER_TIMEOUT_S, "closed by the parser's limit, not by the deadline"


def test_read_timeouts_are_counted(srv: ServerProcess) -> None:
    sock = connect(srv)
    sock.sendall(b"GET /ok HTTP/1.1\r\n")
    read_until_closed(sock)
    timeouts = scrape(srv.base_url).total("booking_agent_http_read_timeouts_total", phase="headers")
    assert timeouts >= 1
