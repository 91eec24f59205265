"""Crons through the official SDK on 3 workers and both backends: each firing starts
one background run (never one per worker), on its thread or on a new one, and the
cron API (search, count, update, delete) answers as LangGraph Server's does."""

from __future__ import annotations

import datetime as dt
import itertools
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client

from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(240)

HELLO = {"messages": [{"role": "user", "content": "what services?"}]}
EVERY_2S = "* * * * * */2"  # croniter's sixth field: seconds


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, backend_env: dict[str, str]
) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("crons"), workers=3, env=backend_env) as proc:
        yield proc


def test_a_thread_cron_runs_once_per_firing_until_deleted(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    cron = client.crons.create_for_thread(
        thread_id, "agent", schedule=EVERY_2S, input=HELLO, metadata={"job": "digest"}
    )
    assert cron["thread_id"] == thread_id and cron["enabled"] is True
    assert cron["next_run_date"] > cron["created_at"]
    time.sleep(7)
    client.crons.delete(cron["cron_id"])
    time.sleep(2.5)  # a firing already claimed may still start its run
    runs = client.runs.list(thread_id, limit=100)
    assert 2 <= len(runs) <= 5, runs
    assert {run["metadata"]["cron_id"] for run in runs} == {cron["cron_id"]}
    assert {run["metadata"]["job"] for run in runs} == {"digest"}
    started = sorted(dt.datetime.fromisoformat(run["created_at"]) for run in runs)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(started)]
    assert all(gap >= 1 for gap in gaps), started  # one run per firing, not one per worker
    time.sleep(2.5)
    assert len(client.runs.list(thread_id, limit=100)) == len(runs)  # deleted: no more
    state = client.threads.get_state(thread_id)
    humans = [m for m in state["values"]["messages"] if m["type"] == "human"]
    assert len(humans) == len([r for r in runs if r["status"] == "success"])


async def test_stateless_crons_run_on_new_threads(server: ServerProcess) -> None:
    async with get_client(url=server.base_url) as client:
        before = await client.threads.count()
        kept = await client.crons.create(
            "agent", schedule=EVERY_2S, input=HELLO, on_run_completed="keep"
        )
        dropped = await client.crons.create("agent", schedule=EVERY_2S, input=HELLO)
        assert kept["thread_id"] is None and kept["on_run_completed"] == "keep"
        time.sleep(5)
        await client.crons.delete(kept["cron_id"])
        await client.crons.delete(dropped["cron_id"])
        time.sleep(2.5)  # the last runs end
        # Only the kept cron's threads stay: one per firing (2 or 3 in 5 s), with its turn.
        added = await client.threads.count() - before
        assert 2 <= added <= 3, added
        threads = await client.threads.search(limit=added, sort_by="created_at", sort_order="desc")
        for thread in threads:
            humans = [m for m in thread["values"]["messages"] if m["type"] == "human"]
            assert [m["content"] for m in humans] == ["what services?"]


def test_crons_are_searched_counted_and_updated(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    tag = str(uuid.uuid4())
    daily = client.crons.create_for_thread(
        thread_id, "agent", schedule="0 9 * * *", input=HELLO, metadata={"tag": tag}
    )
    weekly = client.crons.create(
        "agent",
        schedule="0 9 * * 1",
        input=HELLO,
        metadata={"tag": tag, "kind": "weekly"},
        timezone="Europe/Paris",
    )
    assert weekly["timezone"] == "Europe/Paris"
    assert weekly["next_run_date"][11:16] in ("07:00", "08:00")  # 09:00 in Paris, as UTC
    found = client.crons.search(metadata={"tag": tag}, sort_by="cron_id")
    assert sorted(c["cron_id"] for c in found) == sorted([daily["cron_id"], weekly["cron_id"]])
    assert [c["cron_id"] for c in client.crons.search(thread_id=thread_id)] == [daily["cron_id"]]
    assert client.crons.count(metadata={"tag": tag}) == 2
    assert client.crons.count(metadata={"tag": tag, "kind": "weekly"}) == 1
    selected = client.crons.search(metadata={"tag": tag}, select=["cron_id", "schedule"])
    assert all(set(c) == {"cron_id", "schedule"} for c in selected)

    paused = client.crons.update(daily["cron_id"], enabled=False)
    assert paused["enabled"] is False and paused["next_run_date"] is None
    assert client.crons.count(metadata={"tag": tag}, thread_id=thread_id) == 1
    resumed = client.crons.update(daily["cron_id"], enabled=True, schedule="30 8 * * *")
    assert resumed["enabled"] is True and resumed["next_run_date"][11:16] == "08:30"
    changed = client.crons.update(
        weekly["cron_id"], input={"messages": [{"role": "user", "content": "hours?"}]}
    )
    assert changed["payload"]["input"]["messages"][0]["content"] == "hours?"
    client.crons.delete(daily["cron_id"])
    client.crons.delete(weekly["cron_id"])
    assert client.crons.count(metadata={"tag": tag}) == 0


def test_bad_crons_are_4xx_and_write_nothing(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    base = server.base_url
    good = {"assistant_id": "agent", "schedule": "0 9 * * *", "input": HELLO}
    for body in (
        {**good, "schedule": "every day"},
        {**good, "schedule": "0 9 * * * * * *"},
        {**good, "timezone": "Mars/Olympus"},
        {**good, "timezone": "../../etc/passwd"},
        {**good, "webhook": "http://127.0.0.1:9/hook"},
        {**good, "input": {"messages": []}},
        {**good, "end_time": "yesterday"},
        {**good, "bogus": 1},
    ):
        response = httpx.post(f"{base}/runs/crons", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"]
    assert httpx.post(f"{base}/runs/crons", json={**good, "assistant_id": "x"}).status_code == 404
    thread_cron = f"{base}/threads/{thread_id}/runs/crons"
    refused = httpx.post(thread_cron, json={**good, "on_run_completed": "keep"})
    assert refused.status_code == 422
    missing = f"{base}/threads/{uuid.uuid4()}/runs/crons"
    assert httpx.post(missing, json=good).status_code == 404
    unknown = f"{base}/runs/crons/{uuid.uuid4()}"
    assert httpx.patch(unknown, json={"enabled": False}).status_code == 404
    assert httpx.delete(unknown).status_code == 404
    assert httpx.post(f"{base}/runs/crons/search", json={"limit": 0}).status_code == 422
    assert client.crons.count(thread_id=thread_id) == 0
