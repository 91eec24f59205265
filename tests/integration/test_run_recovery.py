"""Run records while runs run, and when their worker dies, on both backends.

Its own module, so its server is alone on its database: the maintenance leader that
marks a dead worker's runs is one of this server's workers (MAINTENANCE_INTERVAL_S=1).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from langgraph_sdk import get_sync_client

from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(180)

QUESTION = {"messages": [{"role": "user", "content": "What services?"}]}


@pytest.fixture(scope="module")
def slow_server(
    tmp_path_factory: pytest.TempPathFactory, backend_env: dict[str, str]
) -> Iterator[ServerProcess]:
    """Each model call takes 1.5 s, and the maintenance leader looks every second."""
    env = {**backend_env, "OFFLINE_LLM_LATENCY_MS": "1500", "MAINTENANCE_INTERVAL_S": "1"}
    with ServerProcess(tmp_path_factory.mktemp("slow"), workers=2, env=env) as proc:
        yield proc


def _start_run(base_url: str, thread_id: str) -> threading.Thread:
    def call() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the worker serving it may be killed
            httpx.post(
                f"{base_url}/threads/{thread_id}/runs/wait",
                json={"assistant_id": "agent", "input": QUESTION},
                timeout=30,
            )

    runner = threading.Thread(target=call)
    runner.start()
    return runner


def _wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    pytest.fail(f"not within {seconds} s: {what}")


def test_a_running_run_is_seen_from_any_worker_and_not_deleted(slow_server: ServerProcess) -> None:
    client = get_sync_client(url=slow_server.base_url)
    thread_id = client.threads.create()["thread_id"]
    runner = _start_run(slow_server.base_url, thread_id)
    [running] = _wait_for(lambda: client.runs.list(thread_id, status="running"), 10, "running")
    seen = {client.runs.get(thread_id, running["run_id"])["status"] for _ in range(6)}
    assert seen == {"running"}  # six reads, spread over both workers
    refused = httpx.delete(f"{slow_server.base_url}/threads/{thread_id}/runs/{running['run_id']}")
    assert refused.status_code == 409 and refused.json()["detail"]
    runner.join()
    assert client.runs.get(thread_id, running["run_id"])["status"] == "success"


def test_a_run_whose_worker_is_killed_does_not_stay_running(slow_server: ServerProcess) -> None:
    client = get_sync_client(url=slow_server.base_url)
    thread_id = client.threads.create()["thread_id"]
    runner = _start_run(slow_server.base_url, thread_id)
    [running] = _wait_for(lambda: client.runs.list(thread_id, status="running"), 10, "running")
    for victim in slow_server.worker_pids():  # whichever runs it: SIGKILL, no goodbye
        os.kill(victim, signal.SIGKILL)
    runner.join()
    killed_at = time.monotonic()

    # The maintenance leader (MAINTENANCE_INTERVAL_S=1) marks it error; the thread takes
    # new runs at once.
    def marked_error() -> bool:
        try:  # the pooled connections died with the workers; new workers answer
            return client.runs.get(thread_id, running["run_id"])["status"] == "error"
        except httpx.HTTPError:
            return False

    _wait_for(marked_error, 15, "the killed run marked error")
    assert time.monotonic() - killed_at < 15
    done = client.runs.wait(thread_id, "agent", input=QUESTION)
    assert done["messages"][-1]["type"] == "ai"
