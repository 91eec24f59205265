"""No lost turns: concurrent runs on one thread, from several processes, workers and hosts.

Every test runs on both backends (the file-lock guard and PostgreSQL advisory
locks); the last one needs PostgreSQL: two servers on one database.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing as mp
import os
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
from langgraph_sdk import get_sync_client

from service.storage.locks import thread_offset
from service.storage.postgres.guard import advisory_key, lock_parts
from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(240)


def humans(values: dict) -> list[str]:
    return [m["content"] for m in values.get("messages", []) if m["type"] == "human"]


def _client_process(base_url: str, thread_id: str, name: str, turns: int, strategy: str, out):
    """One client process: its own connection, so the kernel spreads them over workers."""
    results = []
    with httpx.Client(base_url=base_url, timeout=120) as http:
        for turn in range(turns):
            text = f"{name} turn {turn}"
            response = http.post(
                f"/threads/{thread_id}/runs/wait",
                json={
                    "assistant_id": "agent",
                    "input": {"messages": [{"role": "user", "content": text}]},
                    "multitask_strategy": strategy,
                },
            )
            body = response.json()
            returned = humans(body) if response.status_code == 200 else []
            results.append((text, response.status_code, returned))
    out.put(results)


def _run_clients(
    base_url: str | list[str], thread_id: str, processes: int, turns: int, strategy: str
):
    """`processes` clients; with several base URLs, client i talks to server i mod n."""
    urls = [base_url] if isinstance(base_url, str) else base_url
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=_client_process,
            args=(urls[i % len(urls)], thread_id, f"p{i}", turns, strategy, out),
        )
        for i in range(processes)
    ]
    for proc in procs:
        proc.start()
    results = [item for _ in procs for item in out.get(timeout=200)]
    for proc in procs:
        proc.join(30)
    return results


SLOW = {"OFFLINE_LLM_LATENCY_MS": "40", "ENQUEUE_TIMEOUT_S": "120"}


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory, backend_env: dict[str, str]):
    """Runs that take a while (a slower model), so concurrent runs really overlap."""
    env = {**SLOW, **backend_env}
    with ServerProcess(tmp_path_factory.mktemp("guard"), workers=3, env=env) as proc:
        yield proc


def test_enqueue_keeps_every_turn_once_in_order(slow_server: ServerProcess) -> None:
    client = get_sync_client(url=slow_server.base_url)
    tid = client.threads.create()["thread_id"]
    results = _run_clients(slow_server.base_url, tid, processes=4, turns=6, strategy="enqueue")
    _assert_no_lost_turns(client, tid, results, processes=4, turns=6)


def _assert_no_lost_turns(client, tid: str, results: list, processes: int, turns: int) -> None:
    statuses = [status for _, status, _ in results]
    assert all(status == 200 for status in statuses), statuses
    final = humans(client.threads.get_state(tid)["values"])
    sent = [text for text, _, _ in results]
    assert sorted(final) == sorted(sent), "a turn acknowledged with 200 is missing or doubled"
    for text, _, returned in results:
        # Runs were serialized: what each run saw is a prefix of the final history,
        # ending with its own message, so the order matches acceptance order.
        assert returned[-1] == text
        assert final[: len(returned)] == returned
    for i in range(processes):
        mine = [t for t in final if t.startswith(f"p{i} ")]
        assert mine == [f"p{i} turn {n}" for n in range(turns)]


def test_reject_answers_409_and_writes_nothing(slow_server: ServerProcess) -> None:
    client = get_sync_client(url=slow_server.base_url)
    tid = client.threads.create()["thread_id"]
    results = _run_clients(slow_server.base_url, tid, processes=4, turns=5, strategy="reject")

    accepted = [text for text, status, _ in results if status == 200]
    rejected = [text for text, status, _ in results if status == 409]
    assert len(accepted) + len(rejected) == len(results), [s for _, s, _ in results]
    assert rejected, "expected some concurrent runs to be rejected"
    final = humans(client.threads.get_state(tid)["values"])
    assert sorted(final) == sorted(accepted)
    assert not set(rejected) & set(final)


def test_contended_thread_does_not_block_other_threads(slow_server: ServerProcess) -> None:
    base = slow_server.base_url
    client = get_sync_client(url=base)
    hot = client.threads.create()["thread_id"]
    # Measure one uncontended run first.
    started = time.perf_counter()
    client.runs.wait(hot, "agent", input={"messages": [{"role": "user", "content": "hi"}]})
    one_run = time.perf_counter() - started

    crowd = threading.Thread(target=_run_clients, args=(base, hot, 4, 4, "enqueue"), daemon=True)
    crowd.start()
    time.sleep(0.5)
    latencies = []
    for _ in range(5):
        other = str(uuid.uuid4())
        started = time.perf_counter()
        client.runs.wait(
            other,
            "agent",
            input={"messages": [{"role": "user", "content": "hello"}]},
            if_not_exists="create",
        )
        latencies.append(time.perf_counter() - started)
    busy_during = httpx.get(f"{base}/threads/{hot}").json()["status"]
    crowd.join(200)
    # 16 queued runs take at least 16 run-times; other threads must not wait for them.
    assert max(latencies) < max(8 * one_run, 2.0), (latencies, one_run)
    assert busy_during in ("busy", "idle")
    assert httpx.get(f"{base}/threads/{hot}").json()["status"] == "idle"


def _pg_lock_holder_pid(database_url: str, thread_id: str) -> int | None:
    """Which worker holds the thread's advisory lock: pg_locks, and the session's name."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT a.application_name FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid",
            lock_parts(advisory_key(thread_id)),
        ).fetchone()
    return int(row[0].rsplit(":", 1)[1]) if row else None


def _lock_holder_pid(lock_file: Path, thread_id: str) -> int | None:
    """Which process holds the thread's record lock, from the kernel's /proc/locks."""
    inode = os.stat(lock_file).st_ino
    offset = thread_offset(thread_id)
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        # e.g. "1: POSIX  ADVISORY  WRITE 1234 08:01:5678 <start> <end>"
        if "POSIX" not in fields or len(fields) < 8:
            continue
        pid, dev_inode, start = fields[-4], fields[-3], fields[-2]
        if dev_inode.endswith(f":{inode}") and int(start) == offset:
            return int(pid)
    return None


def test_sigkill_mid_run_frees_the_thread(tmp_path: Path, backend_env: dict[str, str]) -> None:
    env = {"OFFLINE_LLM_LATENCY_MS": "3000", **backend_env}
    with ServerProcess(tmp_path, workers=2, env=env) as srv:
        client = get_sync_client(url=srv.base_url)
        tid = client.threads.create()["thread_id"]
        lock_file = srv.db_path.with_name(srv.db_path.name + ".locks")
        database_url = backend_env.get("DATABASE_URL")

        def doomed() -> None:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(
                    f"{srv.base_url}/threads/{tid}/runs/wait",
                    json={
                        "assistant_id": "agent",
                        "input": {"messages": [{"role": "user", "content": "doomed turn"}]},
                    },
                    timeout=30,
                )

        runner = threading.Thread(target=doomed, daemon=True)
        runner.start()
        holder = None
        deadline = time.monotonic() + 5
        while holder is None and time.monotonic() < deadline:
            if database_url:
                holder = _pg_lock_holder_pid(database_url, tid)
            else:
                holder = _lock_holder_pid(lock_file, tid)
            time.sleep(0.02)
        assert holder in srv.worker_pids(), "the run should hold the thread in a worker"
        assert httpx.get(f"{srv.base_url}/threads/{tid}").json()["status"] == "busy"

        os.kill(holder, signal.SIGKILL)
        killed_at = time.monotonic()
        while True:
            response = httpx.get(f"{srv.base_url}/threads/{tid}", timeout=5)
            if response.status_code == 200 and response.json()["status"] != "busy":
                break
            assert time.monotonic() - killed_at < 2.0, "thread still locked 2 s after the kill"
            time.sleep(0.01)
        recovered = time.monotonic() - killed_at
        runner.join(10)

        response = httpx.post(
            f"{srv.base_url}/threads/{tid}/runs/wait",
            json={
                "assistant_id": "agent",
                "input": {"messages": [{"role": "user", "content": "after the crash"}]},
                "multitask_strategy": "reject",
            },
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert humans(response.json()) == ["after the crash"]
        print(f"thread free {recovered * 1000:.0f} ms after SIGKILL of its worker")


def test_delete_waits_for_the_run(tmp_path: Path, backend_env: dict[str, str]) -> None:
    env = {"OFFLINE_LLM_LATENCY_MS": "1000", **backend_env}
    srv = ServerProcess(tmp_path, workers=2, env=env).start()
    try:
        _delete_during_run(srv.base_url)
    finally:
        srv.stop()


def _delete_during_run(base: str) -> None:
    client = get_sync_client(url=base)
    tid = client.threads.create()["thread_id"]
    outcome = {}

    def run() -> None:
        outcome["run"] = httpx.post(
            f"{base}/threads/{tid}/runs/wait",
            json={
                "assistant_id": "agent",
                "input": {"messages": [{"role": "user", "content": "x"}]},
            },
            timeout=60,
        ).status_code

    runner = threading.Thread(target=run)
    runner.start()
    deadline = time.monotonic() + 5
    while httpx.get(f"{base}/threads/{tid}").json()["status"] != "busy":
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert httpx.delete(f"{base}/threads/{tid}", timeout=60).status_code == 204
    runner.join(60)
    assert outcome["run"] == 200
    assert httpx.get(f"{base}/threads/{tid}").status_code == 404


@pytest.mark.backends("postgres")
def test_two_servers_on_one_database_lose_no_turns(
    tmp_path: Path, backend_env: dict[str, str]
) -> None:
    """Two hosts (two servers, own ports and files) behind one load balancer, one database."""
    # Slower runs than SLOW: a run must still be in flight when the other host is asked.
    env = {**SLOW, "OFFLINE_LLM_LATENCY_MS": "250", **backend_env}
    host_a = ServerProcess(tmp_path / "host-a", workers=2, env=env)
    host_b = ServerProcess(tmp_path / "host-b", workers=2, env=env)
    with contextlib.ExitStack() as stack:
        # Both start at once, as hosts do: each master creates the schema, under a lock.
        for srv in (host_a, host_b):
            stack.callback(srv.__exit__)  # stops whichever did start
        with ThreadPoolExecutor(2) as starting:
            list(starting.map(lambda srv: srv.start(), (host_a, host_b)))
        urls = [host_a.base_url, host_b.base_url]
        client = get_sync_client(url=host_a.base_url)
        tid = client.threads.create()["thread_id"]
        results = _run_clients(urls, tid, processes=4, turns=3, strategy="enqueue")
        _assert_no_lost_turns(client, tid, results, processes=4, turns=3)
        other = get_sync_client(url=host_b.base_url)
        assert other.threads.get_state(tid)["values"] == client.threads.get_state(tid)["values"]

        # A run in flight on one host shows as busy on the other, and blocks `reject` there.
        slow = threading.Thread(
            target=httpx.post,
            args=(f"{host_a.base_url}/threads/{tid}/runs/wait",),
            kwargs={
                "json": {
                    "assistant_id": "agent",
                    "input": {"messages": [{"role": "user", "content": "slow one"}]},
                },
                "timeout": 60,
            },
        )
        slow.start()
        deadline = time.monotonic() + 5
        while httpx.get(f"{host_b.base_url}/threads/{tid}").json()["status"] != "busy":
            assert time.monotonic() < deadline, "host B never saw host A's run"
            time.sleep(0.005)
        rejected = httpx.post(
            f"{host_b.base_url}/threads/{tid}/runs/wait",
            json={
                "assistant_id": "agent",
                "input": {"messages": [{"role": "user", "content": "rejected"}]},
                "multitask_strategy": "reject",
            },
            timeout=60,
        )
        slow.join(60)
        assert rejected.status_code == 409
        final = humans(other.threads.get_state(tid)["values"])
        assert final[-1] == "slow one" and "rejected" not in final


@contextlib.contextmanager
def _held_from_outside(lock_file: Path, database_url: str | None, thread_id: str):
    """The thread's lock, taken by this test process as a worker would take it."""
    if database_url:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (advisory_key(thread_id),))
            yield lambda: conn.execute("SELECT pg_advisory_unlock(%s)", (advisory_key(thread_id),))
        return
    fd = os.open(lock_file, os.O_RDWR)
    offset = thread_offset(thread_id)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset, os.SEEK_SET)
        yield lambda: fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset, os.SEEK_SET)
    finally:
        os.close(fd)


@pytest.mark.parametrize("endpoint", ["runs/wait", "runs"])
def test_reject_waits_for_a_thread_between_two_runs(
    tmp_path: Path, backend_env: dict[str, str], endpoint: str
) -> None:
    """A thread held by none of its runs (one has just recorded its end, and its worker is
    letting go) is not busy for `reject` if it is let go within moments; held longer, 409."""
    with ServerProcess(tmp_path, workers=2, env=backend_env) as srv:
        client = get_sync_client(url=srv.base_url)
        tid = client.threads.create()["thread_id"]
        lock_file = srv.db_path.with_name(srv.db_path.name + ".locks")
        body = {
            "assistant_id": "agent",
            "input": {"messages": [{"role": "user", "content": "right after"}]},
            "multitask_strategy": "reject",
        }
        url = f"{srv.base_url}/threads/{tid}/{endpoint}"
        with _held_from_outside(lock_file, backend_env.get("DATABASE_URL"), tid) as release:
            threading.Timer(0.2, release).start()
            accepted = httpx.post(url, json=body, timeout=30)
        assert accepted.status_code == 200, accepted.text
        if endpoint == "runs":
            client.runs.join(tid, accepted.json()["run_id"])
        assert humans(client.threads.get_state(tid)["values"]) == ["right after"]

        with _held_from_outside(lock_file, backend_env.get("DATABASE_URL"), tid):
            refused = httpx.post(url, json=body, timeout=30)
        assert refused.status_code == 409, refused.text
        assert humans(client.threads.get_state(tid)["values"]) == ["right after"]
