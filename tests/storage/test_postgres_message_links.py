"""Full history in linear storage on PostgreSQL: the SQLite backend's promises, kept here.

Two `PostgresCheckpointer`s on one pool stand for two workers; the graph is a real
LangGraph graph with the `add_messages` reducer.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from service.settings import Settings
from service.storage.postgres.saver import PostgresCheckpointer
from service.storage.postgres.schema import init_postgres
from tests.support.message_graph import compiled, contents

pytestmark = pytest.mark.timeout(120)


def config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def values_of(item: Any) -> list[str]:
    return contents(item.checkpoint["channel_values"].get("messages", []))


@pytest.fixture(scope="module")
def settings(pg_url: str) -> Settings:
    init_postgres(pg_url)
    return Settings(_env_file=None, checkpointer="postgres", database_url=pg_url)


def link_bytes(sql: psycopg.Connection[Any], thread_id: str) -> int:
    row = sql.execute(
        "SELECT coalesce(sum(length(messages)), 0) FROM checkpoint_messages WHERE thread_id = %s",
        (thread_id,),
    ).fetchone()
    return int(row[0]) if row else 0


async def test_every_checkpoint_reads_back_whole_and_messages_are_stored_once(
    pool: Any, sql: psycopg.Connection[Any]
) -> None:
    first, second = PostgresCheckpointer(pool), PostgresCheckpointer(pool)
    graphs = compiled(first), compiled(second)
    tid = str(uuid.uuid4())
    for i in range(30):  # the workers take turns
        await graphs[i % 2].ainvoke({"messages": [HumanMessage(f"turn {i}")]}, config(tid))
    history = [item async for item in first.alist(config(tid))]
    assert len(values_of(history[0])) == 60
    for item in history:
        again = await PostgresCheckpointer(pool).aget_tuple(item.config)  # a cold worker
        assert again is not None and values_of(again) == values_of(item)
    latest = history[0].checkpoint["channel_values"]["messages"]
    whole = len(JsonPlusSerializer().dumps_typed(latest)[1])
    assert link_bytes(sql, tid) <= 1.05 * whole


async def test_fork_prune_rollback_and_copy(pool: Any, sql: psycopg.Connection[Any]) -> None:
    saver = PostgresCheckpointer(pool)
    graph = compiled(saver)
    tid = str(uuid.uuid4())
    for i, run_id in enumerate(("run-a", "run-b", "run-c")):
        await graph.ainvoke(
            {"messages": [HumanMessage(f"turn {i}")]},
            {**config(tid), "metadata": {"run_id": run_id}},
        )
    history = [item async for item in saver.alist(config(tid))]
    older = next(
        item
        for item in history
        if len(values_of(item)) == 4 and item.metadata.get("source") == "loop"
    )
    await graph.ainvoke({"messages": [HumanMessage("other way")]}, older.config)
    head = await saver.aget_tuple(config(tid))
    assert values_of(head)[4:] == ["other way", "reply 5 " + "x" * 200]

    copy = str(uuid.uuid4())
    await saver.acopy_thread(tid, copy)
    copied = await PostgresCheckpointer(pool).aget_tuple(config(copy))
    assert values_of(copied) == values_of(head)

    before = link_bytes(sql, tid)
    await saver.aprune([tid], strategy="keep_latest")
    assert link_bytes(sql, tid) < before  # the abandoned branch's links are gone
    kept = await PostgresCheckpointer(pool).aget_tuple(config(tid))
    assert values_of(kept) == values_of(head)

    await saver.adelete_for_runs(["run-a", "run-b", "run-c"])  # the copy's history stays
    assert values_of(await saver.aget_tuple(config(copy))) == values_of(head)

    await saver.adelete_thread(copy)
    assert link_bytes(sql, copy) == 0


async def test_a_link_collected_by_another_worker_is_not_built_on(
    pool: Any, sql: psycopg.Connection[Any]
) -> None:
    writer, reader = PostgresCheckpointer(pool), PostgresCheckpointer(pool)
    graph = compiled(writer)
    tid = str(uuid.uuid4())
    for i in range(3):
        await graph.ainvoke({"messages": [HumanMessage(f"turn {i}")]}, config(tid))
    latest = await writer.aget_tuple(config(tid))
    assert latest is not None
    # As if another worker pruned everything but a copy of the latest without links.
    sql.execute("UPDATE checkpoints SET messages_head = NULL WHERE thread_id = %s", (tid,))
    sql.execute("DELETE FROM checkpoint_messages WHERE thread_id = %s", (tid,))
    await graph.ainvoke({"messages": [HumanMessage("after")]}, config(tid))  # FK: a snapshot
    state = await compiled(reader).aget_state(config(tid))
    assert contents(state.values["messages"])[-2] == "after"
