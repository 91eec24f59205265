"""Assistant introspection through the official SDK (sync and async): the graph, its
schemas and subgraphs, search by name, count; bad parameters are 422."""

from __future__ import annotations

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client

from tests.support.server import ServerProcess

pytestmark = [pytest.mark.timeout(120), pytest.mark.backends("sqlite")]


def test_graph_drawing(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    graph = client.assistants.get_graph("agent")
    nodes = {node["id"] for node in graph["nodes"]}
    assert nodes == {"__start__", "agent", "tools", "retry_handler", "approval", "__end__"}
    edges = {(edge["source"], edge["target"]) for edge in graph["edges"]}
    assert {("__start__", "agent"), ("tools", "retry_handler"), ("agent", "approval")} <= edges
    tools = next(node for node in graph["nodes"] if node["id"] == "tools")
    assert "book_appointment" in tools["metadata"]["__tools"]
    # No subgraphs: xray draws the same graph.
    assert client.assistants.get_graph("agent", xray=True) == graph
    assert client.assistants.get_graph("agent", xray=2) == graph


def test_schemas_and_subgraphs(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    schemas = client.assistants.get_schemas("agent")
    assert schemas["graph_id"] == "agent"
    assert "messages" in schemas["input_schema"]["properties"]
    assert "messages" in schemas["output_schema"]["properties"]
    assert {"messages", "tool_retries"} <= set(schemas["state_schema"]["properties"])
    context = schemas["context_schema"]["properties"]
    assert {"language", "salon_name", "booking_confirmation"} == set(context)
    assert schemas["config_schema"]["type"] == "object"
    assert client.assistants.get_subgraphs("agent") == {}
    assert client.assistants.get_subgraphs("agent", namespace="tools", recurse=True) == {}


async def test_search_and_count(server: ServerProcess) -> None:
    async with get_client(url=server.base_url) as client:
        assert [a["assistant_id"] for a in await client.assistants.search(name="AGE")] == ["agent"]
        assert await client.assistants.search(name="salon") == []
        assert await client.assistants.search(graph_id="other") == []
        assert await client.assistants.count() == 1
        assert await client.assistants.count(name="gen") == 1
        assert await client.assistants.count(metadata={"created_by": "user"}) == 0
        picked = await client.assistants.search(select=["assistant_id", "name"])
        assert picked == [{"assistant_id": "agent", "name": "agent"}]
        page = await client.assistants.search(limit=1, response_format="object")
        assert page["next"] is None and len(page["assistants"]) == 1


def test_bad_parameters_are_422_unknown_assistant_404(server: ServerProcess) -> None:
    base = server.base_url
    assert httpx.get(f"{base}/assistants/agent/graph", params={"xray": "deep"}).status_code == 422
    assert httpx.get(f"{base}/assistants/agent/graph", params={"xray": "99"}).status_code == 422
    for path in ("graph", "schemas", "subgraphs"):
        reply = httpx.get(f"{base}/assistants/nope/{path}")
        assert reply.status_code == 404 and "nope" in reply.json()["detail"]
    bad = httpx.post(f"{base}/assistants/search", json={"select": ["password"]})
    assert bad.status_code == 422 and bad.json()["detail"]
    assert httpx.post(f"{base}/assistants/count", json={"limit": 3}).status_code == 422
