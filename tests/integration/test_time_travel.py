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
