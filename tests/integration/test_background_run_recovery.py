"""A worker killed (SIGKILL) while it executes a background run, and one stopped
(SIGTERM) with runs queued: no run stays `running`, none is lost or run twice.

A module of its own: each PostgreSQL test module has its own database, so this
server's maintenance leader is the only one looking at it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from langgraph_sdk import get_sync_client

from tests.support.server import ServerProcess
from tests.support.workers import wait_for, worker_pid

pytestmark = pytest.mark.timeout(240)


def ask(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


@pytest.fixture(scope="module")
def slow_server(
    tmp_path_factory: pytest.TempPathFactory, backend_env: dict[str, str]
) -> Iterator[ServerProcess]:
    """Each model call takes 1 s; the maintenance leader looks every second."""
    env = {**backend_env, "OFFLINE_LLM_LATENCY_MS": "1000", "MAINTENANCE_INTERVAL_S": "1"}
    with ServerProcess(tmp_path_factory.mktemp("recovery"), workers=3, env=env) as proc:
        yield proc


def humans(values: dict) -> list[str]:
    return [m["content"] for m in values["messages"] if m["type"] == "human"]


def three_runs_the_first_running(server: ServerProcess) -> tuple[str, list[dict]]:
    """A thread with three background runs accepted, once the first is running."""
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    runs = [client.runs.create(thread_id, "agent", input=ask(f"turn {n}")) for n in range(3)]
    first = runs[0]["run_id"]
    wait_for(lambda: client.runs.get(thread_id, first)["status"] == "running", 10, "running")
    return thread_id, runs


def test_the_runs_of_a_killed_worker_are_failed_or_run_by_the_others(
    slow_server: ServerProcess,
) -> None:
    thread_id, runs = three_runs_the_first_running(slow_server)
    first = runs[0]["run_id"]
    victim = worker_pid(slow_server, first)
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()

    client = get_sync_client(url=slow_server.base_url)  # its connection may have been the victim's
    wait_for(lambda: client.runs.get(thread_id, first)["status"] == "error", 10, "marked error")
    assert time.monotonic() - killed_at < 10
    values = wait_for(
        lambda: (
            client.runs.get(thread_id, runs[2]["run_id"])["status"] == "success"
            and client.threads.get_state(thread_id)["values"]
        ),
        30,
        "the pending runs run by the other workers",
    )
    assert humans(values) == ["turn 1", "turn 2"]  # each once, in order
    assert client.runs.get(thread_id, runs[1]["run_id"])["status"] == "success"
    assert worker_pid(slow_server, runs[1]["run_id"]) != victim
    done = client.runs.wait(thread_id, "agent", input=ask("again"))
    assert humans(done)[-1] == "again"


def test_a_worker_stopped_gracefully_finishes_its_run_and_leaves_the_queue(
    slow_server: ServerProcess,
) -> None:
    thread_id, runs = three_runs_the_first_running(slow_server)
    first = runs[0]["run_id"]
    os.kill(worker_pid(slow_server, first), signal.SIGTERM)
    client = get_sync_client(url=slow_server.base_url)
    wait_for(
        lambda: client.runs.get(thread_id, runs[2]["run_id"])["status"] == "success",
        30,
        "every run done",
    )
    statuses = [client.runs.get(thread_id, run["run_id"])["status"] for run in runs]
    assert statuses == ["success"] * 3
    values = client.threads.get_state(thread_id)["values"]
    assert humans(values) == ["turn 0", "turn 1", "turn 2"]
