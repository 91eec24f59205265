"""Thread endpoints through the official `langgraph-sdk`: update, copy, count, search.

On real multi-worker servers, both backends; another owner's threads are covered in
test_auth.py.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client

from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(120)


def say(client, thread_id: str, text: str) -> dict:
    return client.runs.wait(
        thread_id, "agent", input={"messages": [{"role": "user", "content": text}]}
    )


def test_update_merges_metadata_and_bad_patches_change_nothing(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread = client.threads.create(metadata={"customer": "ana", "tier": "gold"})
    updated = client.threads.update(thread["thread_id"], metadata={"tier": "silver", "vip": True})
    assert updated["metadata"] == {"customer": "ana", "tier": "silver", "vip": True}
    assert updated["updated_at"] >= thread["updated_at"]
    assert client.threads.get(thread["thread_id"])["metadata"] == updated["metadata"]
    url = f"{server.base_url}/threads/{thread['thread_id']}"
    for body, status in [
        ({"metadata": {"x": "y" * 10_000}}, 413),
        ({"metadata": {"a": 1}, "unknown": 1}, 422),
        ({"metadata": "not an object"}, 422),
    ]:
        response = httpx.patch(url, json=body)
        assert response.status_code == status, response.text
        assert response.json()["detail"]
    assert client.threads.get(thread["thread_id"])["metadata"] == updated["metadata"]
    missing = httpx.patch(f"{server.base_url}/threads/{uuid.uuid4()}", json={"metadata": {}})
    assert missing.status_code == 404


def test_copy_holds_the_same_conversation_and_then_goes_its_own_way(
    server: ServerProcess,
) -> None:
    client = get_sync_client(url=server.base_url)
    source = client.threads.create(metadata={"customer": "bob"})["thread_id"]
    say(client, source, "What services?")
    say(client, source, "thanks")
    copy = client.threads.copy(source)
    assert copy["thread_id"] != source
    assert copy["metadata"] == client.threads.get(source)["metadata"]
    assert copy["metadata"]["customer"] == "bob" and copy["metadata"]["graph_id"] == "agent"
    original = client.threads.get_state(source)
    copied = client.threads.get_state(copy["thread_id"])
    assert copied["values"] == original["values"]
    assert len(client.threads.get_history(copy["thread_id"], limit=100)) == len(
        client.threads.get_history(source, limit=100)
    )
    say(client, copy["thread_id"], "What services, again?")
    assert len(client.threads.get_state(copy["thread_id"])["values"]["messages"]) > len(
        client.threads.get_state(source)["values"]["messages"]
    )
    assert client.threads.get_state(source)["values"] == original["values"]
    assert httpx.post(f"{server.base_url}/threads/{uuid.uuid4()}/copy").status_code == 404


async def test_count_and_search_filter_sort_and_select(server: ServerProcess) -> None:
    client = get_client(url=server.base_url)
    tag = uuid.uuid4().hex
    ids = []
    for i in range(3):
        thread = await client.threads.create(metadata={"tag": tag, "n": i})
        ids.append(thread["thread_id"])
    await client.runs.wait(
        ids[1], "agent", input={"messages": [{"role": "user", "content": "What services?"}]}
    )
    assert await client.threads.count(metadata={"tag": tag}) == 3
    assert await client.threads.count(metadata={"tag": tag}, status="idle") == 3
    assert await client.threads.count(metadata={"tag": tag}, status="interrupted") == 0

    newest_first = await client.threads.search(metadata={"tag": tag}, limit=10)
    assert newest_first[0]["thread_id"] == ids[1]  # the last one active
    by_id = await client.threads.search(
        metadata={"tag": tag}, sort_by="thread_id", sort_order="asc", limit=10
    )
    assert [t["thread_id"] for t in by_id] == sorted(ids)
    page = await client.threads.search(
        metadata={"tag": tag}, sort_by="thread_id", sort_order="asc", limit=1, offset=1
    )
    assert [t["thread_id"] for t in page] == sorted(ids)[1:2]

    chosen = await client.threads.search(ids=[ids[0], ids[2]], limit=10)
    assert {t["thread_id"] for t in chosen} == {ids[0], ids[2]}
    # Values: the latest state, in results and as a filter (jsonb containment).
    [talked] = await client.threads.search(
        metadata={"tag": tag}, values={"messages": [{"content": "What services?"}]}, limit=10
    )
    assert talked["thread_id"] == ids[1] and talked["values"]["messages"]
    assert (
        await client.threads.count(
            metadata={"tag": tag}, values={"messages": [{"content": "What services?"}]}
        )
        == 1
    )
    slim = await client.threads.search(
        metadata={"tag": tag}, select=["thread_id", "status"], limit=10
    )
    assert all(set(t) == {"thread_id", "status"} for t in slim)


def test_bad_searches_are_422_with_detail(server: ServerProcess) -> None:
    for body in (
        {"sort_by": "metadata"},
        {"sort_order": "sideways"},
        {"select": ["password"]},
        {"status": "sleeping"},
        {"ids": ["not an id!"]},
        {"values": "text"},
    ):
        for path in ("/threads/search", "/threads/count"):
            if path.endswith("count") and set(body) & {"sort_by", "sort_order", "select"}:
                continue
            response = httpx.post(f"{server.base_url}{path}", json=body)
            assert response.status_code == 422, (path, body, response.text)
            assert response.json()["detail"]


def test_a_thread_ttl_is_kept_reported_and_validated(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread = client.threads.create(ttl=90)  # minutes; the SDK sends {"ttl": 90, ...}
    assert thread["ttl"]["ttl"] == 90 and thread["ttl"]["strategy"] == "delete"
    assert thread["ttl"]["expires_at"] > thread["updated_at"]
    updated = client.threads.update(thread["thread_id"], metadata={}, ttl=30)
    assert updated["ttl"]["ttl"] == 30
    assert client.threads.get(thread["thread_id"])["ttl"]["ttl"] == 30
    assert "ttl" not in client.threads.create()  # no TTL of its own: THREAD_TTL_DAYS
    for ttl in (0, -5, "soon", {"ttl": 5, "strategy": "keep_latest"}, 10**12):
        response = httpx.post(f"{server.base_url}/threads", json={"ttl": ttl})
        assert response.status_code == 422, (ttl, response.text)
        assert response.json()["detail"]
    patched = httpx.patch(f"{server.base_url}/threads/{thread['thread_id']}", json={"ttl": 0})
    assert patched.status_code == 422
    assert client.threads.get(thread["thread_id"])["ttl"]["ttl"] == 30
