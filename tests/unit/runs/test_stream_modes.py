"""The API's stream modes from the graph's chunks: event names, accumulation, refs."""

from __future__ import annotations

from langchain_core.messages import AIMessageChunk, ToolMessage

from service.runs.stream_modes import StreamTranslator, event_mode, graph_modes


def test_graph_modes_map_api_modes() -> None:
    modes = ["messages", "messages-tuple", "events", "values", "custom"]
    assert graph_modes(modes) == ["messages", "values", "custom"]
    assert graph_modes(["events"]) == []


def test_event_names_belong_to_their_mode() -> None:
    assert event_mode("messages/partial") == "messages"
    assert event_mode("messages/metadata|sub:1") == "messages"
    assert event_mode("messages") == "messages-tuple"
    assert event_mode("values|parent:abc|child:def") == "values"
    assert event_mode("custom") == "custom"


def test_messages_accumulate_and_name_their_metadata_once() -> None:
    translator = StreamTranslator(["messages"])
    meta = {"langgraph_node": "agent"}
    out = []
    for token in ["Hel", "lo", "!"]:
        out += translator.chunk((), "messages", (AIMessageChunk(content=token, id="m1"), meta))
    tool = ToolMessage("ok", tool_call_id="c1", id="t1")
    out += translator.chunk((), "messages", (tool, meta))
    names = [event for event, _ in out]
    assert names == [
        "messages/metadata",
        "messages/partial",
        "messages/partial",
        "messages/partial",
        "messages/metadata",
        "messages/complete",
    ]
    assert out[0][1] == {"m1": {"metadata": meta}}
    assert [data[0].content for event, data in out if event == "messages/partial"] == [
        "Hel",
        "Hello",
        "Hello!",
    ]
    # A partial is a message, not a chunk, as the SDKs read it.
    assert out[3][1][0].type == "ai"
    assert out[5][1] == [tool]


def test_tuples_and_whole_messages_together_and_in_subgraphs() -> None:
    translator = StreamTranslator(["messages", "messages-tuple"])
    item = (AIMessageChunk(content="x", id="m1"), {})
    names = [event for event, _ in translator.chunk(("sub:1",), "messages", item)]
    assert names == ["messages|sub:1", "messages/metadata|sub:1", "messages/partial|sub:1"]


def test_checkpoints_carry_api_refs() -> None:
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c2"}}
    parent = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c1"}}
    task_state = {"configurable": {"thread_id": "t", "checkpoint_ns": "sub:1"}}
    payload = {
        "config": config,
        "parent_config": parent,
        "values": {},
        "tasks": [{"id": "1", "name": "agent", "state": task_state}, {"id": "2", "name": "x"}],
    }
    [(event, data)] = StreamTranslator(["checkpoints"]).chunk((), "checkpoints", payload)
    assert event == "checkpoints"
    assert data["checkpoint"]["checkpoint_id"] == "c2"
    assert data["parent_checkpoint"]["checkpoint_id"] == "c1"
    assert data["tasks"][0]["checkpoint"]["checkpoint_ns"] == "sub:1"
    assert "state" not in data["tasks"][0] and data["tasks"][1] == {"id": "2", "name": "x"}
    debug = {"type": "checkpoint", "step": 1, "payload": payload}
    [(event, data)] = StreamTranslator(["debug"]).chunk((), "debug", debug)
    assert event == "debug" and data["payload"]["checkpoint"]["checkpoint_id"] == "c2"
    assert data["step"] == 1
