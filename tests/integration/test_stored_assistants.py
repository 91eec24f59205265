"""Stored assistants through the official Python SDK on both backends: one per salon,
versioned, their config and context applied to every run made with them (under what
the run sends itself), from any worker; owners kept apart; bad input refused with
nothing written."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient

from tests.support.server import ServerProcess
from tests.support.workers import only

pytestmark = pytest.mark.timeout(180)

ALICE = "alice-key-0123456789abcdef"
BOB = "bob-key-0123456789abcdefgh"


def say(client: SyncLangGraphClient, thread_id: str, assistant_id: str, text: str, **kw) -> dict:
    return client.runs.wait(
        thread_id,
        assistant_id,
        input={"messages": [{"role": "user", "content": text}]},
        **kw,
    )


def reply(values: dict) -> str:
    return values["messages"][-1]["content"]


def test_an_assistant_per_salon_shapes_its_runs(server: ServerProcess) -> None:
    first, second = server.worker_pids()[:2]
    with only(server, first) as client:
        lola = client.assistants.create(
            "agent",
            name="Salón Lola",
            description="Lola's front desk",
            context={"salon_name": "Salón Lola", "language": "es"},
            config={"configurable": {"booking_confirmation": "interrupt"}},
            metadata={"salon": "lola"},
        )
    assert lola["version"] == 1 and lola["graph_id"] == "agent"
    assert lola["context"] == {"salon_name": "Salón Lola", "language": "es"}
    with only(server, second) as client:  # stored: every worker knows it
        assert client.assistants.get(lola["assistant_id"]) == lola
        thread = client.threads.create()["thread_id"]
        greeting = reply(say(client, thread, lola["assistant_id"], "hello"))
        assert greeting.startswith("¡Hola! Te atiende Salón Lola.")
        # The run's own context goes over the assistant's.
        english = reply(say(client, thread, lola["assistant_id"], "hi", context={"language": "en"}))
        assert english.startswith("Hi, this is Salón Lola!")
        # Its config asks for approval before booking.
        paused = say(
            client, thread, lola["assistant_id"], "haircut tomorrow at 10, I'm Ana, ana@example.com"
        )
        assert (
            paused["__interrupt__"][0]["value"]["action_requests"][0]["name"] == "book_appointment"
        )
        metadata = client.threads.get(thread)["metadata"]
        assert metadata["assistant_id"] == lola["assistant_id"] and metadata["graph_id"] == "agent"


def test_versions_latest_and_delete(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    made = client.assistants.create(
        "agent", name="Studio", context={"salon_name": "Studio 1"}, metadata={"tier": "a"}
    )
    assistant_id = made["assistant_id"]
    changed = client.assistants.update(
        assistant_id, context={"salon_name": "Studio 2"}, metadata={"city": "Madrid"}
    )
    assert changed["version"] == 2 and changed["name"] == "Studio"
    assert changed["metadata"] == {"tier": "a", "city": "Madrid"}  # merged
    assert changed["created_at"] == made["created_at"]
    versions = client.assistants.get_versions(assistant_id)
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["context"] == {"salon_name": "Studio 1"}
    assert [
        v["version"]
        for v in client.assistants.get_versions(assistant_id, metadata={"city": "Madrid"})
    ] == [2]

    thread = client.threads.create()["thread_id"]
    assert "Studio 2" in reply(say(client, thread, assistant_id, "hello"))
    back = client.assistants.set_latest(assistant_id, 1)
    assert back["version"] == 1 and back["context"] == {"salon_name": "Studio 1"}
    assert "Studio 1" in reply(say(client, thread, assistant_id, "hello"))
    assert len(client.assistants.get_versions(assistant_id)) == 2  # nothing was lost

    found = client.assistants.search(metadata={"tier": "a"})
    assert [a["assistant_id"] for a in found] == [assistant_id]
    assert client.assistants.search(name="studio", select=["assistant_id", "version"]) == [
        {"assistant_id": assistant_id, "version": 1}
    ]
    count = client.assistants.count()
    client.assistants.delete(assistant_id)
    assert client.assistants.count() == count - 1
    base = server.base_url
    assert httpx.get(f"{base}/assistants/{assistant_id}").status_code == 404
    gone = httpx.post(
        f"{base}/threads/{thread}/runs/wait",
        json={
            "assistant_id": assistant_id,
            "input": {"messages": [{"role": "user", "content": "hi"}]},
        },
    )
    assert gone.status_code == 404 and assistant_id in gone.json()["detail"]
    assert len(client.threads.get_history(thread, limit=100)) > 0  # the thread keeps its turns


def test_bad_input_is_refused_and_writes_nothing(server: ServerProcess) -> None:
    base = server.base_url
    client = get_sync_client(url=base)
    before = client.assistants.count()
    refused = [
        httpx.post(f"{base}/assistants", json={"graph_id": "other"}),
        httpx.post(f"{base}/assistants", json={"graph_id": "agent", "context": {"language": "fr"}}),
        httpx.post(f"{base}/assistants", json={"graph_id": "agent", "context": {"colour": "red"}}),
        httpx.post(f"{base}/assistants", json={"graph_id": "agent", "nonsense": 1}),
        httpx.post(f"{base}/assistants", json={"graph_id": "agent", "assistant_id": "no spaces"}),
        httpx.post(
            f"{base}/assistants", json={"graph_id": "agent", "config": {"recursion_limit": 0}}
        ),
        httpx.post(f"{base}/assistants", json={"graph_id": "agent", "name": ""}),
    ]
    assert {r.status_code for r in refused} == {422}, [r.text for r in refused]
    assert all(r.json()["detail"] for r in refused)
    assert client.assistants.count() == before

    made = client.assistants.create("agent", assistant_id="fixed-id", name="Fixed")
    taken = httpx.post(f"{base}/assistants", json={"graph_id": "agent", "assistant_id": "fixed-id"})
    assert taken.status_code == 409
    same = client.assistants.create("agent", assistant_id="fixed-id", if_exists="do_nothing")
    assert same == made
    bad_patch = httpx.patch(f"{base}/assistants/fixed-id", json={"context": {"language": "fr"}})
    assert bad_patch.status_code == 422
    assert [v["version"] for v in client.assistants.get_versions("fixed-id")] == [1]
    assert httpx.post(f"{base}/assistants/fixed-id/latest", json={"version": 7}).status_code == 404
    assert httpx.patch(f"{base}/assistants/missing", json={"name": "x"}).status_code == 404
    # The graph's own assistant is not stored: it is never changed or deleted.
    for response in (
        httpx.patch(f"{base}/assistants/agent", json={"name": "x"}),
        httpx.delete(f"{base}/assistants/agent"),
        httpx.post(f"{base}/assistants", json={"graph_id": "agent", "assistant_id": "agent"}),
    ):
        assert response.status_code == 409, response.text
    assert client.assistants.get("agent")["name"] == "agent"
    assert [v["version"] for v in client.assistants.get_versions("agent")] == [1]


def test_each_owner_sees_their_own_assistants(tmp_path: Path) -> None:
    env = {"AUTH_ENABLED": "true", "API_KEYS": f"alice:{ALICE},bob:{BOB}"}
    with ServerProcess(tmp_path, workers=2, env=env) as srv:
        alice = get_sync_client(url=srv.base_url, api_key=ALICE)
        bob = get_sync_client(url=srv.base_url, api_key=BOB)
        mine = alice.assistants.create(
            "agent", name="Alice's salon", context={"salon_name": "Alice"}
        )
        assert mine["metadata"]["owner"] == "alice"
        assert [a["assistant_id"] for a in bob.assistants.search()] == ["agent"]
        assert bob.assistants.count() == 1 and alice.assistants.count() == 2
        key = {"x-api-key": BOB}
        theirs = f"{srv.base_url}/assistants/{mine['assistant_id']}"
        ask = {"messages": [{"role": "user", "content": "hello"}]}
        for response in (
            httpx.get(theirs, headers=key),
            httpx.patch(theirs, json={"name": "taken"}, headers=key),
            httpx.delete(theirs, headers=key),
            httpx.post(f"{theirs}/versions", json={}, headers=key),
            httpx.post(
                f"{srv.base_url}/runs/wait",
                json={"assistant_id": mine["assistant_id"], "input": ask},
                headers=key,
            ),
        ):
            assert response.status_code == 404, response.text
        thread = alice.threads.create()["thread_id"]
        assert "Alice" in reply(say(alice, thread, mine["assistant_id"], "hello"))
        assert alice.assistants.get(mine["assistant_id"])["name"] == "Alice's salon"
