"""Human in the loop through the official `langgraph-sdk`, on real multi-worker servers.

With BOOKING_CONFIRMATION=interrupt a booking waits for a person's decision; the
thread reports `interrupted` and its pending request until a run resumes it with
`command={"resume": {"decisions": [...]}}`, on any worker, even after a crash.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client

from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(180)

# Each test books its own slot: they share one server and its appointments.
ASK = "I'd like a haircut on Tuesday at {time}, my name is Bob, {contact}"
APPROVE = {"decisions": [{"type": "approve"}]}


@pytest.fixture(scope="module")
def approval_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("approval")


@pytest.fixture(scope="module")
def approval_env(backend_env: dict[str, str]) -> dict[str, str]:
    return {**backend_env, "BOOKING_CONFIRMATION": "interrupt"}


@pytest.fixture(scope="module")
def approval_server(approval_dir: Path, approval_env: dict[str, str]) -> Iterator[ServerProcess]:
    with ServerProcess(approval_dir, workers=2, env=approval_env) as proc:
        yield proc


def contact() -> str:
    return f"{uuid.uuid4().hex[:10]}@example.com"


def ask_to_book(client: Any, thread_id: str, email: str, time: str) -> dict[str, Any]:
    text = ASK.format(contact=email, time=time)
    return client.runs.wait(
        thread_id, "agent", input={"messages": [{"role": "user", "content": text}]}
    )


def tool_payloads(values: dict[str, Any], name: str = "book_appointment") -> list[dict]:
    return [
        json.loads(m["content"])
        for m in values["messages"]
        if m["type"] == "tool" and m.get("name") == name
    ]


def interrupted_gauge(server: ServerProcess) -> float:
    """`booking_agent_threads{status="interrupted"}`, once a worker has refreshed it."""
    deadline = time.monotonic() + 12  # PostgreSQL workers refresh it every 5 s
    while True:
        text = httpx.get(f"{server.base_url}/metrics").text
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith('booking_agent_threads{status="interrupted"}')
        ]
        if (values and values[0] >= 1) or time.monotonic() > deadline:
            return values[0] if values else 0.0
        time.sleep(0.5)


def history_size(client: Any, thread_id: str) -> int:
    return len(client.threads.get_history(thread_id, limit=1000))


def test_a_booking_waits_for_approval_and_approve_books_once(
    approval_server: ServerProcess,
) -> None:
    client = get_sync_client(url=approval_server.base_url)
    thread_id = client.threads.create()["thread_id"]
    email = contact()
    result = ask_to_book(client, thread_id, email, "10:00")
    [pending] = result["__interrupt__"]
    assert set(pending) == {"value", "id"}  # as LangGraph Server sends it
    [action] = pending["value"]["action_requests"]
    assert action["name"] == "book_appointment" and action["args"]["contact"] == email
    assert pending["value"]["review_configs"][0]["allowed_decisions"] == [
        "approve",
        "edit",
        "reject",
    ]

    thread = client.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    [(task_id, [listed])] = thread["interrupts"].items()
    assert listed["id"] == pending["id"]
    state = client.threads.get_state(thread_id)
    assert state["next"] == ["approval"]
    assert state["interrupts"][0]["id"] == pending["id"]
    assert state["tasks"][0]["id"] == task_id and state["tasks"][0]["interrupts"]
    found = client.threads.search(status="interrupted", limit=1000)
    assert thread_id in [t["thread_id"] for t in found]
    assert tool_payloads(state["values"]) == []  # nothing booked yet
    assert interrupted_gauge(approval_server) >= 1

    done = client.runs.wait(thread_id, "agent", command={"resume": APPROVE})
    assert "__interrupt__" not in done
    assert done["messages"][-1]["content"].startswith("All set!")
    [booked] = tool_payloads(done)
    assert booked["status"] == "confirmed"
    assert client.threads.get(thread_id)["status"] == "idle"

    # Resumed twice: refused, and nothing more is written or booked.
    before = history_size(client, thread_id)
    again = httpx.post(
        f"{approval_server.base_url}/threads/{thread_id}/runs/wait",
        json={"assistant_id": "agent", "command": {"resume": APPROVE}},
    )
    assert again.status_code == 409 and "no pending interrupt" in again.json()["detail"]
    assert history_size(client, thread_id) == before
    assert len(tool_payloads(client.threads.get_state(thread_id)["values"])) == 1


def test_edit_books_the_edited_slot_and_reject_books_nothing(
    approval_server: ServerProcess,
) -> None:
    client = get_sync_client(url=approval_server.base_url)
    edited = client.threads.create()["thread_id"]
    pending = ask_to_book(client, edited, contact(), "10:30")["__interrupt__"][0]["value"]
    args = {**pending["action_requests"][0]["args"], "time": "12:30"}
    edit = {"type": "edit", "edited_action": {"name": "book_appointment", "args": args}}
    done = client.runs.wait(edited, "agent", command={"resume": {"decisions": [edit]}})
    [booked] = tool_payloads(done)
    assert booked["time"] == "12:30" and "12:30" in done["messages"][-1]["content"]

    rejected = client.threads.create()["thread_id"]
    ask_to_book(client, rejected, contact(), "11:00")
    reject = {"type": "reject", "message": "I changed my mind"}
    done = client.runs.wait(rejected, "agent", command={"resume": {"decisions": [reject]}})
    assert [p["status"] for p in tool_payloads(done)] == ["declined"]
    reply = done["messages"][-1]["content"]
    assert "not booked" in reply and "I changed my mind" in reply
    assert client.threads.get(rejected)["status"] == "idle"


async def test_the_async_client_streams_the_interrupt_and_the_resume(
    approval_server: ServerProcess,
) -> None:
    client = get_client(url=approval_server.base_url)
    thread_id = (await client.threads.create())["thread_id"]
    first = [
        part
        async for part in client.runs.stream(
            thread_id,
            "agent",
            input={
                "messages": [
                    {"role": "user", "content": ASK.format(contact=contact(), time="11:30")}
                ]
            },
            stream_mode="updates",
        )
    ]
    interrupts = [p.data["__interrupt__"] for p in first if "__interrupt__" in (p.data or {})]
    assert interrupts and interrupts[0][0]["value"]["action_requests"]
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
    second = [
        part
        async for part in client.runs.stream(
            thread_id, "agent", command={"resume": APPROVE}, stream_mode="values"
        )
    ]
    final = [p.data for p in second if p.event == "values"][-1]
    assert final["messages"][-1]["content"].startswith("All set!")
    assert (await client.threads.get(thread_id))["status"] == "idle"


def test_a_new_message_on_an_interrupted_thread_drops_the_pending_booking(
    approval_server: ServerProcess,
) -> None:
    client = get_sync_client(url=approval_server.base_url)
    thread_id = client.threads.create()["thread_id"]
    ask_to_book(client, thread_id, contact(), "13:00")
    result = client.runs.wait(
        thread_id, "agent", input={"messages": [{"role": "user", "content": "What services?"}]}
    )
    assert "__interrupt__" not in result
    assert client.threads.get(thread_id)["status"] == "idle"
    assert tool_payloads(result) == []  # the booking was never made


def test_bad_resumes_are_4xx_with_detail_and_write_nothing(
    approval_server: ServerProcess,
) -> None:
    client = get_sync_client(url=approval_server.base_url)
    base = approval_server.base_url
    thread_id = client.threads.create()["thread_id"]
    ask_to_book(client, thread_id, contact(), "13:30")
    before = history_size(client, thread_id)
    url = f"{base}/threads/{thread_id}/runs/wait"
    cases = [
        ({"command": {"resume": "yes"}}, 422),
        ({"command": {"resume": {"decisions": []}}}, 422),
        ({"command": {"resume": {"decisions": [{"type": "maybe"}]}}}, 422),
        ({"command": {"resume": {"decisions": [APPROVE["decisions"][0]] * 2}}}, 422),
        ({"command": {"resume": {"decisions": [{"type": "edit"}]}}}, 422),
        ({"command": {}}, 422),
        ({"command": {"goto": "nowhere"}}, 422),
        ({"command": {"update": {"not_a_key": 1}}}, 422),
        ({"command": {"update": {"messages": [{"role": "wizard", "content": "x"}]}}}, 422),
        ({"command": {"resume": APPROVE}, "input": {"messages": ["hi"]}}, 422),
        ({"interrupt_before": ["nowhere"], "input": {"messages": ["hi"]}}, 422),
        ({"checkpoint_id": str(uuid.uuid4()), "input": {"messages": ["hi"]}}, 404),
    ]
    for body, status in cases:
        response = httpx.post(url, json={"assistant_id": "agent", **body})
        assert response.status_code == status, (body, response.text)
        assert response.json()["detail"], body
    assert history_size(client, thread_id) == before
    assert client.threads.get(thread_id)["status"] == "interrupted"
    # Never interrupted: nothing to resume.
    plain = client.threads.create()["thread_id"]
    response = httpx.post(
        f"{base}/threads/{plain}/runs/wait",
        json={"assistant_id": "agent", "command": {"resume": APPROVE}},
    )
    assert response.status_code == 409 and response.json()["detail"]
    assert history_size(client, plain) == 0


def test_a_crash_between_interrupt_and_resume_loses_nothing(
    tmp_path: Path, approval_env: dict[str, str]
) -> None:
    email = contact()
    first = ServerProcess(tmp_path / "crash", workers=2, env=approval_env).start()
    try:
        client = get_sync_client(url=first.base_url)
        thread_id = client.threads.create()["thread_id"]
        ask_to_book(client, thread_id, email, "14:00")
    finally:
        first.kill()  # SIGKILL, master and workers at once
    with ServerProcess(tmp_path / "crash", workers=2, env=approval_env) as second:
        client = get_sync_client(url=second.base_url)
        assert client.threads.get(thread_id)["status"] == "interrupted"
        done = client.runs.wait(thread_id, "agent", command={"resume": APPROVE})
        [booked] = tool_payloads(done)
        assert booked["status"] == "confirmed" and booked["contact"] == email
