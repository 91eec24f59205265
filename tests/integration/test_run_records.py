"""Runs as resources: every run's record, through the official `langgraph-sdk`.

Real multi-worker servers on both backends: a run's record is written for every run,
`Content-Location` points at it, and it says how the run ended (a running run and a
killed worker's run: test_run_recovery.py).
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client

from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(180)

QUESTION = {"messages": [{"role": "user", "content": "What services?"}]}


def test_a_wait_run_has_a_record_where_content_location_says(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    response = httpx.post(
        f"{server.base_url}/threads/{thread_id}/runs/wait",
        json={"assistant_id": "agent", "input": QUESTION, "metadata": {"source": "test"}},
    )
    assert response.status_code == 200
    location = response.headers["Content-Location"]
    run_id = location.rsplit("/", 1)[1]
    assert location == f"/threads/{thread_id}/runs/{run_id}"
    record = httpx.get(f"{server.base_url}{location}").json()
    assert record["run_id"] == run_id and record["thread_id"] == thread_id
    assert record["status"] == "success" and record["assistant_id"] == "agent"
    assert record["metadata"]["source"] == "test"
    assert record["kwargs"]["input"] == QUESTION
    assert record["multitask_strategy"] == "enqueue"
    assert record["created_at"] <= record["updated_at"]
    assert client.runs.get(thread_id, run_id) == record


async def test_runs_are_listed_newest_first_and_filtered(server: ServerProcess) -> None:
    client = get_client(url=server.base_url)
    thread_id = (await client.threads.create())["thread_id"]
    ids = []
    for _ in range(3):
        async for part in client.runs.stream(thread_id, "agent", input=QUESTION):
            if part.event == "metadata":
                ids.append(part.data["run_id"])
    limited = await client.runs.list(thread_id, limit=2)
    assert [run["run_id"] for run in limited] == ids[::-1][:2]
    page = await client.runs.list(thread_id, limit=2, offset=2)
    assert [run["run_id"] for run in page] == ids[:1]
    assert len(await client.runs.list(thread_id, status="success")) == 3
    assert await client.runs.list(thread_id, status="error") == []
    await client.runs.delete(thread_id, ids[0])
    assert [run["run_id"] for run in await client.runs.list(thread_id)] == ids[:0:-1]


def test_failed_and_interrupted_runs_say_so(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    stopped = httpx.post(
        f"{server.base_url}/threads/{thread_id}/runs/wait",
        json={"assistant_id": "agent", "input": QUESTION, "config": {"recursion_limit": 1}},
    )
    assert stopped.status_code == 422
    failed = client.runs.list(thread_id)[0]
    assert failed["status"] == "error"
    client.runs.wait(thread_id, "agent", input=QUESTION, interrupt_before=["tools"])
    assert client.runs.list(thread_id)[0]["status"] == "interrupted"


def test_bad_run_requests_are_4xx(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    base = f"{server.base_url}/threads/{thread_id}/runs"
    assert httpx.get(f"{base}/{uuid.uuid4()}").status_code == 404
    assert httpx.delete(f"{base}/{uuid.uuid4()}").status_code == 404
    for query in ("limit=0", "limit=abc", "offset=-1", "status=sleeping"):
        response = httpx.get(f"{base}?{query}")
        assert response.status_code == 422, query
        assert response.json()["detail"]
    assert httpx.get(f"{server.base_url}/threads/{uuid.uuid4()}/runs").status_code == 404


def test_runs_of_a_deleted_thread_are_gone(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    client.runs.wait(thread_id, "agent", input=QUESTION)
    [run] = client.runs.list(thread_id)
    client.threads.delete(thread_id)
    client.threads.create(thread_id=thread_id)
    assert client.runs.list(thread_id) == []
    assert (
        httpx.get(f"{server.base_url}/threads/{thread_id}/runs/{run['run_id']}").status_code == 404
    )
