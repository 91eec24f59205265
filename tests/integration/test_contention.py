"""A write path that survives contention, and bookings that never double-book.

The 503 test holds SQLite's write lock; the booking race runs on both backends.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

from tests.support.booking import next_open_day
from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(180)

HOLD_LOCK = """
import sys, time
from service.storage.sqlite.driver import sqlite3
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
print("released", flush=True)
"""


def _turn(base: str, thread_id: str, text: str, **extra: object) -> httpx.Response:
    return httpx.post(
        f"{base}/threads/{thread_id}/runs/wait",
        json={
            "assistant_id": "agent",
            "input": {"messages": [{"role": "user", "content": text}]},
            "if_not_exists": "create",
            **extra,
        },
        timeout=60,
    )


def test_lock_held_past_busy_timeout_gives_503_then_recovers(tmp_path: Path) -> None:
    env = {"SQLITE_BUSY_TIMEOUT_MS": "300", "BUSY_RETRY_AFTER_S": "2"}
    with ServerProcess(tmp_path, workers=2, env=env) as srv:
        base = srv.base_url
        threads = [str(uuid.uuid4()) for _ in range(6)]
        for tid in threads:
            assert _turn(base, tid, "hello").status_code == 200

        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(srv.db_path), "3"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout.readline().strip() == "locked"
        during = [_turn(base, tid, "while locked") for tid in threads]
        # Reads keep working while another process holds the write lock.
        reads = [httpx.get(f"{base}/threads/{tid}/state").status_code for tid in threads]
        holder.wait(30)

        assert [r.status_code for r in during] == [503] * len(threads)
        for response in during:
            assert response.headers["Retry-After"] == "2"
            assert "locked" in response.json()["detail"]
        assert reads == [200] * len(threads)

        # Every later request succeeds, on every worker: no transaction was left open.
        for round_ in range(3):
            for tid in threads:
                after = httpx.Client(base_url=base)  # fresh connection: any worker
                response = after.post(
                    f"/threads/{tid}/runs/wait",
                    json={
                        "assistant_id": "agent",
                        "input": {"messages": [{"role": "user", "content": f"after {round_}"}]},
                    },
                    timeout=60,
                )
                after.close()
                assert response.status_code == 200, response.text
        for tid in threads:
            state = httpx.get(f"{base}/threads/{tid}/state").json()
            texts = [m["content"] for m in state["values"]["messages"] if m["type"] == "human"]
            assert texts == ["hello", "after 0", "after 1", "after 2"]
        metrics = httpx.get(f"{base}/metrics").text
        assert re.search(r"booking_agent_storage_busy_errors_total\{[^}]*\} [1-9]", metrics)


CODE = re.compile(r"\b[A-Z0-9]{6}\b")


async def test_many_users_race_for_one_slot(tmp_path: Path, backend_env: dict[str, str]) -> None:
    with ServerProcess(tmp_path, workers=3, env=backend_env) as srv:
        users = 12
        day = next_open_day()

        async def user(index: int) -> str:
            client = get_client(url=srv.base_url)
            text = (
                f"I'd like a haircut on {day} at 10:00, my name is User{index}, "
                f"user{index}@example.com"
            )
            values = await client.runs.wait(
                str(uuid.uuid4()),
                "agent",
                input={"messages": [{"role": "user", "content": text}]},
                if_not_exists="create",
            )
            return values["messages"][-1]["content"]

        started = time.perf_counter()
        replies = await asyncio.gather(*(user(i) for i in range(users)))
        assert time.perf_counter() - started < 120
        confirmed = [r for r in replies if "confirm" in r.lower()]
        taken = [r for r in replies if "taken" in r.lower() or "not available" in r.lower()]
        assert len(confirmed) == 1, replies
        assert len(taken) == users - 1, replies

        assert _confirmed_rows(srv, backend_env) == 1


def _confirmed_rows(srv: ServerProcess, backend_env: dict[str, str]) -> int:
    query = "SELECT count(*) FROM appointments WHERE status = 'confirmed'"
    if "DATABASE_URL" in backend_env:
        import psycopg

        with psycopg.connect(backend_env["DATABASE_URL"]) as conn:
            return conn.execute(query).fetchone()[0]
    from service.storage.sqlite.driver import sqlite3

    conn = sqlite3.connect(str(srv.data_dir / "appointments.db"))
    try:
        return conn.execute(query).fetchone()[0]
    finally:
        conn.close()
