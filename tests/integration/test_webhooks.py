"""Webhooks against real workers and a real HTTP receiver in this process: a run's end
is POSTed with its status and values, retried past a failing receiver; a private
address is refused unless allowed, and a bad URL is a 422 that writes nothing."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_sync_client

from tests.support.server import ServerProcess

pytestmark = [pytest.mark.timeout(120), pytest.mark.backends("sqlite")]


class Receiver:
    """Collects the POSTs it gets; answers `failures` 500s first."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.attempts = 0
        self.failures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if receiver.failures > 0:
                    receiver.failures -= 1
                    self.send_response(500)
                else:
                    receiver.received.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, run_id: str, timeout_s: float = 20) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for outcome in self.received:
                if outcome["run_id"] == run_id:
                    return outcome
            time.sleep(0.1)
        raise AssertionError(f"no webhook for run {run_id}; got {self.received}")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.server.shutdown()


@pytest.fixture(scope="module")
def allowing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_RETRIES": "2"}
    with ServerProcess(tmp_path_factory.mktemp("hooks"), workers=2, env=env) as proc:
        yield proc


def ask(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


def humans(values: dict) -> list[str]:
    return [m["content"] for m in values["messages"] if m["type"] == "human"]


def test_every_kind_of_run_posts_its_end(allowing: ServerProcess, receiver: Receiver) -> None:
    client = get_sync_client(url=allowing.base_url)
    thread_id = client.threads.create()["thread_id"]
    background = client.runs.create(
        thread_id, "agent", input=ask("what services?"), webhook=receiver.url, metadata={"n": 1}
    )
    outcome = receiver.wait_for(background["run_id"])
    assert outcome["status"] == "success" and outcome["thread_id"] == thread_id
    assert outcome["assistant_id"] == "agent" and outcome["metadata"]["n"] == 1
    assert humans(outcome["values"]) == ["what services?"] and outcome["error"] is None
    assert client.runs.get(thread_id, background["run_id"])["status"] == "success"

    parts = list(client.runs.stream(thread_id, "agent", input=ask("thanks"), webhook=receiver.url))
    run_id = parts[0].data["run_id"]
    assert humans(receiver.wait_for(run_id)["values"]) == ["what services?", "thanks"]

    failing = client.runs.create(
        thread_id,
        "agent",
        input=ask("book a haircut tomorrow at 10, I'm Ana, ana@example.com"),
        config={"recursion_limit": 1},
        webhook=receiver.url,
    )
    ended = receiver.wait_for(failing["run_id"])
    assert ended["status"] == "error" and "recursion" in ended["error"].lower()


def test_a_failing_receiver_is_retried(allowing: ServerProcess, receiver: Receiver) -> None:
    client = get_sync_client(url=allowing.base_url)
    before = receiver.attempts
    receiver.failures = 2
    run = client.runs.create(None, "agent", input=ask("hello"), webhook=receiver.url)
    assert receiver.wait_for(run["run_id"])["status"] == "success"
    assert receiver.attempts - before == 3  # two 500s, then the delivery
    metrics = httpx.get(f"{allowing.base_url}/metrics").text
    assert 'booking_agent_webhooks_total{result="delivered"}' in metrics


def test_private_targets_and_bad_urls_are_refused(tmp_path: Path, receiver: Receiver) -> None:
    with ServerProcess(tmp_path, workers=1) as srv:
        client = get_sync_client(url=srv.base_url)
        thread_id = client.threads.create()["thread_id"]
        for url in (
            receiver.url,
            "http://localhost:8080/hook",
            "http://10.1.2.3/hook",
            "http://[::1]/hook",
            "http://169.254.169.254/latest/meta-data",
            "ftp://example.com/hook",
            "not a url",
            "https://user:secret@example.com/hook",
            "https://example.com:99999/hook",
            "https://example.com/" + "x" * 2100,
        ):
            for path in (f"/threads/{thread_id}/runs", "/runs/wait", "/runs/crons"):
                body = {"assistant_id": "agent", "input": ask("hi"), "webhook": url}
                if path == "/runs/crons":
                    body["schedule"] = "0 9 * * *"
                response = httpx.post(f"{srv.base_url}{path}", json=body)
                assert response.status_code == 422, (url, path, response.text)
                assert response.json()["detail"]
        assert client.runs.list(thread_id) == []
        assert client.crons.search() == []
        assert receiver.received == [] or all(
            o["thread_id"] != thread_id for o in receiver.received
        )
        missing = str(uuid.uuid4())
        good = {"assistant_id": "agent", "input": ask("hi"), "webhook": "https://example.com/h"}
        assert httpx.post(f"{srv.base_url}/threads/{missing}/runs", json=good).status_code == 404
