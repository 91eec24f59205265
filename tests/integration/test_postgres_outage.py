"""A PostgreSQL outage: clean 503s with Retry-After, then recovery without a restart."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.timeout(120), pytest.mark.backends("postgres")]


def turn(base: str, thread_id: str, text: str) -> httpx.Response:
    with httpx.Client(base_url=base) as fresh:  # a new connection: any worker
        return fresh.post(
            f"/threads/{thread_id}/runs/wait",
            json={
                "assistant_id": "agent",
                "input": {"messages": [{"role": "user", "content": text}]},
                "if_not_exists": "create",
            },
            timeout=60,
        )


def test_outage_gives_503_and_the_service_recovers_by_itself(
    tmp_path: Path, backend_env: dict[str, str]
) -> None:
    url = backend_env["DATABASE_URL"]
    proxy = TcpProxy(int(url.rsplit(":", 1)[1].split("/")[0])).start()
    env = {
        **backend_env,
        "DATABASE_URL": proxy.url(url),
        "POSTGRES_POOL_TIMEOUT_S": "1",
        "BUSY_RETRY_AFTER_S": "2",
    }
    try:
        with ServerProcess(tmp_path, workers=2, env=env) as srv:
            tid = str(uuid.uuid4())
            assert turn(srv.base_url, tid, "before").status_code == 200

            proxy.cut()
            during = [turn(srv.base_url, tid, "during") for _ in range(4)]
            assert [r.status_code for r in during] == [503] * 4
            for response in during:
                assert response.headers["Retry-After"] == "2"
                assert "unavailable" in response.json()["detail"]
            assert httpx.get(f"{srv.base_url}/readyz", timeout=10).status_code == 503
            assert httpx.get(f"{srv.base_url}/threads/{tid}", timeout=10).status_code == 503

            proxy.restore()
            restored = time.monotonic()
            answered, streak = [], 0
            while streak < 6:  # every worker serves again (new connections), no restart
                assert time.monotonic() - restored < 20, "the service did not recover"
                text = f"after {len(answered)}"
                response = turn(srv.base_url, tid, text)
                assert response.status_code in (200, 503), response.text
                streak = streak + 1 if response.status_code == 200 else 0
                if response.status_code == 200:
                    answered.append(text)
                else:
                    time.sleep(0.2)
            print(f"recovered {time.monotonic() - restored:.1f} s after the database came back")
            # A pooled connection broken by the outage is found and replaced on first use,
            # with a 503 + Retry-After for that one request: read until the answer is 200.
            for _ in range(20):
                read = httpx.get(f"{srv.base_url}/threads/{tid}/state", timeout=10)
                if read.status_code != 503:
                    break
                time.sleep(0.2)
            assert read.status_code == 200, read.text
            state = read.json()
            texts = [m["content"] for m in state["values"]["messages"] if m["type"] == "human"]
            assert texts == ["before", *answered]
    finally:
        proxy.cut()
