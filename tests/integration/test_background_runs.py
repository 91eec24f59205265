"""Background runs, join, cancel, multitask strategies and stateless runs, through the
official `langgraph-sdk` (sync and async) against 4 real workers on both backends.

Where a test needs a call to reach one worker, it stops the others (SIGSTOP) for the
call: a stopped worker accepts nothing, so the one left takes the connection.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client

from tests.support.server import ServerProcess
from tests.support.workers import only, wait_for, worker_of

pytestmark = pytest.mark.timeout(240)


FREE_SLOTS = "any free slots tomorrow for a haircut?"


def ask(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, backend_env: dict[str, str]
) -> Iterator[ServerProcess]:
    """Four workers taking two background runs each at most; each model call takes
    0.4 s, so a run is seen while it runs."""
    env = {**backend_env, "OFFLINE_LLM_LATENCY_MS": "400", "BACKGROUND_RUNS_PER_WORKER": "2"}
    with ServerProcess(tmp_path_factory.mktemp("runs"), workers=4, env=env) as proc:
        yield proc


@pytest.fixture(scope="module")
def slow(
    tmp_path_factory: pytest.TempPathFactory, backend_env: dict[str, str]
) -> Iterator[ServerProcess]:
    """Each model call takes 1.5 s: a cancel lands while the run is between its steps."""
    env = {**backend_env, "OFFLINE_LLM_LATENCY_MS": "1500"}
    with ServerProcess(tmp_path_factory.mktemp("slow"), workers=4, env=env) as proc:
        yield proc


def humans(values: dict) -> list[str]:
    return [m["content"] for m in values["messages"] if m["type"] == "human"]


async def test_runs_on_a_thread_run_in_acceptance_order(server: ServerProcess) -> None:
    client = get_client(url=server.base_url)
    thread_id = (await client.threads.create())["thread_id"]
    runs = [
        await client.runs.create(thread_id, "agent", input=ask(f"turn {n}"), metadata={"n": n})
        for n in range(5)
    ]
    assert runs[0]["status"] in ("pending", "running")
    assert all(run["thread_id"] == thread_id for run in runs)
    values = await client.runs.join(thread_id, runs[-1]["run_id"])
    assert humans(values) == [f"turn {n}" for n in range(5)]
    records = await client.runs.list(thread_id, limit=10)
    assert [r["run_id"] for r in records] == [r["run_id"] for r in runs][::-1]
    assert {r["status"] for r in records} == {"success"}
    ended = sorted(records, key=lambda r: r["updated_at"])
    assert [r["metadata"]["n"] for r in ended] == list(range(5))
    # Joining a run that has ended answers at once, with the thread's values.
    assert humans(await client.runs.join(thread_id, runs[0]["run_id"])) == humans(values)


def test_runs_spread_over_the_workers_and_any_worker_joins(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    threads = [client.threads.create()["thread_id"] for _ in range(8)]
    runs = [client.runs.create(t, "agent", input=ask("what services?")) for t in threads]
    for run in runs:  # a fresh connection each: any worker answers
        joined = get_sync_client(url=server.base_url).runs.join(run["thread_id"], run["run_id"])
        assert humans(joined) == ["what services?"]
    executed_by = {worker_of(server, run["run_id"]) for run in runs}
    assert len(executed_by) >= 2, executed_by


def test_create_get_cancel_and_join_on_different_workers(server: ServerProcess) -> None:
    first, second = server.worker_pids()[:2]
    with only(server, first) as client:
        thread_id = client.threads.create()["thread_id"]
        # Two model calls around a read-only tool: the run is still in its second call
        # when the first worker wakes and sees the cancel.
        run = client.runs.create(thread_id, "agent", input=ask(FREE_SLOTS))
        wait_for(
            lambda: client.runs.get(thread_id, run["run_id"])["status"] == "running", 10, "run"
        )
    assert worker_of(server, run["run_id"]).endswith(f":{first}")
    os.kill(first, signal.SIGSTOP)  # the run's worker is frozen mid-run
    try:
        with only(server, second) as client:
            assert client.runs.get(thread_id, run["run_id"])["status"] == "running"
            client.runs.cancel(thread_id, run["run_id"])
            assert client.runs.get(thread_id, run["run_id"])["status"] == "running"
            joined: list[dict] = []
            joiner = threading.Thread(
                target=lambda: joined.append(client.runs.join(thread_id, run["run_id"]))
            )
            joiner.start()
            time.sleep(0.5)  # the join is with the second worker now
            os.kill(first, signal.SIGCONT)  # the first sees the cancel and stops the run
            joiner.join(30)
    finally:
        os.kill(first, signal.SIGCONT)
    assert joined and humans(joined[0]) == [FREE_SLOTS]
    client = get_sync_client(url=server.base_url)
    assert client.runs.get(thread_id, run["run_id"])["status"] == "interrupted"
    again = client.runs.wait(thread_id, "agent", input=ask("what services?"))
    assert humans(again)[-1] == "what services?"


def test_reject_refuses_a_thread_with_an_active_run(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    run = client.runs.create(thread_id, "agent", input=ask("what services?"))
    for path in ("/runs", "/runs/wait"):
        refused = httpx.post(
            f"{server.base_url}/threads/{thread_id}{path}",
            json={"assistant_id": "agent", "input": ask("no"), "multitask_strategy": "reject"},
        )
        assert refused.status_code == 409, refused.text
        assert refused.json()["detail"]
    client.runs.join(thread_id, run["run_id"])
    assert [r["run_id"] for r in client.runs.list(thread_id)] == [run["run_id"]]
    accepted = client.runs.create(thread_id, "agent", input=ask("yes"), multitask_strategy="reject")
    client.runs.join(thread_id, accepted["run_id"])


def test_reject_refuses_a_thread_whose_run_waits_in_the_queue(server: ServerProcess) -> None:
    """A pending run holds no thread yet: `reject` goes by the thread's runs, and a refused
    run leaves neither a record nor a change to the thread."""
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    delayed = client.runs.create(thread_id, "agent", input=ask("later"), after_seconds=1)
    before = client.threads.get(thread_id)
    refused = httpx.post(
        f"{server.base_url}/threads/{thread_id}/runs",
        json={"assistant_id": "agent", "input": ask("no"), "multitask_strategy": "reject"},
    )
    assert refused.status_code == 409, refused.text
    assert [r["run_id"] for r in client.runs.list(thread_id)] == [delayed["run_id"]]
    assert client.threads.get(thread_id)["updated_at"] == before["updated_at"]
    assert humans(client.runs.join(thread_id, delayed["run_id"])) == ["later"]


def test_cancelling_a_pending_run_keeps_it_from_running(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    first = client.runs.create(thread_id, "agent", input=ask("first"))
    second = client.runs.create(thread_id, "agent", input=ask("second"))
    third = client.runs.create(thread_id, "agent", input=ask("third"))
    client.runs.cancel(thread_id, second["run_id"])
    client.runs.cancel(thread_id, third["run_id"], action="rollback")
    client.runs.join(thread_id, first["run_id"])
    assert client.runs.get(thread_id, second["run_id"])["status"] == "interrupted"
    gone = httpx.get(f"{server.base_url}/threads/{thread_id}/runs/{third['run_id']}")
    assert gone.status_code == 404  # a rolled-back run leaves no record
    assert humans(client.threads.get_state(thread_id)["values"]) == ["first"]
    ended = httpx.post(f"{server.base_url}/threads/{thread_id}/runs/{first['run_id']}/cancel")
    assert ended.status_code == 409 and "already ended" in ended.json()["detail"]


def test_a_rolled_back_run_leaves_no_trace_in_the_thread(slow: ServerProcess) -> None:
    client = get_sync_client(url=slow.base_url)
    thread_id = client.threads.create()["thread_id"]
    client.runs.wait(thread_id, "agent", input=ask("what services?"))
    before = client.threads.get_history(thread_id, limit=100)
    run = client.runs.create(
        thread_id, "agent", input=ask("book a haircut tomorrow at 10"), durability="sync"
    )
    steps = lambda: len(client.threads.get_history(thread_id, limit=100))  # noqa: E731
    wait_for(lambda: steps() > len(before), 10, "the run's first step")
    client.runs.cancel(thread_id, run["run_id"], wait=True, action="rollback")
    gone = httpx.get(f"{slow.base_url}/threads/{thread_id}/runs/{run['run_id']}")
    assert gone.status_code == 404
    after = client.threads.get_history(thread_id, limit=100)
    assert [c["checkpoint"] for c in after] == [c["checkpoint"] for c in before]
    assert client.threads.get(thread_id)["status"] == "idle"


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
def test_interrupt_and_rollback_stop_the_run_in_flight(slow: ServerProcess, strategy: str) -> None:
    client = get_sync_client(url=slow.base_url)
    thread_id = client.threads.create()["thread_id"]
    busy = client.runs.create(
        thread_id, "agent", input=ask("book a haircut tomorrow at 10"), durability="sync"
    )
    wait_for(lambda: client.threads.get_history(thread_id, limit=5), 10, "the run's first step")
    values = client.runs.wait(
        thread_id, "agent", input=ask("what services?"), multitask_strategy=strategy
    )
    assert humans(values)[-1] == "what services?"
    records = {r["run_id"]: r["status"] for r in client.runs.list(thread_id)}
    if strategy == "interrupt":
        assert records[busy["run_id"]] == "interrupted"
        assert humans(values)[0] == "book a haircut tomorrow at 10"  # its steps stay
    else:
        assert busy["run_id"] not in records
        assert humans(values) == ["what services?"]
    assert list(records.values()).count("success") == 1


async def test_stateless_runs_use_a_thread_of_their_own(server: ServerProcess) -> None:
    client = get_client(url=server.base_url)
    count = await client.threads.count()
    values = await client.runs.wait(None, "agent", input=ask("what services?"))
    assert humans(values) == ["what services?"]
    events = [part.event async for part in client.runs.stream(None, "agent", input=ask("hi"))]
    assert events[0] == "metadata" and events[-1] == "end"
    run = await client.runs.create(None, "agent", input=ask("hi"))
    wait_for(
        lambda: httpx.get(f"{server.base_url}/threads/{run['thread_id']}").status_code == 404,
        20,
        "the stateless run's thread deleted",
    )
    assert await client.threads.count() == count  # deleted once each run ended
    kept = httpx.post(
        f"{server.base_url}/runs/wait",
        json={"assistant_id": "agent", "input": ask("keep it"), "on_completion": "keep"},
    )
    thread_id = kept.headers["Content-Location"].split("/")[2]
    state = await client.threads.get_state(thread_id)
    assert humans(state["values"]) == ["keep it"]


def test_batches_and_cancels_by_filter(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    batch = client.runs.create_batch(
        [
            {"assistant_id": "agent", "input": ask("one"), "thread_id": thread_id},
            {"assistant_id": "agent", "input": ask("two"), "thread_id": thread_id},
            {"assistant_id": "agent", "input": ask("three"), "thread_id": thread_id},
            {"assistant_id": "agent", "input": ask("stateless")},
        ]
    )
    assert [run["thread_id"] for run in batch[:3]] == [thread_id] * 3
    assert batch[3]["thread_id"] != thread_id
    client.runs.cancel_many(thread_id=thread_id, run_ids=[batch[2]["run_id"]])
    client.runs.join(thread_id, batch[1]["run_id"])
    assert humans(client.threads.get_state(thread_id)["values"]) == ["one", "two"]
    assert client.runs.get(thread_id, batch[2]["run_id"])["status"] == "interrupted"
    pending = [client.runs.create(thread_id, "agent", input=ask(str(n))) for n in range(3)]
    client.runs.cancel_many(status="pending")
    client.runs.cancel_many(thread_id=thread_id, action="interrupt")
    wait_for(lambda: not client.runs.list(thread_id, status="running"), 20, "runs stopped")
    statuses = {r["run_id"]: r["status"] for r in client.runs.list(thread_id, limit=20)}
    assert all(statuses[run["run_id"]] == "interrupted" for run in pending[1:])


def test_bad_run_requests_are_4xx_and_accept_nothing(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    base = server.base_url
    good = {"assistant_id": "agent", "input": ask("hi"), "thread_id": thread_id}
    bad_batches = [
        [],
        [good, {"assistant_id": "agent", "input": {"messages": []}, "thread_id": thread_id}],
        [good, {**good, "thread_id": str(uuid.uuid4())}],
        [good, {**good, "assistant_id": "nobody"}],
        [good] * 101,
        {"assistant_id": "agent"},
    ]
    for body in bad_batches:
        response = httpx.post(f"{base}/runs/batch", json=body)
        assert 400 <= response.status_code < 500, (body, response.text)
        assert response.json()["detail"]
    for body in ({}, {"status": "sleeping"}, {"run_ids": []}, {"thread_id": "../x"}):
        response = httpx.post(f"{base}/runs/cancel", json=body)
        assert response.status_code == 422, (body, response.text)
    missing = str(uuid.uuid4())
    assert httpx.post(f"{base}/runs/cancel", json={"thread_id": missing}).status_code == 404
    runs = f"{base}/threads/{thread_id}/runs"
    assert httpx.post(f"{runs}/{missing}/cancel").status_code == 404
    assert httpx.get(f"{runs}/{missing}/join").status_code == 404
    assert httpx.post(f"{runs}/{missing}/cancel?action=explode").status_code == 422
    not_stored = {"assistant_id": "agent", "input": ask("hi"), "webhook": "http://10.0.0.1/h"}
    assert httpx.post(runs, json=not_stored).status_code == 422
    assert (
        httpx.post(
            f"{base}/threads/{missing}/runs", json=not_stored | {"webhook": None}
        ).status_code
        == 404
    )
    assert client.runs.list(thread_id) == []


def test_a_batch_on_a_thread_runs_in_the_order_sent(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    other = client.threads.create()["thread_id"]
    response = httpx.post(
        f"{server.base_url}/threads/{thread_id}/runs/batch",
        json=[
            {"assistant_id": "agent", "input": ask("first")},
            {"assistant_id": "agent", "input": ask("elsewhere"), "thread_id": other},
            {"assistant_id": "agent", "input": ask("second")},
        ],
    )
    assert response.status_code == 200, response.text
    first, elsewhere, second = response.json()
    assert (first["thread_id"], elsewhere["thread_id"], second["thread_id"]) == (
        thread_id,
        other,
        thread_id,
    )
    assert humans(client.runs.join(thread_id, second["run_id"])) == ["first", "second"]
    assert humans(client.runs.join(other, elsewhere["run_id"])) == ["elsewhere"]
    missing = httpx.post(
        f"{server.base_url}/threads/{uuid.uuid4()}/runs/batch",
        json=[{"assistant_id": "agent", "input": ask("x")}],
    )
    assert missing.status_code == 404


def test_after_seconds_delays_a_run_and_the_runs_behind_it(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    accepted = time.monotonic()
    later = client.runs.create(thread_id, "agent", input=ask("later"), after_seconds=2)
    behind = client.runs.create(thread_id, "agent", input=ask("behind"))
    elsewhere = client.threads.create()["thread_id"]
    now = client.runs.create(elsewhere, "agent", input=ask("now"))
    assert humans(client.runs.join(elsewhere, now["run_id"])) == ["now"]  # not held up
    assert time.monotonic() - accepted < 2
    assert client.runs.get(thread_id, later["run_id"])["status"] == "pending"
    assert client.runs.get(thread_id, behind["run_id"])["status"] == "pending"
    assert humans(client.runs.join(thread_id, behind["run_id"])) == ["later", "behind"]
    assert time.monotonic() - accepted >= 2
    # A wait run waits before it takes the thread; a bad delay is a 422 that runs nothing.
    started = time.monotonic()
    client.runs.wait(thread_id, "agent", input=ask("waited"), after_seconds=1)
    assert time.monotonic() - started >= 1
    for delay in (-1, 86_401, "soon"):
        body = {"assistant_id": "agent", "input": ask("no"), "after_seconds": delay}
        response = httpx.post(f"{server.base_url}/threads/{thread_id}/runs", json=body)
        assert response.status_code == 422, response.text
    assert len(client.runs.list(thread_id, limit=10)) == 3
