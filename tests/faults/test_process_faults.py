"""Process faults under load: a worker killed, the server stopped."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest

from service.storage.sqlite.driver import sqlite3
from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(240)


def _body(text: str) -> dict:
    return {
        "assistant_id": "agent",
        "input": {"messages": [{"role": "user", "content": text}]},
        "if_not_exists": "create",
    }


async def _user(base: str, index: int, stop_at: float, log: list) -> tuple[str, list[str]]:
    """Sequential turns on one thread; returns the thread and its acknowledged turns."""
    thread_id = f"u{index}-{uuid.uuid4()}"
    acknowledged = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        n = 0
        while time.monotonic() < stop_at:
            text = f"turn {n} of user {index}"
            started = time.monotonic()
            try:
                response = await http.post(f"/threads/{thread_id}/runs/wait", json=_body(text))
            except httpx.TransportError as exc:
                log.append(("transport", started, time.monotonic(), type(exc).__name__))
            else:
                if response.status_code == 200:
                    acknowledged.append(text)
                else:
                    log.append((response.status_code, started, time.monotonic(), response.text))
            n += 1
    return thread_id, acknowledged


def _runs_in_flight(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    match = re.search(r"^booking_agent_runs_in_flight (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def _history(base: str, thread_id: str) -> list[str]:
    state = httpx.get(f"{base}/threads/{thread_id}/state", timeout=30).json()
    return [m["content"] for m in state["values"].get("messages", []) if m["type"] == "human"]


def test_sigkill_one_worker_during_fifty_user_load(tmp_path: Path) -> None:
    env = {"OFFLINE_LLM_LATENCY_MS": "20"}
    with ServerProcess(tmp_path, workers=3, env=env) as srv:
        victims = srv.worker_pids()
        log: list = []

        async def load() -> list[tuple[str, list[str]]]:
            stop_at = time.monotonic() + 12
            users = [asyncio.create_task(_user(srv.base_url, i, stop_at, log)) for i in range(50)]
            await asyncio.sleep(4)
            os.kill(victims[0], signal.SIGKILL)
            log.append(("killed", time.monotonic(), time.monotonic(), victims[0]))
            return await asyncio.gather(*users)

        results = asyncio.run(load())
        killed_at = next(entry[1] for entry in log if entry[0] == "killed")
        failures = [entry for entry in log if entry[0] != "killed"]
        # Only requests in flight on the killed worker failed: at most one per user, all of
        # them started before the kill, and none is a 5xx.
        assert len(failures) <= 50, failures
        assert all(entry[1] <= killed_at + 0.5 for entry in failures), failures
        assert not [entry for entry in failures if entry[0] != "transport"], failures
        deadline = time.monotonic() + 10
        while len(srv.worker_pids()) < 3 or victims[0] in srv.worker_pids():
            assert time.monotonic() < deadline, "gunicorn did not replace the worker"
            time.sleep(0.1)
        acknowledged = 0
        for thread_id, texts in results:
            history = _history(srv.base_url, thread_id)
            assert set(texts) <= set(history), (thread_id, texts, history)
            acknowledged += len(texts)
        assert acknowledged > 100
        print(f"{acknowledged} turns acknowledged, {len(failures)} failed with the worker")
    conn = sqlite3.connect(str(srv.db_path))
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_sigterm_under_load_drains_in_flight_requests(tmp_path: Path) -> None:
    env = {"OFFLINE_LLM_LATENCY_MS": "400", "GRACEFUL_TIMEOUT_S": "20"}
    srv = ServerProcess(tmp_path, workers=2, env=env).start()
    threads = [str(uuid.uuid4()) for _ in range(12)]

    async def scenario() -> tuple[list, list, float]:
        async def one(thread_id: str) -> int:
            async with httpx.AsyncClient(base_url=srv.base_url, timeout=60) as http:
                response = await http.post(
                    f"/threads/{thread_id}/runs/wait", json=_body("in flight")
                )
                return response.status_code

        in_flight = [asyncio.create_task(one(t)) for t in threads]
        # Wait until the server runs all of them (each takes about 1 s), so SIGTERM
        # lands while every one is in flight.
        deadline = time.monotonic() + 10
        while _runs_in_flight(srv.base_url) < len(threads):
            assert time.monotonic() < deadline, "the runs did not all start"
            await asyncio.sleep(0.02)
        srv.proc.send_signal(signal.SIGTERM)
        sent_at = time.monotonic()
        await asyncio.sleep(0.2)
        refused = []
        for _ in range(3):
            try:
                async with httpx.AsyncClient(base_url=srv.base_url, timeout=5) as http:
                    refused.append((await http.get("/ok")).status_code)
            except httpx.TransportError as exc:
                refused.append(type(exc).__name__)
        codes = await asyncio.gather(*in_flight, return_exceptions=True)
        return codes, refused, sent_at

    codes, refused, sent_at = asyncio.run(scenario())
    exit_code = srv.proc.wait(30)
    took = time.monotonic() - sent_at
    assert codes == [200] * len(threads), codes
    assert all(isinstance(r, str) for r in refused), refused  # new connections refused
    assert exit_code == 0
    assert took < 20, f"shutdown took {took:.1f} s, beyond the graceful timeout"

    again = ServerProcess(tmp_path, workers=2, port=srv.port).start()
    try:
        for thread_id in threads:
            assert _history(again.base_url, thread_id) == ["in flight"]
    finally:
        again.stop()
