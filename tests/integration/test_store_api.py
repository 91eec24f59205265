"""The Store API through the official Python SDK, against real workers on both backends:
items shared by every worker, search, namespaces, TTLs swept by the maintenance leader,
owners kept apart, bad input refused with nothing written, and the agent's own use of
it: a returning customer greeted by name in a new thread."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient

from tests.support.server import ServerProcess
from tests.support.workers import only

pytestmark = pytest.mark.timeout(180)

ALICE = "alice-key-0123456789abcdef"
BOB = "bob-key-0123456789abcdefgh"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, backend_env: dict[str, str]
) -> Iterator[ServerProcess]:
    """Two workers; the maintenance leader sweeps every second (store TTLs)."""
    env = {**backend_env, "MAINTENANCE_INTERVAL_S": "1"}
    with ServerProcess(tmp_path_factory.mktemp("store"), workers=2, env=env) as proc:
        yield proc


def say(client: SyncLangGraphClient, thread_id: str, text: str) -> str:
    values = client.runs.wait(
        thread_id, "agent", input={"messages": [{"role": "user", "content": text}]}
    )
    return values["messages"][-1]["content"]


def test_items_are_shared_by_every_worker(server: ServerProcess) -> None:
    first, second = server.worker_pids()[:2]
    with only(server, first) as client:
        client.store.put_item(["notes", "salon"], "hours", {"summer": "09:00-14:00"})
        client.store.put_item(["notes", "salon"], "parking", {"where": "behind the salon"})
        client.store.put_item(["notes", "staff"], "eva", {"role": "colorist", "days": 3})
    with only(server, second) as client:
        item = client.store.get_item(["notes", "salon"], "hours")
        assert item["namespace"] == ["notes", "salon"] and item["key"] == "hours"
        assert item["value"] == {"summer": "09:00-14:00"}
        assert item["created_at"] and item["updated_at"]
        found = client.store.search_items(["notes"], limit=10)["items"]
        assert {tuple(i["namespace"]) for i in found} == {("notes", "salon"), ("notes", "staff")}
        assert sorted(i["key"] for i in found) == ["eva", "hours", "parking"]
        staff = client.store.search_items(["notes"], filter={"role": "colorist"})["items"]
        assert [i["key"] for i in staff] == ["eva"]
        assert len(client.store.search_items(["notes"], limit=2, offset=2)["items"]) == 1
        namespaces = client.store.list_namespaces(prefix=["notes"])["namespaces"]
        assert sorted(namespaces) == [["notes", "salon"], ["notes", "staff"]]
        assert client.store.list_namespaces(prefix=["notes"], max_depth=1)["namespaces"] == [
            ["notes"]
        ]
        assert client.store.list_namespaces(suffix=["staff"])["namespaces"] == [["notes", "staff"]]
        client.store.put_item(["notes", "salon"], "hours", {"summer": "10:00-14:00"})
        client.store.delete_item(["notes", "salon"], "parking")
    with only(server, first) as client:
        assert (
            client.store.get_item(["notes", "salon"], "hours")["value"]["summer"] == "10:00-14:00"
        )
        assert client.store.get_item(["notes", "salon"], "parking") is None


def test_an_item_with_a_ttl_is_swept_after_it(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    client.store.put_item(["ttl"], "short", {"v": 1}, ttl=0.03)  # 1.8 s
    client.store.put_item(["ttl"], "kept", {"v": 2})
    assert client.store.get_item(["ttl"], "short", refresh_ttl=False)["value"] == {"v": 1}
    deadline = time.monotonic() + 20
    while client.store.get_item(["ttl"], "short", refresh_ttl=False) is not None:
        assert time.monotonic() < deadline, "the expired item was never swept"
        time.sleep(0.5)
    assert client.store.get_item(["ttl"], "kept")["value"] == {"v": 2}
    metrics = httpx.get(f"{server.base_url}/metrics").text
    assert 'booking_agent_maintenance_deleted_total{kind="store_items"}' in metrics


@pytest.mark.parametrize(
    ("method", "path", "body", "params"),
    [
        ("PUT", "/store/items", {"namespace": ["a.b"], "key": "k", "value": {}}, None),
        ("PUT", "/store/items", {"namespace": [], "key": "k", "value": {}}, None),
        ("PUT", "/store/items", {"namespace": ["bad"], "key": "", "value": {}}, None),
        ("PUT", "/store/items", {"namespace": ["bad"], "key": "k", "value": [1]}, None),
        ("PUT", "/store/items", {"namespace": ["bad"], "key": "k", "value": {}, "ttl": -1}, None),
        ("PUT", "/store/items", {"namespace": ["bad"], "key": "k", "value": {}, "x": 1}, None),
        (
            "PUT",
            "/store/items",
            {"namespace": ["bad"], "key": "k", "value": {}, "index": ["t"]},
            None,
        ),
        ("PUT", "/store/items", {"namespace": ["bad"] * 11, "key": "k", "value": {}}, None),
        (
            "PUT",
            "/store/items",
            {"namespace": ["bad"], "key": "k", "value": {"a": [[[[[[[[[1]]]]]]]]]}},
            None,
        ),
        ("GET", "/store/items", None, {"namespace": "bad..x", "key": "k"}),
        ("GET", "/store/items", None, {"namespace": "bad"}),
        ("DELETE", "/store/items", {"namespace": ["bad"]}, None),
        ("POST", "/store/items/search", {"namespace_prefix": ["bad"], "query": "hair"}, None),
        ("POST", "/store/items/search", {"namespace_prefix": ["bad"], "limit": 0}, None),
        ("POST", "/store/namespaces", {"max_depth": 0}, None),
        ("PUT", "/store/items", {"namespace": ["langgraph"], "key": "k", "value": {}}, None),
        ("POST", "/store/items/search", {"namespace_prefix": [], "filter": {"a b": 1}}, None),
        ("POST", "/store/items/search", {"namespace_prefix": [], "filter": {"a": [1]}}, None),
        (
            "POST",
            "/store/items/search",
            {"namespace_prefix": [], "filter": {"a": {"$in": 1}}},
            None,
        ),
    ],
)
def test_bad_input_is_a_422_and_writes_nothing(
    server: ServerProcess, method: str, path: str, body: dict | None, params: dict | None
) -> None:
    response = httpx.request(method, f"{server.base_url}{path}", json=body, params=params)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]
    client = get_sync_client(url=server.base_url)
    assert client.store.search_items(["bad"])["items"] == []


def test_a_returning_customer_is_greeted_by_name_in_a_new_thread(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    first = client.threads.create()["thread_id"]
    reply = say(client, first, "Beard trim tomorrow at 11:00, I'm Luis, luis@example.com")
    assert "confirmation code" in reply
    profile = client.store.get_item(["customers"], "luis@example.com")["value"]
    assert profile["name"] == "Luis" and profile["services"] == {"beard trim": 1}
    # The same turn replayed (a resume or crash recovery) counts once: the code is kept.
    assert len(profile["codes"]) == 1

    later = get_sync_client(url=server.base_url).threads.create()["thread_id"]
    greeting = say(client, later, "Hello, it's luis@example.com")
    assert greeting.startswith("Welcome back, Luis!") and "beard trim" in greeting
    booked = say(client, later, "the day after tomorrow at 12:00")
    assert "beard trim" in booked and "Luis" in booked and "confirmation code" in booked
    again = client.store.get_item(["customers"], "luis@example.com")["value"]
    assert again["services"] == {"beard trim": 2} and len(again["codes"]) == 2

    stranger = client.threads.create()["thread_id"]
    assert "Welcome back" not in say(client, stranger, "Hi, it's nobody@example.com")


def test_each_owner_has_a_store_of_their_own(tmp_path: Path) -> None:
    env = {"AUTH_ENABLED": "true", "API_KEYS": f"alice:{ALICE},bob:{BOB}"}
    with ServerProcess(tmp_path, workers=2, env=env) as srv:
        alice = get_sync_client(url=srv.base_url, api_key=ALICE)
        bob = get_sync_client(url=srv.base_url, api_key=BOB)
        alice.store.put_item(["customers"], "ana@example.com", {"name": "Ana"})
        assert alice.store.get_item(["customers"], "ana@example.com")["value"] == {"name": "Ana"}
        assert bob.store.get_item(["customers"], "ana@example.com") is None
        assert bob.store.search_items([])["items"] == []
        assert bob.store.list_namespaces()["namespaces"] == []
        assert alice.store.list_namespaces()["namespaces"] == [["customers"]]
        listed = alice.store.search_items([])["items"]
        assert [item["namespace"] for item in listed] == [["customers"]]
        bob.store.delete_item(["customers"], "ana@example.com")  # his own: nothing there
        assert alice.store.get_item(["customers"], "ana@example.com") is not None
        # The agent's memory is the owner's too: Bob's customers are not Alice's.
        thread = alice.threads.create()["thread_id"]
        say(alice, thread, "Haircut tomorrow at 15:00, I'm Marta, marta@example.com")
        assert alice.store.get_item(["customers"], "marta@example.com")["value"]["name"] == "Marta"
        assert bob.store.get_item(["customers"], "marta@example.com") is None
        bobs = bob.threads.create()["thread_id"]
        assert "Welcome back" not in say(bob, bobs, "Hi, it's marta@example.com")
        assert (
            httpx.get(
                f"{srv.base_url}/store/items", params={"namespace": "x", "key": "k"}
            ).status_code
            == 401
        )
