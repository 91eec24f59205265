"""The benchmark-only stock backend serves a real conversation across workers."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.server import ServerProcess

TURNS = (
    "I'd like a haircut tomorrow at 11, my name is Bob, bob@example.com",
    "Thanks!",
)


def test_stock_backend_keeps_every_turn(tmp_path: Path) -> None:
    env = {"CHECKPOINTER": "sqlite-stock"}
    with ServerProcess(tmp_path, workers=2, env=env) as server:
        client = httpx.Client(base_url=server.base_url, timeout=30)
        assert client.get("/readyz").json()["backend"] == "sqlite-stock"
        for sent, text in enumerate(TURNS, 1):
            response = client.post(
                "/threads/stock-1/runs/wait",
                json={
                    "assistant_id": "agent",
                    "input": {"messages": [{"role": "user", "content": text}]},
                    "if_not_exists": "create",
                },
            )
            assert response.status_code == 200, response.text
            state = client.get("/threads/stock-1/state").json()
            humans = [m for m in state["values"]["messages"] if m["type"] == "human"]
            assert len(humans) == sent
        assert client.get("/threads/stock-1").json()["status"] == "idle"
        history = client.post("/threads/stock-1/history", json={"limit": 50}).json()
        assert len(history) == len(TURNS)  # durability=exit: one checkpoint per turn, all kept
        metrics = client.get("/metrics").text
        assert 'booking_agent_storage_write_transactions_total{backend="sqlite-stock"}' in metrics
