"""Point reads and single writes run on the event loop, and only when nothing makes them wait.

Whatever would have to wait (another process in the write gate, a writer from outside
the service holding SQLite's lock, this worker's reader busy) runs on the
connection's thread instead, and the event loop keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from prometheus_client import REGISTRY

from service.settings import Settings
from service.storage.sqlite.driver import connect
from service.storage.sqlite.saver import SqliteCheckpointer
from service.storage.sqlite.schema import init_database
from tests.support.record_lock import held_by_another_process

BUSY_TIMEOUT_MS = 5000


def make_saver(tmp_path: Path, **overrides: Any) -> SqliteCheckpointer:
    settings = Settings(_env_file=None, sqlite_busy_timeout_ms=BUSY_TIMEOUT_MS, **overrides)
    path = tmp_path / "checkpoints.db"
    init_database(path, settings)
    return SqliteCheckpointer(path, settings)


@pytest.fixture
def saver(tmp_path: Path) -> Iterator[SqliteCheckpointer]:
    saver = make_saver(tmp_path)
    yield saver
    saver.close()


def deferred(operation: str) -> float:
    value = REGISTRY.get_sample_value(
        "booking_agent_storage_deferred_operations_total",
        {"backend": "sqlite", "operation": operation},
    )
    return value or 0.0


def config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


def a_checkpoint(text: str) -> dict[str, Any]:
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"note": text}
    checkpoint["channel_versions"] = {"note": 1}
    return checkpoint


def record_threads(saver: SqliteCheckpointer, name: str) -> list[int]:
    """Wrap one of the saver's sync methods to record the thread each call ran on."""
    seen: list[int] = []
    original: Callable[..., Any] = getattr(saver, name)

    def recorded(*args: Any, **kwargs: Any) -> Any:
        seen.append(threading.get_ident())
        return original(*args, **kwargs)

    setattr(saver, name, recorded)
    return seen


async def ticks_while(awaitable: Any, seconds: float) -> tuple[int, Any]:
    """Count 10 ms ticks of the event loop while `awaitable` is still pending."""
    task = asyncio.ensure_future(awaitable)
    ticks = 0
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
        ticks += 1
        assert not task.done(), "it should still be waiting for the lock"
    return ticks, task


async def test_uncontended_reads_and_writes_run_on_the_event_loop(
    saver: SqliteCheckpointer,
) -> None:
    puts, gets = record_threads(saver, "put"), record_threads(saver, "get_tuple")
    before = deferred("put"), deferred("get")
    written = await saver.aput(config("t"), a_checkpoint("one"), {"step": 0}, {})
    read = await saver.aget_tuple(config("t"))
    assert read is not None and read.config == written
    assert read.checkpoint["channel_values"] == {"note": "one"}
    loop_thread = threading.get_ident()
    assert puts == [loop_thread] and gets == [loop_thread]
    assert (deferred("put"), deferred("get")) == before


async def test_with_loop_first_off_everything_runs_on_the_connection_threads(
    tmp_path: Path,
) -> None:
    saver = make_saver(tmp_path, sqlite_loop_first=False)
    try:
        puts, gets = record_threads(saver, "put"), record_threads(saver, "get_tuple")
        await saver.aput(config("t"), a_checkpoint("one"), {"step": 0}, {})
        assert await saver.aget_tuple(config("t")) is not None
        assert threading.get_ident() not in puts + gets and len(puts + gets) == 2
    finally:
        saver.close()


async def test_a_writer_outside_the_service_never_blocks_the_loop(
    saver: SqliteCheckpointer,
) -> None:
    """A shell, a backup or the maintenance sweep can hold SQLite's lock without the
    write gate. The put answers SQLITE_BUSY at once on the loop, waits on its thread,
    and lands when the lock is free; the loop serves meanwhile."""
    puts = record_threads(saver, "put")
    outsider = connect(saver.path, saver.settings)
    outsider.execute("BEGIN IMMEDIATE")
    before = deferred("put")
    try:
        ticks, task = await ticks_while(
            saver.aput(config("t"), a_checkpoint("waited"), {"step": 0}, {}), 0.3
        )
    finally:
        outsider.execute("COMMIT")
        outsider.close()
    await task
    assert ticks >= 20  # 30 expected; a blocked loop would give 1
    assert deferred("put") == before + 1
    assert len(puts) == 2 and puts[0] == threading.get_ident() != puts[1]
    stored = await saver.aget_tuple(config("t"))
    assert stored is not None and stored.checkpoint["channel_values"] == {"note": "waited"}
    # The loop-first attempt switched the busy wait off for itself only.
    busy = saver.writer.execute("PRAGMA busy_timeout").fetchone()[0]
    assert busy == BUSY_TIMEOUT_MS


def write_gate(saver: SqliteCheckpointer) -> Path:
    return saver.path.with_name(saver.path.name + ".write-gate")


async def test_another_worker_in_the_write_gate_sends_the_write_to_its_thread(
    saver: SqliteCheckpointer,
) -> None:
    """Another process holding the gate past the short spin: the write queues on the
    writer thread (in the kernel's lock queue), and the loop serves meanwhile."""
    before = deferred("put")
    with held_by_another_process(write_gate(saver)):
        ticks, task = await ticks_while(
            saver.aput(config("t"), a_checkpoint("after the gate"), {"step": 0}, {}), 0.3
        )
    await task
    assert ticks >= 20
    assert deferred("put") == before + 1
    stored = await saver.aget_tuple(config("t"))
    assert stored is not None
    assert stored.checkpoint["channel_values"] == {"note": "after the gate"}


async def test_a_point_read_waits_on_its_thread_while_the_reader_is_busy(
    saver: SqliteCheckpointer,
) -> None:
    await saver.aput(config("t"), a_checkpoint("one"), {"step": 0}, {})
    gets = record_threads(saver, "get_tuple")
    before = deferred("get")
    saver.lock.acquire()  # as a long read (history, search) on the reader thread does
    try:
        ticks, task = await ticks_while(saver.aget_tuple(config("t")), 0.2)
    finally:
        saver.lock.release()
    read = await task
    assert ticks >= 10
    assert read is not None and read.checkpoint["channel_values"] == {"note": "one"}
    assert deferred("get") == before + 1
    assert len(gets) == 2 and gets[0] == threading.get_ident() != gets[1]
    assert saver.conn.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_MS


async def test_writes_queued_on_the_thread_are_not_overtaken(saver: SqliteCheckpointer) -> None:
    """A write handed to the writer thread but not started yet keeps its place: a later
    write of the worker queues behind it rather than landing first on the loop."""
    order: list[str] = []
    original = saver.put

    def put(cfg: Any, checkpoint: Any, metadata: Any, versions: Any) -> Any:
        result = original(cfg, checkpoint, metadata, versions)
        order.append(checkpoint["channel_values"]["note"])
        return result

    saver.put = put  # type: ignore[method-assign]
    writer_busy = threading.Event()
    saver._write_pool.submit(writer_busy.wait, 10)  # the writer thread is occupied
    with held_by_another_process(write_gate(saver)):
        first = asyncio.ensure_future(saver.aput(config("a"), a_checkpoint("1"), {}, {}))
        await asyncio.sleep(0.05)  # it spun, gave up on the loop and queued
    # The gate is free and the writer thread has not started the first write: on the
    # loop, the second would land at once.
    second = asyncio.ensure_future(saver.aput(config("b"), a_checkpoint("2"), {}, {}))
    await asyncio.sleep(0.05)
    assert order == []
    writer_busy.set()
    await asyncio.gather(first, second)
    assert order == ["1", "2"]


def test_no_garbage_collection_starts_inside_a_write_transaction(
    saver: SqliteCheckpointer,
) -> None:
    """One would hold every worker's writes for its length; it runs after the commit."""
    inside = []
    with saver.write_transaction() as cur:
        inside.append(gc.isenabled())
        cur.execute("SELECT 1")
    assert inside == [False]
    assert gc.isenabled()
    with pytest.raises(RuntimeError), saver.write_transaction():
        raise RuntimeError("rolled back")
    assert gc.isenabled()
