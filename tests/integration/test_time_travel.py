"""Reading a thread's past through the official `langgraph-sdk`, on both backends.

Every turn's checkpoint is kept by default, so any of them can be read back as it was.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client

from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(120)


def human_texts(values: dict) -> list[str]:
    return [m["content"] for m in values.get("messages", []) if m["type"] == "human"]


def grow(client: Any, thread_id: str, turns: int) -> None:
    for i in range(turns):
        client.runs.wait(
            thread_id,
            "agent",
            input={"messages": [{"role": "user", "content": f"What services? ({i})"}]},
        )


def test_every_turn_is_kept_and_readable_at_its_checkpoint(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    grow(client, thread_id, 4)
    history = client.threads.get_history(thread_id, limit=100)
    assert len(history) >= 4  # at least one checkpoint a turn, none dropped
    by_turns = {len(human_texts(item["values"])): item for item in reversed(history)}
    assert {1, 2, 3, 4} <= set(by_turns)
    second = by_turns[2]
    checkpoint_id = second["checkpoint"]["checkpoint_id"]

    by_id = client.threads.get_state(thread_id, checkpoint_id=checkpoint_id)  # GET form
    by_checkpoint = client.threads.get_state(thread_id, checkpoint=second["checkpoint"])  # POST
    for state in (by_id, by_checkpoint):
        assert state["checkpoint"]["checkpoint_id"] == checkpoint_id
        assert human_texts(state["values"]) == ["What services? (0)", "What services? (1)"]
        assert state["values"] == second["values"]
    one = client.threads.get_history(thread_id, checkpoint=second["checkpoint"])
    assert [item["checkpoint"]["checkpoint_id"] for item in one] == [checkpoint_id]
    latest = client.threads.get_state(thread_id)
    assert len(human_texts(latest["values"])) == 4


async def test_the_async_client_reads_the_same_past(server: ServerProcess) -> None:
    client = get_client(url=server.base_url)
    thread_id = (await client.threads.create())["thread_id"]
    for i in range(2):
        await client.runs.wait(
            thread_id, "agent", input={"messages": [{"role": "user", "content": f"hi {i}"}]}
        )
    history = await client.threads.get_history(thread_id, limit=100)
    oldest_with_input = [h for h in history if human_texts(h["values"]) == ["hi 0"]][-1]
    state = await client.threads.get_state(
        thread_id, checkpoint_id=oldest_with_input["checkpoint"]["checkpoint_id"]
    )
    assert human_texts(state["values"]) == ["hi 0"]


def test_an_unknown_checkpoint_is_a_404_with_detail(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    grow(client, thread_id, 1)
    missing = str(uuid.uuid4())
    for call in (
        lambda: httpx.get(f"{server.base_url}/threads/{thread_id}/state/{missing}"),
        lambda: httpx.post(
            f"{server.base_url}/threads/{thread_id}/state/checkpoint",
            json={"checkpoint": {"checkpoint_id": missing}},
        ),
    ):
        response = call()
        assert response.status_code == 404
        assert missing in response.json()["detail"]
    bad = httpx.post(
        f"{server.base_url}/threads/{thread_id}/state/checkpoint",
        json={"checkpoint": {"checkpoint_id": "not an id!"}},
    )
    assert bad.status_code == 422 and bad.json()["detail"]
    gone = httpx.get(f"{server.base_url}/threads/{uuid.uuid4()}/state/{missing}")
    assert gone.status_code == 404


def test_a_run_from_an_old_checkpoint_forks_the_thread(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    grow(client, thread_id, 3)
    history = client.threads.get_history(thread_id, limit=100)
    after_first = next(h for h in history if len(human_texts(h["values"])) == 1)
    fork_at = after_first["checkpoint"]["checkpoint_id"]

    client.runs.wait(
        thread_id,
        "agent",
        input={"messages": [{"role": "user", "content": "A different second turn"}]},
        checkpoint_id=fork_at,
    )
    head = client.threads.get_state(thread_id)
    assert human_texts(head["values"]) == ["What services? (0)", "A different second turn"]
    # The branch hangs off the fork point; the old branch is still in the history.
    chain = client.threads.get_history(thread_id, limit=100)
    texts = [human_texts(h["values"]) for h in chain]
    assert ["What services? (0)", "What services? (1)", "What services? (2)"] in texts
    parents = {h["checkpoint"]["checkpoint_id"]: h["parent_checkpoint"] for h in chain}
    walk, seen = head["checkpoint"]["checkpoint_id"], []
    while walk and walk != fork_at:
        seen.append(walk)
        walk = (parents.get(walk) or {}).get("checkpoint_id")
    assert walk == fork_at and seen

    # The `checkpoint` form (as the SDK's `checkpoint=`) forks the same way.
    client.runs.wait(
        thread_id,
        "agent",
        input={"messages": [{"role": "user", "content": "Third branch"}]},
        checkpoint=after_first["checkpoint"],
    )
    assert human_texts(client.threads.get_state(thread_id)["values"])[-1] == "Third branch"


def test_update_state_writes_a_new_head_and_refuses_bad_updates(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    grow(client, thread_id, 1)
    before = client.threads.get_state(thread_id)
    note = {"type": "ai", "content": "A note from the salon.", "id": "note-1"}
    written = client.threads.update_state(thread_id, {"messages": [note]}, as_node="agent")
    head = client.threads.get_state(thread_id)
    assert written["checkpoint"]["checkpoint_id"] == head["checkpoint"]["checkpoint_id"]
    assert head["parent_checkpoint"]["checkpoint_id"] == before["checkpoint"]["checkpoint_id"]
    assert head["values"]["messages"][-1]["content"] == "A note from the salon."
    assert head["metadata"]["source"] == "update"
    # The conversation goes on from the edited state.
    client.runs.wait(
        thread_id, "agent", input={"messages": [{"role": "user", "content": "What services?"}]}
    )
    assert len(human_texts(client.threads.get_state(thread_id)["values"])) == 2

    # From an old checkpoint: a branch, as a fork by a run is.
    fork = client.threads.update_state(
        thread_id, {"tool_retries": 0}, as_node="agent", checkpoint=before["checkpoint"]
    )
    forked = client.threads.get_state(thread_id)
    assert forked["checkpoint"]["checkpoint_id"] == fork["checkpoint"]["checkpoint_id"]
    assert forked["values"]["messages"] == before["values"]["messages"]

    size = len(client.threads.get_history(thread_id, limit=1000))
    url = f"{server.base_url}/threads/{thread_id}/state"
    for body, status in [
        ({"values": {"not_a_key": 1}}, 422),
        ({"values": {"messages": [{"role": "wizard", "content": "x"}]}}, 422),
        ({"values": {"tool_retries": 1}, "as_node": "nowhere"}, 422),
        ({"values": {"tool_retries": 1}, "checkpoint_id": str(uuid.uuid4())}, 404),
        ({"values": {"messages": [{"type": "ai", "content": "x" * 100_000}]}}, 413),
        ({"values": {"tool_retries": 1}, "extra": True}, 422),
    ]:
        response = httpx.post(url, json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["detail"]
    assert len(client.threads.get_history(thread_id, limit=1000)) == size
    missing = httpx.post(f"{server.base_url}/threads/{uuid.uuid4()}/state", json={"values": {}})
    assert missing.status_code == 404


def test_a_breakpoint_pauses_the_run_and_an_empty_input_continues_it(
    server: ServerProcess,
) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    client.runs.wait(
        thread_id,
        "agent",
        input={"messages": [{"role": "user", "content": "What services?"}]},
        interrupt_before=["tools"],
    )
    paused = client.threads.get_state(thread_id)
    assert paused["next"] == ["tools"]
    assert client.threads.get(thread_id)["status"] == "interrupted"
    done = client.runs.wait(thread_id, "agent", input=None)
    assert done["messages"][-1]["type"] == "ai" and not done["messages"][-1].get("tool_calls")
    assert client.threads.get(thread_id)["status"] == "idle"
    assert client.threads.get_state(thread_id)["next"] == []


def test_history_select_and_supersteps_on_create(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    seeded = client.threads.create(
        supersteps=[
            {
                "updates": [
                    {
                        "values": {
                            "messages": [
                                {"type": "human", "content": "Hi, I'm Ana", "id": "s1"},
                                {"type": "ai", "content": "Hello Ana!", "id": "s2"},
                            ]
                        },
                        "as_node": "agent",
                    }
                ]
            }
        ]
    )
    assert [m["content"] for m in seeded["values"]["messages"]] == ["Hi, I'm Ana", "Hello Ana!"]
    grow(client, seeded["thread_id"], 1)
    assert human_texts(client.threads.get_state(seeded["thread_id"])["values"]) == [
        "Hi, I'm Ana",
        "What services? (0)",
    ]
    response = httpx.post(
        f"{server.base_url}/threads/{seeded['thread_id']}/history",
        json={"limit": 3, "select": ["checkpoint", "metadata"]},
    )
    assert response.status_code == 200
    assert all(set(item) == {"checkpoint", "metadata"} for item in response.json())

    # A refused create leaves nothing behind.
    thread_id = str(uuid.uuid4())
    for steps in (
        [{"updates": [{"values": {"nope": 1}, "as_node": "agent"}]}],
        [{"updates": [{"values": {"tool_retries": 1}, "as_node": "nowhere"}]}],
        [{"updates": [{"values": {}, "as_node": "agent", "command": {"goto": "agent"}}]}],
        [{"updates": []}],
    ):
        bad = httpx.post(
            f"{server.base_url}/threads", json={"thread_id": thread_id, "supersteps": steps}
        )
        assert bad.status_code == 422 and bad.json()["detail"], steps
        assert httpx.get(f"{server.base_url}/threads/{thread_id}").status_code == 404
    bad_select = httpx.post(
        f"{server.base_url}/threads/{seeded['thread_id']}/history", json={"select": ["secret"]}
    )
    assert bad_select.status_code == 422


def test_a_command_updates_the_state_and_goes_to_a_node(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    grow(client, thread_id, 1)
    done = client.runs.wait(
        thread_id,
        "agent",
        command={
            "update": {"messages": [{"role": "user", "content": "What services? (by command)"}]},
            "goto": "agent",
        },
    )
    assert human_texts(done)[-1] == "What services? (by command)"
    assert done["messages"][-1]["type"] == "ai" and done["messages"][-1]["content"]
    assert client.threads.get(thread_id)["status"] == "idle"
