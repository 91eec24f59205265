"""Every stream mode of LangGraph Server, the run's `context`, and the thread metadata a
run records, through the official SDK against real workers on both backends."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client

from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(120)

ALL_MODES = [
    "values",
    "updates",
    "messages",
    "messages-tuple",
    "events",
    "debug",
    "custom",
    "checkpoints",
    "tasks",
]


def ask(text: str, message_id: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "human", "content": [{"type": "text", "text": text}]}
    if message_id:
        message["id"] = message_id
    return {"messages": [message]}


def stream(client: Any, thread_id: str | None, text: str, **options: Any) -> list[Any]:
    return list(client.runs.stream(thread_id, "agent", input=ask(text), **options))


def by_event(parts: list[Any]) -> dict[str, list[Any]]:
    events: dict[str, list[Any]] = {}
    for part in parts:
        events.setdefault(part.event, []).append(part.data)
    return events


def test_every_mode_at_once(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    tid = client.threads.create()["thread_id"]
    parts = stream(client, tid, "what services do you offer?", stream_mode=ALL_MODES)
    events = by_event(parts)
    assert parts[0].event == "metadata" and parts[-1].event == "end"
    assert "error" not in events
    expected = {
        "values",
        "updates",
        "messages",
        "messages/metadata",
        "messages/partial",
        "messages/complete",
        "events",
        "debug",
        "custom",
        "checkpoints",
        "tasks",
    }
    assert expected <= set(events), set(events)

    # values: the whole state; updates: by node.
    assert events["values"][-1]["messages"][-1]["type"] == "ai"
    assert {node for update in events["updates"] for node in update} >= {"agent", "tools"}
    # messages-tuple: [chunk, metadata] pairs, the metadata naming the node.
    chunk, metadata = events["messages"][0]
    assert chunk["type"] in ("AIMessageChunk", "ai", "tool") and "langgraph_node" in metadata
    # messages: metadata once per message, partials accumulate the streamed text.
    reply = events["values"][-1]["messages"][-1]
    partials = [data[0] for data in events["messages/partial"] if data[0]["id"] == reply["id"]]
    assert partials and partials[-1]["content"] == reply["content"]
    assert len(partials[0]["content"]) < len(reply["content"])
    assert partials[-1]["type"] == "ai"
    metadata_ids = [next(iter(data)) for data in events["messages/metadata"]]
    assert len(metadata_ids) == len(set(metadata_ids)) and reply["id"] in metadata_ids
    assert events["messages/metadata"][0][metadata_ids[0]]["metadata"]["langgraph_node"]
    # The tool's result is a whole message.
    completes = [data[0] for data in events["messages/complete"]]
    assert any(message["type"] == "tool" for message in completes)
    # events: LangChain's callback events, the chat model's tokens among them.
    kinds = {event["event"] for event in events["events"]}
    assert {"on_chain_start", "on_chat_model_stream", "on_tool_start", "on_chain_end"} <= kinds
    # custom: the tool's progress, from its stream writer.
    assert {"type": "tool_progress", "tool": "list_services", "status": "running"} in events[
        "custom"
    ]
    assert {"type": "tool_progress", "tool": "list_services", "status": "ok"} in events["custom"]
    # tasks: a start and a result for each node.
    assert {"agent", "tools"} <= {task["name"] for task in events["tasks"]}
    assert any("result" in task for task in events["tasks"])
    # checkpoints and debug: checkpoints as the API's refs, the last one the thread's head.
    head = client.threads.get_state(tid)["checkpoint"]
    last = events["checkpoints"][-1]
    assert last["checkpoint"]["checkpoint_id"] == head["checkpoint_id"]
    assert last["checkpoint"]["thread_id"] == tid
    assert last["values"]["messages"][-1]["id"] == reply["id"]
    kinds = {item["type"] for item in events["debug"]}
    assert {"checkpoint", "task", "task_result"} <= kinds
    debug_checkpoint = next(item for item in events["debug"] if item["type"] == "checkpoint")
    assert debug_checkpoint["payload"]["checkpoint"]["thread_id"] == tid


def test_each_mode_alone_sends_only_its_events(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    tid = client.threads.create()["thread_id"]
    names = {
        "messages": {"messages/metadata", "messages/partial", "messages/complete"},
        "messages-tuple": {"messages"},
    }
    for mode in ALL_MODES:
        parts = stream(client, tid, "what services do you offer?", stream_mode=mode)
        sent = {part.event for part in parts} - {"metadata", "end"}
        assert sent and sent <= names.get(mode, {mode}), (mode, sent)


def test_subgraphs_and_agent_chat_ui_body(server: ServerProcess) -> None:
    """agent-chat-ui's own request body (content parts, its message id, subgraphs,
    resumable, continue on disconnect), sent by the SDK and by a plain POST."""
    client = get_sync_client(url=server.base_url)
    tid = client.threads.create()["thread_id"]
    mine = str(uuid.uuid4())
    parts = stream(
        client,
        tid,
        "hola, ¿qué servicios tenéis?",
        stream_mode=["values", "messages-tuple", "custom"],
        stream_subgraphs=True,
        stream_resumable=True,
        on_disconnect="continue",
    )
    events = by_event(parts)
    assert "error" not in events and {"values", "messages", "custom"} <= set(events)
    body = {
        "assistant_id": "agent",
        "input": ask("¿y a qué hora abrís?", mine),
        "stream_mode": ["values", "messages-tuple", "custom"],
        "stream_subgraphs": True,
        "stream_resumable": True,
        "on_disconnect": "continue",
    }
    with httpx.stream("POST", f"{server.base_url}/threads/{tid}/runs/stream", json=body) as reply:
        assert reply.status_code == 200
        text = reply.read().decode()
    assert "event: values" in text and "event: error" not in text
    messages = client.threads.get_state(tid)["values"]["messages"]
    humans = [m for m in messages if m["type"] == "human"]
    assert humans[-1]["id"] == mine and humans[-1]["content"] == "¿y a qué hora abrís?"


def test_join_stream_selects_modes_by_event(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    tid = client.threads.create()["thread_id"]
    run = client.runs.create(
        tid,
        "agent",
        input=ask("what services?"),
        stream_mode=["values", "messages", "custom"],
        stream_resumable=True,
    )
    client.runs.join(tid, run["run_id"])
    joined = list(client.runs.join_stream(tid, run["run_id"], stream_mode="messages"))
    sent = {part.event for part in joined} - {"metadata", "end"}
    assert sent == {"messages/metadata", "messages/partial", "messages/complete"}
    everything = {part.event for part in client.runs.join_stream(tid, run["run_id"])}
    assert {"values", "custom", "messages/partial"} <= everything


def test_bad_stream_modes_are_422_and_run_nothing(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    tid = client.threads.create()["thread_id"]
    url = f"{server.base_url}/threads/{tid}/runs/stream"
    for mode in ["nope", ["values", "tokens"], []]:
        reply = httpx.post(
            url, json={"assistant_id": "agent", "input": ask("hi"), "stream_mode": mode}
        )
        assert reply.status_code == 422 and reply.json()["detail"]
    assert client.runs.list(tid) == []
    assert client.threads.get_state(tid)["values"] == {}


def test_context_reaches_the_graph(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    tid = client.threads.create()["thread_id"]
    values = client.runs.wait(
        tid,
        "agent",
        input=ask("hola"),
        context={"language": "en", "salon_name": "Salón Lucía"},
    )
    reply = values["messages"][-1]["content"]
    assert reply.startswith("Hi, this is Salón Lucía!"), reply
    # Without the context the customer's own language comes back.
    plain = client.runs.wait(tid, "agent", input=ask("hola"))
    assert plain["messages"][-1]["content"].startswith("¡Hola!")
    # The context can require an approval, as configurable does.
    paused = client.runs.wait(
        tid,
        "agent",
        input=ask("haircut on Tuesday at 11, I am Ana, ana@example.com"),
        context={"booking_confirmation": "interrupt"},
    )
    assert paused["__interrupt__"][0]["value"]["action_requests"][0]["name"] == "book_appointment"
    assert client.threads.get(tid)["status"] == "interrupted"


def test_bad_context_is_422_and_writes_nothing(server: ServerProcess) -> None:
    client = get_sync_client(url=server.base_url)
    tid = client.threads.create()["thread_id"]
    url = f"{server.base_url}/threads/{tid}/runs/wait"
    for context in [{"language": "fr"}, {"salon": "x"}, {"salon_name": ""}]:
        reply = httpx.post(
            url, json={"assistant_id": "agent", "input": ask("hi"), "context": context}
        )
        assert reply.status_code == 422, reply.text
        assert "context" in reply.json()["detail"]
    assert client.runs.list(tid) == []
    assert client.threads.get(tid)["metadata"] == {}


async def test_runs_record_graph_and_assistant_in_thread_metadata(server: ServerProcess) -> None:
    async with get_client(url=server.base_url) as client:
        tid = (await client.threads.create(metadata={"customer": "ana"}))["thread_id"]
        await client.runs.wait(tid, "agent", input=ask("hi"))
        thread = await client.threads.get(tid)
        assert thread["metadata"] == {
            "customer": "ana",
            "graph_id": "agent",
            "assistant_id": "agent",
        }
        # agent-chat-ui's thread list.
        found = await client.threads.search(metadata={"graph_id": "agent"}, limit=100)
        assert tid in [item["thread_id"] for item in found]
        item = next(item for item in found if item["thread_id"] == tid)
        assert item["values"]["messages"][-1]["type"] == "ai"
        selected = await client.threads.search(
            metadata={"graph_id": "agent"}, select=["thread_id", "values"], limit=100
        )
        assert set(selected[0]) == {"thread_id", "values"}
        # A thread a run creates, and a background run's thread, carry them too.
        made = str(uuid.uuid4())
        await client.runs.wait(made, "agent", input=ask("hi"), if_not_exists="create")
        assert (await client.threads.get(made))["metadata"]["graph_id"] == "agent"
        queued = (await client.threads.create())["thread_id"]
        run = await client.runs.create(queued, "agent", input=ask("hi"))
        await client.runs.join(queued, run["run_id"])
        assert (await client.threads.get(queued))["metadata"]["assistant_id"] == "agent"
