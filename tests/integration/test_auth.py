"""API keys and thread ownership on a real multi-worker server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_sync_client

from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(120)

ALICE = "alice-key-0123456789abcdef"
BOB = "bob-key-0123456789abcdef"
METRICS = "metrics-token-0123456789"
MSG = {"messages": [{"role": "user", "content": "hola"}]}


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    keys = tmp_path_factory.mktemp("secrets") / "api-keys"
    keys.write_text(f"# owner:key\nalice:{ALICE}\n\nbob:{BOB}\n")
    env = {"AUTH_ENABLED": "true", "API_KEYS_FILE": str(keys), "METRICS_TOKEN": METRICS}
    with ServerProcess(tmp_path_factory.mktemp("auth"), workers=2, env=env) as proc:
        yield proc


def endpoints(thread_id: str) -> list[tuple[str, str, dict | list | None]]:
    return [
        ("GET", f"/threads/{thread_id}", None),
        ("GET", f"/threads/{thread_id}/state", None),
        ("POST", f"/threads/{thread_id}/history", {"limit": 5}),
        ("POST", f"/threads/{thread_id}/runs/wait", {"assistant_id": "agent", "input": MSG}),
        ("POST", f"/threads/{thread_id}/runs/stream", {"assistant_id": "agent", "input": MSG}),
        ("PATCH", f"/threads/{thread_id}", {"metadata": {"owner": "bob", "topic": "taken"}}),
        ("POST", f"/threads/{thread_id}/copy", None),
        ("POST", f"/threads/{thread_id}/state", {"values": {"tool_retries": 0}}),
        ("GET", f"/threads/{thread_id}/state/{thread_id}", None),
        ("GET", f"/threads/{thread_id}/runs", None),
        ("GET", f"/threads/{thread_id}/runs/{thread_id}", None),
        ("DELETE", f"/threads/{thread_id}/runs/{thread_id}", None),
        ("POST", f"/threads/{thread_id}/runs", {"assistant_id": "agent", "input": MSG}),
        ("GET", f"/threads/{thread_id}/runs/{thread_id}/join", None),
        ("POST", f"/threads/{thread_id}/runs/{thread_id}/cancel", None),
        ("POST", "/runs/batch", [{"assistant_id": "agent", "input": MSG, "thread_id": thread_id}]),
        ("POST", "/runs/cancel", {"thread_id": thread_id}),
        (
            "POST",
            f"/threads/{thread_id}/runs/crons",
            {"assistant_id": "agent", "schedule": "0 9 * * *", "input": MSG},
        ),
        ("POST", "/threads/prune", {"thread_ids": [thread_id], "strategy": "delete"}),
        ("DELETE", f"/threads/{thread_id}", None),
    ]


def call(
    base: str, method: str, path: str, body: dict | list | None, key: str | None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, f"{base}{path}", json=body, headers=headers, timeout=30)


def test_missing_or_wrong_key_is_401(secured: ServerProcess) -> None:
    base = secured.base_url
    assert httpx.get(f"{base}/ok").status_code == 200
    assert httpx.get(f"{base}/readyz").status_code == 200
    others = [
        ("GET", "/info", None),
        ("GET", "/assistants/agent", None),
        ("POST", "/assistants/search", {}),
        ("POST", "/threads", {}),
        ("POST", "/threads/search", {}),
        *endpoints("some-thread"),
    ]
    for method, path, body in others:
        for key in (None, "wrong-key-0123456789abcdef"):
            response = call(base, method, path, body, key)
            assert response.status_code == 401, (method, path, key, response.text)
            assert response.json()["detail"] == "missing or invalid API key"
            assert response.headers["WWW-Authenticate"] == "Bearer"


def test_metrics_needs_token_or_key(secured: ServerProcess) -> None:
    base = secured.base_url
    assert httpx.get(f"{base}/metrics").status_code == 401
    assert call(base, "GET", "/metrics", None, METRICS).status_code == 200
    assert call(base, "GET", "/metrics", None, ALICE).status_code == 200


def test_another_owners_thread_is_404_everywhere(secured: ServerProcess) -> None:
    base = secured.base_url
    alice = get_sync_client(url=base, api_key=ALICE)
    thread = alice.threads.create(metadata={"topic": "mine"})
    tid = thread["thread_id"]
    assert thread["metadata"]["owner"] == "alice"
    alice.runs.wait(tid, "agent", input=MSG)

    for method, path, body in endpoints(tid):
        response = call(base, method, path, body, BOB)
        assert response.status_code == 404, (method, path, response.text)
        assert "not found" in response.json()["detail"]
    # Nothing changed for alice: still there, one turn, not deleted or pruned.
    state = alice.threads.get_state(tid)
    assert [m["content"] for m in state["values"]["messages"] if m["type"] == "human"] == ["hola"]
    assert alice.threads.get(tid)["metadata"] == {
        "topic": "mine",
        "owner": "alice",
        "graph_id": "agent",
        "assistant_id": "agent",
    }
    assert alice.threads.count(metadata={"topic": "mine"}) >= 1
    # Bob cannot take over alice's id by creating or running on it.
    assert (
        call(
            base, "POST", "/threads", {"thread_id": tid, "if_exists": "do_nothing"}, BOB
        ).status_code
        == 409
    )
    run = {"assistant_id": "agent", "input": MSG, "if_not_exists": "create"}
    assert call(base, "POST", f"/threads/{tid}/runs/wait", run, BOB).status_code == 404
    assert call(base, "POST", f"/threads/{tid}/runs", run, BOB).status_code == 404
    assert [r["status"] for r in alice.runs.list(tid)] == ["success"]


def test_another_owners_cron_is_404(secured: ServerProcess) -> None:
    base = secured.base_url
    alice = get_sync_client(url=base, api_key=ALICE)
    bob = get_sync_client(url=base, api_key=BOB)
    cron = alice.crons.create("agent", schedule="0 9 * * *", input=MSG, metadata={"who": "a"})
    assert cron["user_id"] == "alice"
    path = f"/runs/crons/{cron['cron_id']}"
    assert call(base, "PATCH", path, {"enabled": False}, BOB).status_code == 404
    assert call(base, "DELETE", path, None, BOB).status_code == 404
    assert bob.crons.search(metadata={"who": "a"}) == []
    assert bob.crons.count() == 0
    assert [c["cron_id"] for c in alice.crons.search(metadata={"who": "a"})] == [cron["cron_id"]]
    alice.crons.delete(cron["cron_id"])


def test_cancels_by_filter_reach_only_own_runs(secured: ServerProcess) -> None:
    base = secured.base_url
    alice = get_sync_client(url=base, api_key=ALICE)
    bob = get_sync_client(url=base, api_key=BOB)
    tid = alice.threads.create()["thread_id"]
    runs = [alice.runs.create(tid, "agent", input=MSG) for _ in range(3)]
    bob.runs.cancel_many(status="all")
    bob.runs.cancel_many(run_ids=[run["run_id"] for run in runs])
    alice.runs.join(tid, runs[-1]["run_id"])
    assert {r["status"] for r in alice.runs.list(tid)} == {"success"}


def test_search_lists_only_own_threads(secured: ServerProcess) -> None:
    base = secured.base_url
    alice = get_sync_client(url=base, api_key=ALICE)
    bob = get_sync_client(url=base, api_key=BOB)
    a = alice.threads.create(metadata={"color": "red"})["thread_id"]
    b = bob.threads.create(metadata={"color": "red"})["thread_id"]
    assert [t["thread_id"] for t in alice.threads.search(metadata={"color": "red"})] == [a]
    assert [t["thread_id"] for t in bob.threads.search(metadata={"color": "red"})] == [b]
    spoofed = bob.threads.search(metadata={"owner": "alice"})
    assert all(t["metadata"]["owner"] == "bob" for t in spoofed)
    assert a not in {t["thread_id"] for t in bob.threads.search(limit=1000)}
    assert alice.threads.count(metadata={"color": "red"}) == 1
    assert bob.threads.count(metadata={"color": "red"}) == 1
    assert bob.threads.search(ids=[a]) == []
    # An owner cannot give a thread away by patching the owner key.
    patched = alice.threads.update(a, metadata={"owner": "bob", "color": "blue"})
    assert patched["metadata"] == {"color": "blue", "owner": "alice"}


def test_the_schema_needs_a_key_and_the_docs_are_off(secured: ServerProcess) -> None:
    base = secured.base_url
    for key in (None, "wrong-key-0123456789abcdef"):
        assert call(base, "GET", "/openapi.json", None, key).status_code == 401
    schema = call(base, "GET", "/openapi.json", None, ALICE)
    assert schema.status_code == 200 and "/threads" in schema.json()["paths"]
    for path in ("/docs", "/redoc"):
        assert call(base, "GET", path, None, None).status_code == 404
        assert call(base, "GET", path, None, ALICE).status_code == 404


def test_api_docs_public_opens_the_schema_and_docs(tmp_path: Path) -> None:
    keys = f"alice:{ALICE}"
    env = {"AUTH_ENABLED": "true", "API_KEYS": keys, "API_DOCS_PUBLIC": "true"}
    with ServerProcess(tmp_path, workers=1, env=env) as srv:
        for path in ("/openapi.json", "/docs", "/redoc"):
            assert httpx.get(f"{srv.base_url}{path}").status_code == 200, path
        assert httpx.post(f"{srv.base_url}/threads", json={}).status_code == 401
