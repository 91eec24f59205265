"""The access log on real workers: one JSON line per request with its request, thread
and run ids, the client's X-Request-ID kept and sent back; nothing when it is off."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess

pytestmark = [pytest.mark.timeout(120), pytest.mark.backends("sqlite")]


def ask(text: str) -> dict:
    return {"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": text}]}}


def lines(server: ServerProcess) -> list[dict]:
    found = []
    for raw in server.log().splitlines():
        if raw.startswith("{") and '"request_id"' in raw:
            found.append(json.loads(raw))
    return found


def test_one_line_per_request_with_its_ids(tmp_path: Path) -> None:
    with ServerProcess(tmp_path, workers=2, env={"ACCESS_LOG": "true"}) as srv:
        base = srv.base_url
        thread_id = httpx.post(f"{base}/threads", json={}).json()["thread_id"]
        waited = httpx.post(
            f"{base}/threads/{thread_id}/runs/wait",
            json=ask("hello"),
            headers={"X-Request-ID": "shop-42.a_b"},
        )
        assert waited.headers["x-request-id"] == "shop-42.a_b"
        run_id = waited.headers["content-location"].rsplit("/", 1)[1]
        bad = httpx.post(f"{base}/threads/{thread_id}/runs/wait", json={"assistant_id": 1})
        assert bad.status_code == 422
        odd = httpx.get(f"{base}/threads/{thread_id}", headers={"X-Request-ID": "no spaces!"})
        assert (
            odd.headers["x-request-id"] != "no spaces!" and len(odd.headers["x-request-id"]) == 32
        )
        deadline = time.monotonic() + 10
        while len(lines(srv)) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        logged = {entry["request_id"]: entry for entry in lines(srv)}
        run = logged["shop-42.a_b"]
        assert run["method"] == "POST" and run["status"] == 200 and run["bytes"] > 0
        assert run["route"] == "/threads/{thread_id}/runs/wait"
        assert run["path"] == f"/threads/{thread_id}/runs/wait"
        assert run["thread_id"] == thread_id and run["run_id"] == run_id
        assert run["duration_ms"] > 0 and run["worker"] in srv.worker_pids()
        refused = [e for e in logged.values() if e["status"] == 422]
        assert refused and refused[0]["thread_id"] == thread_id and refused[0]["run_id"] is None
        assert logged[odd.headers["x-request-id"]]["route"] == "/threads/{thread_id}"


def test_off_by_default(tmp_path: Path) -> None:
    with ServerProcess(tmp_path, workers=1) as srv:
        response = httpx.post(f"{srv.base_url}/threads", json={})
        assert "x-request-id" not in response.headers
        assert lines(srv) == []
