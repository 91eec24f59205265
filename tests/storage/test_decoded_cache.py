"""The per-worker decoded-checkpoint cache: never stale, never shared, bounded.

Two `SqliteCheckpointer`s on one file stand for two workers.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from prometheus_client import REGISTRY

from service.identity_memo import IdentityMemo
from service.settings import Settings
from service.storage.sqlite.decoded_cache import DecodedCheckpointCache
from service.storage.sqlite.saver import SqliteCheckpointer
from service.storage.sqlite.schema import init_database
from service.storage.sqlite.serde import MessageMemoSerializer


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def echo(state: State) -> dict[str, Any]:
    return {"messages": [AIMessage(f"echo {len(state['messages'])}")]}


def compiled(saver: SqliteCheckpointer) -> Any:
    graph = StateGraph(State)
    graph.add_node("echo", echo)
    graph.add_edge(START, "echo")
    return graph.compile(checkpointer=saver)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[SqliteCheckpointer, SqliteCheckpointer]]:
    settings = Settings(_env_file=None)
    path = tmp_path / "checkpoints.db"
    init_database(path, settings)
    first, second = SqliteCheckpointer(path, settings), SqliteCheckpointer(path, settings)
    yield first, second
    first.close()
    second.close()


def cache_reads(result: str) -> float:
    value = REGISTRY.get_sample_value(
        "booking_agent_checkpoint_cache_reads_total", {"backend": "sqlite", "result": result}
    )
    return value or 0.0


def config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


async def test_turns_alternating_between_workers_keep_the_whole_conversation(
    workers: tuple[SqliteCheckpointer, SqliteCheckpointer],
) -> None:
    graphs = [compiled(saver) for saver in workers]
    hits_before = cache_reads("hit")
    for turn in range(12):
        # Two turns on one worker, then two on the other: each worker's copy goes stale.
        graph = graphs[(turn // 2) % 2]
        await graph.ainvoke({"messages": [HumanMessage(f"turn {turn}")]}, config("t"))
    for graph in graphs:
        messages = (await graph.aget_state(config("t"))).values["messages"]
        assert [m.content for m in messages if isinstance(m, HumanMessage)] == [
            f"turn {turn}" for turn in range(12)
        ]
        assert messages[-1].content == "echo 23"
    assert cache_reads("hit") > hits_before  # the second turn on a worker used its copy


@pytest.mark.parametrize("durability", ["exit", "async", "sync"])
async def test_what_a_worker_serves_is_what_the_database_holds(
    workers: tuple[SqliteCheckpointer, SqliteCheckpointer], durability: str
) -> None:
    """Message ids are assigned by the reducer in place, after a node's output may
    already have been serialized as a pending write: nothing may keep the id-less form."""
    first, second = workers
    graph = compiled(first)
    for i in range(3):
        await graph.ainvoke(
            {"messages": [HumanMessage(f"turn {i}")]}, config("t"), durability=durability
        )
    served = (await graph.aget_state(config("t"))).values["messages"]
    stored = (await compiled(second).aget_state(config("t"))).values["messages"]
    assert all(m.id for m in stored)
    assert [(m.id, m.content) for m in served] == [(m.id, m.content) for m in stored]
    assert [m.model_dump() for m in served] == [m.model_dump() for m in stored]


async def test_a_read_from_the_cache_equals_a_fresh_decode_and_is_private(
    workers: tuple[SqliteCheckpointer, SqliteCheckpointer],
) -> None:
    writer, other = workers
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {
        "messages": [HumanMessage("hola", id="h1"), AIMessage("¡Hola!", id="a1")],
        "seen": {"agent", "tools"},
        "nested": {"counts": [1, 2, (3, 4)]},
    }
    checkpoint["channel_versions"] = {"messages": 1, "seen": 1, "nested": 1}
    writer.put(
        config("t") | {"configurable": {"thread_id": "t", "checkpoint_ns": ""}},
        checkpoint,
        {"source": "input", "step": 0},
        {},
    )

    cached = writer.get_tuple(config("t"))
    decoded = other.get_tuple(config("t"))
    assert cached is not None and decoded is not None
    assert cached.checkpoint == decoded.checkpoint
    assert cached.metadata == decoded.metadata

    # A run that updates containers in place must not change what the next run reads.
    cached.checkpoint["channel_values"]["messages"].append(HumanMessage("extra"))
    cached.checkpoint["channel_values"]["seen"].add("intruder")
    cached.checkpoint["channel_values"]["nested"]["counts"].append(5)
    cached.checkpoint["channel_versions"]["messages"] = 99
    again = writer.get_tuple(config("t"))
    assert again is not None
    assert again.checkpoint == decoded.checkpoint


async def test_another_workers_newer_checkpoint_is_read_not_the_cached_one(
    workers: tuple[SqliteCheckpointer, SqliteCheckpointer],
) -> None:
    first, second = workers
    graph_one, graph_two = compiled(first), compiled(second)
    await graph_one.ainvoke({"messages": [HumanMessage("one")]}, config("t"))
    assert first.decoded.known_id("t", "") is not None
    await graph_two.ainvoke({"messages": [HumanMessage("two")]}, config("t"))
    state = await graph_one.aget_state(config("t"))
    assert [m.content for m in state.values["messages"]] == ["one", "echo 1", "two", "echo 3"]

    await second.adelete_thread("t")
    assert await first.aget_tuple(config("t")) is None


@dataclasses.dataclass
class Basket:
    items: list[str]


async def test_a_checkpoint_with_other_objects_is_decoded_every_time(
    workers: tuple[SqliteCheckpointer, SqliteCheckpointer],
) -> None:
    saver, _ = workers
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"basket": Basket(["a"])}
    checkpoint["channel_versions"] = {"basket": 1}
    saver.put({"configurable": {"thread_id": "t", "checkpoint_ns": ""}}, checkpoint, {}, {})
    assert saver.decoded.known_id("t", "") is None
    first, second = saver.get_tuple(config("t")), saver.get_tuple(config("t"))
    assert first is not None and second is not None
    assert first.checkpoint["channel_values"]["basket"] == Basket(["a"])
    assert (
        first.checkpoint["channel_values"]["basket"]
        is not (second.checkpoint["channel_values"]["basket"])
    )


def test_the_cache_is_bounded_by_stored_bytes_least_recently_used_first() -> None:
    cache = DecodedCheckpointCache(max_bytes=100, backend="test")

    def checkpoint(checkpoint_id: str) -> Any:
        return {**empty_checkpoint(), "id": checkpoint_id}

    cache.put("a", "", checkpoint("1"), 40)
    cache.put("b", "", checkpoint("1"), 40)
    assert cache.get("a", "", "1", 40) is not None  # "a" is now the most recent
    cache.put("c", "", checkpoint("1"), 40)
    assert cache.known_id("b", "") is None
    assert cache.known_id("a", "") == "1" and cache.known_id("c", "") == "1"
    assert cache.get("a", "", "1", 41) is None  # same id, other size: not trusted
    cache.put("d", "", checkpoint("1"), 101)  # larger than the whole budget
    assert cache.known_id("d", "") is None
    assert DecodedCheckpointCache(max_bytes=0, backend="test").enabled is False


def test_identity_memo_computes_once_per_live_object_and_forgets_dead_ones() -> None:
    calls: list[str] = []
    memo: IdentityMemo[str] = IdentityMemo(
        lambda m: calls.append(m.content) or f"{m.content.upper()} {m.id}", version=lambda m: m.id
    )
    message = HumanMessage("hola")
    assert memo(message) == memo(message) == "HOLA None"
    assert calls == ["hola"]
    message.id = "m1"  # what add_messages does to a message without an id
    assert memo(message) == "HOLA m1"
    assert len(memo) == 1
    del message
    gc.collect()
    assert len(memo) == 0
    assert memo(HumanMessage("adiós")) == "ADIÓS None"


def test_the_memoizing_serializer_writes_exactly_langgraphs_bytes() -> None:
    messages = [
        HumanMessage("hola", id="h1"),
        AIMessage("", id="a1", tool_calls=[{"name": "book", "args": {"x": 1}, "id": "c1"}]),
    ]
    value = {"messages": messages, "when": {"n": 1}, "basket": Basket(["a"])}
    ours, stock = MessageMemoSerializer(), JsonPlusSerializer()
    for _ in range(2):  # the second time from the memo
        assert ours.dumps_typed(value) == stock.dumps_typed(value)
    unnamed = AIMessage("sin id")
    assert ours.dumps_typed([unnamed]) == stock.dumps_typed([unnamed])
    unnamed.id = "a2"  # assigned in place by add_messages after a pending write was saved
    assert ours.dumps_typed([unnamed]) == stock.dumps_typed([unnamed])
    assert ours.loads_typed(ours.dumps_typed(value)) == value
    assert ours.dumps_typed(None) == stock.dumps_typed(None)
    assert ours.dumps_typed(b"raw") == stock.dumps_typed(b"raw")
