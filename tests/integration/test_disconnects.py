"""A client that leaves: runs not yet started never start, runs in flight follow
`on_disconnect`, and a side effect (a booking) is never left without its turn.

A real two-worker server whose offline model takes 0.5 s per call, so that a client
can leave at a known point of a run.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.observability.support import scrape
from tests.support.booking import booking_text
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.timeout(180), pytest.mark.backends("sqlite")]

LATENCY_S = 0.5


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"OFFLINE_LLM_LATENCY_MS": str(int(LATENCY_S * 1000))}
    with ServerProcess(tmp_path_factory.mktemp("disconnects"), workers=2, env=env) as proc:
        yield proc


def run_body(text: str, **extra: object) -> dict:
    return {
        "assistant_id": "agent",
        "input": {"messages": [{"role": "user", "content": text}]},
        "if_not_exists": "create",
        **extra,
    }


def send_and_leave(srv: ServerProcess, path: str, body: dict) -> socket.socket:
    """Send a whole request on a raw socket and return it, unread, for the caller to close."""
    data = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", srv.port))
    sock.sendall(
        b"POST %s HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (path.encode(), len(data), data)
    )
    return sock


def stream_until(srv: ServerProcess, thread_id: str, body: dict, marker: str) -> list[str]:
    """Stream a run and hang up as soon as a line containing `marker` arrives."""
    lines = []
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", f"{srv.base_url}/threads/{thread_id}/runs/stream", json=body) as r,
    ):
        for line in r.iter_lines():
            lines.append(line)
            if marker in line:
                break
    return lines


def settled_messages(srv: ServerProcess, thread_id: str, wait_s: float = 4 * LATENCY_S + 2):
    """The thread's messages once nothing runs on it any more."""
    deadline = time.monotonic() + wait_s
    while True:
        thread = httpx.get(f"{srv.base_url}/threads/{thread_id}").json()
        if thread["status"] != "busy" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    time.sleep(3 * LATENCY_S)  # a run that wrongly went on would have written by now
    assert httpx.get(f"{srv.base_url}/threads/{thread_id}").json()["status"] != "busy"
    values = httpx.get(f"{srv.base_url}/threads/{thread_id}/state").json()["values"]
    return (values or {}).get("messages", [])


def counter(srv: ServerProcess, action: str) -> float:
    return scrape(srv.base_url).total("booking_agent_run_client_disconnects_total", action=action)


def booked_codes(srv: ServerProcess) -> set[str]:
    conn = sqlite3.connect(srv.data_dir / "appointments.db")
    try:
        return {row[0] for row in conn.execute("SELECT confirmation_code FROM appointments")}
    finally:
        conn.close()


@pytest.mark.parametrize("endpoint", ["stream", "wait"])
def test_runs_whose_clients_left_while_queued_never_start(
    srv: ServerProcess, endpoint: str
) -> None:
    tid = str(uuid.uuid4())
    not_started = counter(srv, "not_started")
    first = threading.Thread(
        target=lambda: httpx.post(
            f"{srv.base_url}/threads/{tid}/runs/wait", json=run_body("first"), timeout=30
        )
    )
    first.start()
    time.sleep(LATENCY_S / 2)  # the first run holds the thread now
    queued = [
        send_and_leave(srv, f"/threads/{tid}/runs/{endpoint}", run_body(f"ghost {i}"))
        for i in range(40)
    ]
    time.sleep(0.2)
    for sock in queued:
        sock.close()
    first.join()
    humans = [m["content"] for m in settled_messages(srv, tid) if m["type"] == "human"]
    assert humans == ["first"]
    assert counter(srv, "not_started") - not_started == 40


def test_a_stream_left_mid_run_continues_by_default(srv: ServerProcess) -> None:
    tid = str(uuid.uuid4())
    stream_until(srv, tid, run_body("hola"), "event: metadata")
    types = [m["type"] for m in settled_messages(srv, tid)]
    assert types == ["human", "ai"]


def test_a_stream_left_before_any_side_effect_is_cancelled_on_request(srv: ServerProcess) -> None:
    tid = str(uuid.uuid4())
    cancelled = counter(srv, "cancelled")
    stream_until(srv, tid, run_body("hola", on_disconnect="cancel"), "event: metadata")
    types = [m["type"] for m in settled_messages(srv, tid)]
    assert "ai" not in types  # the model's answer never came: the run stopped
    assert counter(srv, "cancelled") - cancelled == 1


def test_a_wait_left_mid_run_is_cancelled_on_request(srv: ServerProcess) -> None:
    tid = str(uuid.uuid4())
    sock = send_and_leave(
        srv, f"/threads/{tid}/runs/wait", run_body("hola", on_disconnect="cancel")
    )
    time.sleep(LATENCY_S / 2)
    sock.close()
    assert "ai" not in [m["type"] for m in settled_messages(srv, tid)]


@pytest.mark.parametrize("policy", ["continue", "cancel"])
def test_a_booking_is_never_left_without_its_turn(srv: ServerProcess, policy: str) -> None:
    """The client hangs up right after the booking tool answered, while the model writes
    its confirmation: the turn is kept, whatever `on_disconnect` says."""
    tid = str(uuid.uuid4())
    shielded = counter(srv, "shielded")
    body = run_body(booking_text(), on_disconnect=policy, stream_mode=["updates"])
    lines = stream_until(srv, tid, body, '"tools"')
    update = json.loads(lines[-1].removeprefix("data: "))
    code = json.loads(update["tools"]["messages"][0]["content"])["confirmation_code"]
    assert code in booked_codes(srv)
    messages = settled_messages(srv, tid)
    assert [m["type"] for m in messages] == ["human", "ai", "tool", "ai"]
    assert code in messages[-1]["content"]
    assert counter(srv, "shielded") - shielded == (1 if policy == "cancel" else 0)


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Model calls of 1.5 s and RUN_TIMEOUT_S=2: any two-call turn outlives the timeout."""
    env = {"OFFLINE_LLM_LATENCY_MS": "1500", "RUN_TIMEOUT_S": "2"}
    with ServerProcess(tmp_path_factory.mktemp("timeouts"), workers=1, env=env) as proc:
        yield proc


def test_the_run_timeout_stops_a_run_without_side_effects(slow: ServerProcess) -> None:
    tid = str(uuid.uuid4())
    day = booking_text().split(" on ")[1].split(" at ")[0]
    body = run_body(f"what's free on {day} for a haircut", multitask_strategy="reject")
    response = httpx.post(f"{slow.base_url}/threads/{tid}/runs/wait", json=body, timeout=30)
    assert response.status_code == 504, response.text
    assert "longer than" in response.json()["detail"]
    assert httpx.get(f"{slow.base_url}/threads/{tid}").json()["status"] == "error"


def test_the_run_timeout_never_cuts_a_booking_short(slow: ServerProcess) -> None:
    tid = str(uuid.uuid4())
    response = httpx.post(
        f"{slow.base_url}/threads/{tid}/runs/wait", json=run_body(booking_text()), timeout=30
    )
    assert response.status_code == 200, response.text
    messages = response.json()["messages"]
    assert [m["type"] for m in messages] == ["human", "ai", "tool", "ai"]
    code = json.loads(messages[2]["content"])["confirmation_code"]
    assert code in booked_codes(slow) and code in messages[-1]["content"]
    assert httpx.get(f"{slow.base_url}/threads/{tid}").json()["status"] == "idle"
