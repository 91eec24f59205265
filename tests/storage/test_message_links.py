"""Full history in linear storage: every checkpoint readable, messages stored about once.

Two `SqliteCheckpointer`s on one file stand for two workers; the graphs are real
LangGraph graphs with the `add_messages` reducer, as the booking agent's state is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from service.settings import Settings

# The driver's SQLite, never a second copy of the library on the same file in one
# process (their POSIX locks would release each other's).
from service.storage.sqlite.driver import sqlite3
from service.storage.sqlite.saver import SqliteCheckpointer
from service.storage.sqlite.schema import SCHEMA_VERSION, init_database
from tests.support.message_graph import compiled, contents


def config(thread_id: str, checkpoint_id: str | None = None) -> dict[str, Any]:
    configurable = {"thread_id": thread_id}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def turn(graph: Any, thread_id: str, text: str, **kwargs: Any) -> dict[str, Any]:
    return graph.invoke({"messages": [HumanMessage(text)]}, config(thread_id), **kwargs)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "checkpoints.db"
    init_database(path, Settings(_env_file=None))
    return path


@pytest.fixture
def workers(db: Path) -> Iterator[tuple[SqliteCheckpointer, SqliteCheckpointer]]:
    settings = Settings(_env_file=None)
    first, second = SqliteCheckpointer(db, settings), SqliteCheckpointer(db, settings)
    yield first, second
    first.close()
    second.close()


def stored_bytes(db: Path, thread_id: str) -> tuple[int, list[int]]:
    """(bytes of the thread's message links, each checkpoint blob's length)."""
    conn = sqlite3.connect(db)
    try:
        links = conn.execute(
            "SELECT sum(length(messages)) FROM checkpoint_messages WHERE thread_id = ?",
            (thread_id,),
        ).fetchone()[0]
        blobs = conn.execute(
            "SELECT length(checkpoint) FROM checkpoints WHERE thread_id = ?", (thread_id,)
        ).fetchall()
        return links, [row[0] for row in blobs]
    finally:
        conn.close()


def link_count(db: Path, thread_id: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT count(*) FROM checkpoint_messages WHERE thread_id = ?", (thread_id,)
        ).fetchone()[0]
    finally:
        conn.close()


def test_every_checkpoint_of_a_long_conversation_reads_back_whole(
    db: Path, workers: tuple[SqliteCheckpointer, SqliteCheckpointer]
) -> None:
    first, second = workers
    graphs = compiled(first), compiled(second)
    for i in range(60):  # the workers take turns, as Gunicorn's do
        turn(graphs[i % 2], "long", f"turn {i}")
    history = list(first.list(config("long")))
    counts = [len(t.checkpoint["channel_values"].get("messages", [])) for t in history]
    # Every step's checkpoint is kept (input, then reply) and holds what it held then.
    assert counts[0] == 120
    assert sorted(counts, reverse=True) == counts
    for item in history:
        again = second.get_tuple(item.config)
        assert again is not None
        assert contents(again.checkpoint["channel_values"].get("messages", [])) == contents(
            item.checkpoint["channel_values"].get("messages", [])
        )
    latest = history[0].checkpoint["channel_values"]["messages"]
    assert contents(latest)[:2] == ["turn 0", "reply 1 " + "x" * 200]
    whole = len(JsonPlusSerializer().dumps_typed(latest)[1])
    links, blobs = stored_bytes(db, "long")
    assert links <= 1.05 * whole  # each message once (stored whole each time: 60x)
    assert max(blobs) < 2 * min(blobs)  # the rest of a checkpoint does not grow


def test_a_fork_keeps_both_branches_and_prune_frees_the_abandoned_one(
    db: Path, workers: tuple[SqliteCheckpointer, SqliteCheckpointer]
) -> None:
    saver = workers[0]
    graph = compiled(saver)
    for i in range(5):
        turn(graph, "fork", f"turn {i}")
    older = next(  # after the third turn's reply
        t
        for t in saver.list(config("fork"))
        if len(t.checkpoint["channel_values"].get("messages", [])) == 6
        and t.metadata.get("source") == "loop"
    )
    # A run from an older checkpoint: a new branch from there.
    graph.invoke({"messages": [HumanMessage("other way")]}, older.config)
    head = saver.get_tuple(config("fork"))
    assert head is not None
    branch = contents(head.checkpoint["channel_values"]["messages"])
    assert branch[:6] == contents(older.checkpoint["channel_values"]["messages"])
    assert branch[6:] == ["other way", "reply 7 " + "x" * 200]
    links_before = link_count(db, "fork")
    saver.prune(["fork"], strategy="keep_latest")
    assert link_count(db, "fork") < links_before
    kept = saver.get_tuple(config("fork"))
    assert kept is not None
    assert contents(kept.checkpoint["channel_values"]["messages"]) == branch
    assert len(list(saver.list(config("fork")))) == 1


def test_an_edited_message_is_stored_whole_and_reads_as_edited(
    workers: tuple[SqliteCheckpointer, SqliteCheckpointer],
) -> None:
    saver = workers[0]
    graph = compiled(saver)
    for i in range(3):
        turn(graph, "edit", f"turn {i}")
    first_id = saver.get_tuple(config("edit")).checkpoint["channel_values"]["messages"][0].id
    graph.update_state(config("edit"), {"messages": [HumanMessage("edited", id=first_id)]})
    state = graph.get_state(config("edit"))
    assert contents(state.values["messages"])[0] == "edited"
    fresh = SqliteCheckpointer(saver.path, saver.settings)  # no memo: from the database
    try:
        stored = fresh.get_tuple(config("edit")).checkpoint["channel_values"]["messages"]
        assert contents(stored) == contents(state.values["messages"])
        history = list(fresh.list(config("edit")))
        assert contents(history[-1].checkpoint["channel_values"].get("messages", [])) == []
        assert "edited" not in contents(history[1].checkpoint["channel_values"]["messages"])
    finally:
        fresh.close()


def test_rolling_back_a_run_leaves_the_earlier_history_whole(
    db: Path, workers: tuple[SqliteCheckpointer, SqliteCheckpointer]
) -> None:
    saver = workers[0]
    graph = compiled(saver)
    for text, run_id in (("kept", "run-1"), ("undone", "run-2")):
        graph.invoke(
            {"messages": [HumanMessage(text)]},
            {**config("rollback"), "metadata": {"run_id": run_id}},
        )
    saver.delete_for_runs(["run-2"])
    latest = saver.get_tuple(config("rollback"))
    assert contents(latest.checkpoint["channel_values"]["messages"]) == [
        "kept",
        "reply 1 " + "x" * 200,
    ]
    turn(graph, "rollback", "again")  # the thread goes on from there
    values = graph.get_state(config("rollback")).values
    assert contents(values["messages"])[2] == "again"


def test_a_copied_thread_reads_like_its_source(
    workers: tuple[SqliteCheckpointer, SqliteCheckpointer],
) -> None:
    saver = workers[0]
    graph = compiled(saver)
    for i in range(4):
        turn(graph, "source", f"turn {i}")
    saver.copy_thread("source", "copy")
    saver.delete_thread("source")
    copied = list(saver.list(config("copy")))
    assert len(copied) == 12  # three checkpoints a turn: input, step, reply
    assert len(copied[0].checkpoint["channel_values"]["messages"]) == 8
    turn(graph, "copy", "more")
    assert len(graph.get_state(config("copy")).values["messages"]) == 10


def test_a_link_pruned_by_another_worker_is_not_built_on(
    db: Path, workers: tuple[SqliteCheckpointer, SqliteCheckpointer]
) -> None:
    first, second = workers
    graph = compiled(first)
    for i in range(3):
        turn(graph, "gone", f"turn {i}")
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM checkpoint_messages WHERE thread_id = 'gone'")  # as if swept
    conn.commit()
    conn.close()
    turn(graph, "gone", "after")  # this worker still remembers the links it wrote
    state = compiled(second).get_state(config("gone"))
    assert contents(state.values["messages"])[-2] == "after"
    assert len(state.values["messages"]) == 8


def test_a_database_of_the_previous_schema_is_upgraded_and_stays_readable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    settings = Settings(_env_file=None)
    init_database(path, settings)
    saver = SqliteCheckpointer(path, settings)
    graph = compiled(saver)
    turn(graph, "old", "before")
    whole = {t.config["configurable"]["checkpoint_id"]: t.checkpoint for t in saver.list(None)}
    saver.close()
    # Make it a version-1 file: messages inline in the checkpoint blob, no link columns.
    conn = sqlite3.connect(path)
    serde = JsonPlusSerializer()
    for checkpoint_id, checkpoint in whole.items():
        conn.execute(
            "UPDATE checkpoints SET checkpoint = ? WHERE checkpoint_id = ?",
            (serde.dumps_typed(checkpoint)[1], checkpoint_id),
        )
    conn.execute("DROP TABLE checkpoint_messages")
    conn.execute("ALTER TABLE checkpoints DROP COLUMN messages_head")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()

    init_database(path, settings)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    saver = SqliteCheckpointer(path, settings)
    try:
        graph = compiled(saver)
        assert contents(graph.get_state(config("old")).values["messages"])[0] == "before"
        turn(graph, "old", "after")
        fresh = SqliteCheckpointer(path, settings)
        values = compiled(fresh).get_state(config("old")).values
        fresh.close()
        assert contents(values["messages"])[::2] == ["before", "after"]
    finally:
        saver.close()
