"""Resumable streams: every event has an id; with `stream_resumable=True` a client that
lost its stream, or any other, replays it from any worker from its `Last-Event-ID` and
follows it to the end. Through the official SDK against 4 workers, both backends."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client

from tests.support.server import ServerProcess
from tests.support.tcp_proxy import TcpProxy
from tests.support.workers import only

pytestmark = pytest.mark.timeout(240)

BOOKING = {"messages": [{"role": "user", "content": "book a haircut tomorrow at 10"}]}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, backend_env: dict[str, str]
) -> Iterator[ServerProcess]:
    """Four workers; each model call takes 0.3 s, so a stream can be cut mid-run."""
    env = {**backend_env, "OFFLINE_LLM_LATENCY_MS": "300"}
    with ServerProcess(tmp_path_factory.mktemp("streams"), workers=4, env=env) as proc:
        yield proc


def parts(events) -> list[tuple[str | None, str, object]]:
    return [(part.id, part.event, part.data) for part in events]


async def test_every_event_has_an_id_and_any_worker_replays_a_resumable_stream(
    server: ServerProcess,
) -> None:
    async with get_client(url=server.base_url) as client:
        thread_id = (await client.threads.create())["thread_id"]
        sent = [
            part
            async for part in client.runs.stream(
                thread_id,
                "agent",
                input=BOOKING,
                stream_mode=["values", "updates"],
                stream_resumable=True,
            )
        ]
        assert [part.id for part in sent] == [str(n) for n in range(1, len(sent) + 1)]
        assert sent[0].event == "metadata" and sent[-1].event == "end"
        run_id = sent[0].data["run_id"]
        for _ in range(4):  # a fresh connection each: whichever worker takes it replays
            async with get_client(url=server.base_url) as fresh:
                replayed = [part async for part in fresh.runs.join_stream(thread_id, run_id)]
            assert parts(replayed) == parts(sent)
        tail = [
            part async for part in client.runs.join_stream(thread_id, run_id, last_event_id="2")
        ]
        assert parts(tail) == parts(sent[2:])
        updates = [
            part.event
            async for part in client.runs.join_stream(thread_id, run_id, stream_mode="updates")
        ]
        assert set(updates) == {"metadata", "updates", "end"}


def test_a_stream_cut_mid_run_resumes_on_another_worker(server: ServerProcess) -> None:
    first, second = server.worker_pids()[:2]
    with only(server, first) as client:
        thread_id = client.threads.create()["thread_id"]
    body = {
        "assistant_id": "agent",
        "input": BOOKING,
        "stream_mode": ["values"],
        "stream_resumable": True,
    }
    seen: list[tuple[str, str]] = []
    with (
        only(server, first),
        httpx.stream("POST", f"{server.base_url}/threads/{thread_id}/runs/stream", json=body) as r,
    ):
        location = r.headers["Location"]
        lines = r.iter_lines()
        for line in lines:  # read the first two events, then drop the connection
            if line.startswith("id: "):
                seen.append((line[4:], next(lines)))
            if len(seen) == 2:
                break
    assert location.endswith("/stream")
    rest: list = []
    joining = get_sync_client(url=server.base_url)  # not closed when `only` ends
    with only(server, second):  # the join is with the second worker...
        joiner = threading.Thread(
            target=lambda: rest.extend(
                parts(
                    joining.runs.join_stream(thread_id, location.split("/")[-2], last_event_id="2")
                )
            )
        )
        joiner.start()
        time.sleep(0.5)
    joiner.join(60)  # ...while the first, running again, finishes the run
    assert rest[0][0] == "3" and rest[-1][1] == "end"
    assert [int(part[0]) for part in rest] == list(range(3, len(rest) + 3))
    state = get_sync_client(url=server.base_url).threads.get_state(thread_id)
    assert rest[-2][2] == state["values"]  # the last values event: the thread's state


def test_the_sdk_reconnects_a_dropped_stream_by_itself(server: ServerProcess) -> None:
    """The connection breaks mid-stream: the SDK follows `Location` with its last event
    id, and the client sees every event once, in order."""
    proxy = TcpProxy(server.port).start()
    client = get_sync_client(url=f"http://127.0.0.1:{proxy.port}")
    thread_id = client.threads.create()["thread_id"]
    stream = client.runs.stream(
        thread_id, "agent", input=BOOKING, stream_mode="values", stream_resumable=True
    )
    received = [next(stream), next(stream)]  # metadata and the first values
    proxy.cut()  # every connection through the proxy breaks
    proxy.restore()
    received += list(stream)
    assert [part.id for part in received] == [str(n) for n in range(1, len(received) + 1)]
    assert received[-1].event == "end"
    run_id = received[0].data["run_id"]
    direct = get_sync_client(url=server.base_url)
    assert parts(received) == parts(direct.runs.join_stream(thread_id, run_id))
    assert direct.runs.get(thread_id, run_id)["status"] == "success"
    proxy.cut()


def test_a_background_run_can_be_followed_while_it_runs(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    run = client.runs.create(
        thread_id, "agent", input=BOOKING, stream_mode=["values"], stream_resumable=True
    )
    live = parts(get_sync_client(url=server.base_url).runs.join_stream(thread_id, run["run_id"]))
    assert live[0][1] == "metadata" and live[-1][1] == "end"
    assert {event for _, event, _ in live} == {"metadata", "values", "end"}
    assert client.runs.get(thread_id, run["run_id"])["status"] == "success"
    again = parts(client.runs.join_stream(thread_id, run["run_id"]))
    assert again == live


def test_a_stream_that_is_not_resumable_keeps_nothing(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    sent = parts(client.runs.stream(thread_id, "agent", input=BOOKING, stream_mode="values"))
    assert [part[0] for part in sent] == [str(n) for n in range(1, len(sent) + 1)]
    run_id = sent[0][2]["run_id"]
    assert [event for _, event, _ in parts(client.runs.join_stream(thread_id, run_id))] == ["end"]
    response = httpx.post(
        f"{server.base_url}/threads/{thread_id}/runs/stream",
        json={"assistant_id": "agent", "input": BOOKING},
    )
    assert "location" not in response.headers


def test_a_joiner_that_leaves_cancels_the_run_if_it_asked_to(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    run = client.runs.create(thread_id, "agent", input=BOOKING, stream_resumable=True)
    url = f"{server.base_url}/threads/{thread_id}/runs/{run['run_id']}/stream"
    with httpx.stream("GET", url, params={"cancel_on_disconnect": "true"}) as response:
        for line in response.iter_lines():
            if line.startswith("event: metadata"):
                break
    deadline = time.monotonic() + 20
    while client.runs.get(thread_id, run["run_id"])["status"] in ("pending", "running"):
        assert time.monotonic() < deadline, "the run was not cancelled"
        time.sleep(0.05)
    assert client.runs.get(thread_id, run["run_id"])["status"] == "interrupted"


def test_bad_join_requests_are_4xx(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    thread_id = client.threads.create()["thread_id"]
    run = client.runs.create(thread_id, "agent", input=BOOKING, stream_resumable=True)
    client.runs.join(thread_id, run["run_id"])
    url = f"{server.base_url}/threads/{thread_id}/runs/{run['run_id']}/stream"
    for headers, params in (
        ({"Last-Event-ID": "abc"}, {}),
        ({"Last-Event-ID": "-1"}, {}),
        ({}, {"stream_mode": "everything"}),
        ({}, {"last_event_id": "9" * 30}),
    ):
        response = httpx.get(url, headers=headers, params=params)
        assert response.status_code == 422, (headers, params, response.text)
        assert response.json()["detail"]
    missing = f"{server.base_url}/threads/{thread_id}/runs/{thread_id}/stream"
    assert httpx.get(missing).status_code == 404
    past_the_end = parts(client.runs.join_stream(thread_id, run["run_id"], last_event_id="999"))
    assert [event for _, event, _ in past_the_end] == ["end"]
