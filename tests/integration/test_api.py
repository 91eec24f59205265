"""The LangGraph Server API through the official `langgraph-sdk`, against real workers.

Every test runs on both backends: the HTTP behaviour must not depend on the store.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client

from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(120)


def human_texts(values: dict) -> list[str]:
    return [m["content"] for m in values.get("messages", []) if m["type"] == "human"]


def test_system_endpoints(server: ServerProcess, backend: str) -> None:
    assert httpx.get(f"{server.base_url}/ok").json() == {"ok": True}
    ready = httpx.get(f"{server.base_url}/readyz")
    assert ready.status_code == 200 and ready.json()["backend"] == backend
    info = httpx.get(f"{server.base_url}/info").json()
    assert info["storage"]["backend"] == backend
    if backend == "sqlite":
        assert info["sqlite"]["wal_reset_bug"] is False


def test_assistants(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    assert client.assistants.get("agent")["graph_id"] == "agent"
    assert [a["assistant_id"] for a in client.assistants.search()] == ["agent"]
    with pytest.raises(httpx.HTTPStatusError) as err:
        client.assistants.get("nope")
    assert err.value.response.status_code == 404


def test_sync_client_conversation(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread = client.threads.create(metadata={"user": "ana"})
    tid = thread["thread_id"]
    assert thread["status"] == "idle"
    first = client.runs.wait(
        tid, "agent", input={"messages": [{"role": "user", "content": "Quiero agendar una cita"}]}
    )
    second = client.runs.wait(
        tid,
        "agent",
        input={"messages": [{"role": "user", "content": "corte de pelo mañana a las 11"}]},
    )
    assert human_texts(first) == ["Quiero agendar una cita"]
    assert human_texts(second) == ["Quiero agendar una cita", "corte de pelo mañana a las 11"]
    assert second["messages"][-1]["type"] == "ai" and second["messages"][-1]["content"]
    state = client.threads.get_state(tid)
    assert human_texts(state["values"]) == human_texts(second)
    history = client.threads.get_history(tid, limit=50)
    assert history and history[0]["checkpoint"]["checkpoint_id"]
    assert client.threads.get(tid)["metadata"] == {
        "user": "ana",
        "graph_id": "agent",
        "assistant_id": "agent",
    }
    found = client.threads.search(metadata={"user": "ana"})
    assert [t["thread_id"] for t in found] == [tid]


async def test_async_client_stream(server: ServerProcess) -> None:
    client = get_client(url=server.base_url)
    tid = str(uuid.uuid4())
    events = []
    async for part in client.runs.stream(
        tid,
        "agent",
        input={"messages": [{"role": "user", "content": "What services do you offer?"}]},
        stream_mode=["values", "updates", "messages-tuple"],
        if_not_exists="create",
    ):
        events.append(part.event)
    assert events[0] == "metadata"
    assert {"values", "updates", "messages"} <= set(events)
    assert "error" not in events
    state = await client.threads.get_state(tid)
    assert human_texts(state["values"]) == ["What services do you offer?"]


def test_errors_are_json_and_write_nothing(server: ServerProcess) -> None:
    base = server.base_url
    client = get_sync_client(url=base)
    tid = client.threads.create()["thread_id"]
    run = f"{base}/threads/{tid}/runs/wait"
    msg = {"messages": [{"role": "user", "content": "hola"}]}

    unknown = httpx.post(
        f"{base}/threads/{uuid.uuid4()}/runs/wait", json={"assistant_id": "agent", "input": msg}
    )
    assert unknown.status_code == 404 and "not found" in unknown.json()["detail"]
    assert httpx.get(f"{base}/threads/{uuid.uuid4()}").status_code == 404
    assert httpx.post(run, json={"assistant_id": "nope", "input": msg}).status_code == 404

    bad_body = httpx.post(run, json={"assistant_id": "agent", "input": msg, "bogus": 1})
    assert bad_body.status_code == 422 and bad_body.json()["detail"]
    bad_role = httpx.post(
        run,
        json={"assistant_id": "agent", "input": {"messages": [{"role": "tool", "content": "x"}]}},
    )
    assert bad_role.status_code == 422
    not_json = httpx.post(run, content=b"{not json", headers={"content-type": "application/json"})
    assert not_json.status_code == 422
    huge = {"messages": [{"role": "user", "content": "x" * 9000}]}
    too_big = httpx.post(run, json={"assistant_id": "agent", "input": huge})
    assert too_big.status_code == 413 and "MAX_MESSAGE_CHARS" in too_big.json()["detail"]
    body_too_big = httpx.post(
        run, content=b"x" * 300_000, headers={"content-type": "application/json"}
    )
    assert body_too_big.status_code == 413
    webhook = httpx.post(
        run, json={"assistant_id": "agent", "input": msg, "webhook": "http://127.0.0.1:9/hook"}
    )
    assert webhook.status_code == 422 and "WEBHOOK_ALLOW_PRIVATE" in webhook.json()["detail"]
    assert httpx.get(f"{base}/threads/bad id!").status_code in (404, 422)

    assert client.threads.get_state(tid)["values"] == {}
    assert client.threads.get_history(tid) == []
    assert httpx.get(f"{base}/threads/{tid}").json()["status"] == "idle"


def test_thread_create_if_exists_and_delete(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    tid = str(uuid.uuid4())
    client.threads.create(thread_id=tid, metadata={"a": 1})
    with pytest.raises(httpx.HTTPStatusError) as err:
        client.threads.create(thread_id=tid)
    assert err.value.response.status_code == 409
    same = client.threads.create(thread_id=tid, if_exists="do_nothing")
    assert same["metadata"] == {"a": 1}
    client.runs.wait(tid, "agent", input={"messages": [{"role": "user", "content": "hi"}]})
    client.threads.delete(tid)
    with pytest.raises(httpx.HTTPStatusError) as err:
        client.threads.get(tid)
    assert err.value.response.status_code == 404
