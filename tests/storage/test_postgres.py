"""The PostgreSQL backend's own promises: retention, guard across hosts, one sweeper, outages."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from service.observability import metrics
from service.settings import Settings
from service.storage.errors import StorageUnavailableError
from service.storage.locks import ThreadBusyError, ThreadWaitTimeoutError
from service.storage.postgres.backend import PostgresPersistence
from service.storage.postgres.guard import PostgresAdvisoryGuard, advisory_key, unlock_all
from service.storage.postgres.maintenance import PostgresMaintenance, PostgresSweeper
from service.storage.postgres.pool import new_pool
from service.storage.postgres.saver import PostgresCheckpointer
from service.storage.postgres.schema import init_postgres
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def settings(pg_url: str) -> Settings:
    init_postgres(pg_url)
    return Settings(
        _env_file=None,
        checkpointer="postgres",
        database_url=pg_url,
        postgres_pool_timeout_s=1,
        checkpoint_retention="all",
    )


async def guard_pool(settings: Settings) -> Any:
    """A guard as another host would have it: its own pool."""
    pool = new_pool(settings, "guard", min_size=0, reset=unlock_all)
    await pool.open()
    return pool


def one(conn: psycopg.Connection[Any], query: str, *params: Any) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


async def run_turns(saver: Any, settings: Settings, thread_id: str, turns: int, tmp: Path) -> None:
    from service.agent.graph import build_graph
    from service.agent.model import build_model
    from service.agent.tools import build_tools
    from service.bookings.store import BookingStore

    store = BookingStore(tmp / "appointments.db", settings)
    store.init_schema()
    graph = build_graph(build_model(settings), build_tools(store, settings), settings).compile(
        checkpointer=saver
    )
    for i in range(turns):
        await graph.ainvoke(
            {"messages": [{"role": "user", "content": f"hello {i}"}]},
            {"configurable": {"thread_id": thread_id}},
            durability="sync",
        )
    store.close()


async def test_inline_retention_keeps_the_latest_and_frees_its_blobs(
    pool: Any, settings: Settings, sql: psycopg.Connection[Any], tmp_path: Path
) -> None:
    kept, full = str(uuid.uuid4()), str(uuid.uuid4())
    await run_turns(PostgresCheckpointer(pool, keep_last=1), settings, kept, 5, tmp_path)
    await run_turns(PostgresCheckpointer(pool), settings, full, 5, tmp_path)

    roots = "SELECT count(*) FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = ''"
    assert one(sql, roots, kept) == 1
    assert one(sql, roots, full) > 5
    orphan_blobs = (
        "SELECT count(*) FROM checkpoint_blobs b WHERE b.thread_id = %s AND NOT EXISTS ("
        "SELECT 1 FROM checkpoints c WHERE c.thread_id = b.thread_id "
        "AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)"
    )
    # A step's writes are saved in the background and may land just after the next
    # checkpoint dropped their own; the following turn's compaction removes them.
    stray_writes = (
        "SELECT count(*) FILTER (WHERE w.checkpoint_id >= k.oldest), count(*) "
        "FROM checkpoint_writes w, (SELECT min(checkpoint_id) AS oldest FROM checkpoints "
        "WHERE thread_id = %s) AS k WHERE w.thread_id = %s AND NOT EXISTS ("
        "SELECT 1 FROM checkpoints c WHERE c.thread_id = w.thread_id "
        "AND c.checkpoint_id = w.checkpoint_id)"
    )
    assert one(sql, orphan_blobs, kept) == 0
    newer, stray = sql.execute(stray_writes, (kept, kept)).fetchone()
    assert newer == 0 and stray <= 10
    # Messages are stored once either way (as message links); what retention frees is
    # the older checkpoints, and the blobs only they used.
    link_bytes = "SELECT sum(length(messages)) FROM checkpoint_messages WHERE thread_id = %s"
    assert one(sql, link_bytes, kept) == one(sql, link_bytes, full)
    row_bytes = "SELECT sum(octet_length(checkpoint::text)) FROM checkpoints WHERE thread_id = %s"
    assert one(sql, row_bytes, kept) * 3 < one(sql, row_bytes, full)

    latest = await PostgresCheckpointer(pool).aget_tuple({"configurable": {"thread_id": kept}})
    assert latest is not None
    messages = latest.checkpoint["channel_values"]["messages"]
    texts = [m.content for m in messages if m.type == "human"]
    assert texts == [f"hello {i}" for i in range(5)]
    created, updated = sql.execute(
        "SELECT created_at, updated_at FROM threads WHERE thread_id = %s", (kept,)
    ).fetchone()
    assert updated > created


async def test_a_turn_is_one_write_transaction(pool: Any, settings: Settings) -> None:
    saver = PostgresCheckpointer(pool, keep_last=1)
    counter = metrics.WRITE_TRANSACTIONS.labels(backend="postgres")
    before = counter._value.get()
    config = {"configurable": {"thread_id": str(uuid.uuid4()), "checkpoint_ns": ""}}
    from langgraph.checkpoint.base import empty_checkpoint

    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"messages": ["hi"], "n": 1}
    checkpoint["channel_versions"] = {"messages": "1", "n": "1"}
    await saver.aput(config, checkpoint, {"source": "input", "step": -1}, {"messages": "1"})
    assert counter._value.get() == before + 1


async def test_guard_holds_across_hosts(settings: Settings) -> None:
    pools = [await guard_pool(settings) for _ in range(2)]
    host_a, host_b = (
        PostgresAdvisoryGuard(p, settings.database_url, retry_after_s=1) for p in pools
    )
    tid, other = str(uuid.uuid4()), str(uuid.uuid4())
    try:
        async with host_a.hold(tid, wait=False, timeout_s=1):
            assert host_b.is_busy(tid) and host_a.is_busy(tid)
            assert not host_b.is_busy(other)
            with pytest.raises(ThreadBusyError):
                async with host_b.hold(tid, wait=False, timeout_s=1):
                    pass
            with pytest.raises(ThreadWaitTimeoutError):
                async with host_b.hold(tid, wait=True, timeout_s=0.2):
                    pass
            async with host_b.hold(other, wait=False, timeout_s=1):
                pass  # other threads never wait

        async def second() -> float:
            async with host_b.hold(tid, wait=True, timeout_s=5):
                return time.monotonic()

        async with host_a.hold(tid, wait=False, timeout_s=1):
            waiter = asyncio.create_task(second())
            await asyncio.sleep(0.3)
            assert not waiter.done()
            released = time.monotonic()
        assert await waiter - released < 0.5
        assert not host_a.is_busy(tid)
    finally:
        for guard, pool in zip((host_a, host_b), pools, strict=True):
            guard.close()
            await pool.close()


async def test_a_dead_session_frees_its_threads(settings: Settings, pg_url: str) -> None:
    tid = str(uuid.uuid4())
    crashed = psycopg.connect(pg_url, autocommit=True)
    assert crashed.execute("SELECT pg_try_advisory_lock(%s)", (advisory_key(tid),)).fetchone()[0]
    pool = await guard_pool(settings)
    guard = PostgresAdvisoryGuard(pool, pg_url, retry_after_s=1)
    try:
        assert guard.is_busy(tid)
        crashed.close()  # the process holding it is gone
        async with guard.hold(tid, wait=True, timeout_s=5):
            assert guard.is_busy(tid)
    finally:
        guard.close()
        await pool.close()


async def test_a_cancelled_run_leaves_no_lock_behind(settings: Settings) -> None:
    pool = await guard_pool(settings)
    guard = PostgresAdvisoryGuard(pool, settings.database_url, retry_after_s=1)
    tid = str(uuid.uuid4())

    async def run() -> None:
        async with guard.hold(tid, wait=False, timeout_s=1):
            await asyncio.sleep(30)

    try:
        task = asyncio.create_task(run())
        await asyncio.sleep(0.2)
        assert guard.is_busy(tid)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with guard.hold(tid, wait=False, timeout_s=1):
            pass
        await asyncio.sleep(0.1)
        assert not guard.is_busy(tid)
    finally:
        guard.close()
        await pool.close()


async def test_one_maintenance_leader_and_takeover(settings: Settings, pool: Any) -> None:
    first = PostgresMaintenance(settings, pool, settings.database_url)
    second = PostgresMaintenance(settings, pool, settings.database_url)
    try:
        assert await first.try_lead()
        assert not await second.try_lead()
        assert await first.try_lead()  # still the leader
        await first._conn.close()  # its host dies; the server ends the session shortly
        deadline = time.monotonic() + 5
        while not await second.try_lead():
            assert time.monotonic() < deadline, "no takeover"
            await asyncio.sleep(0.05)
        assert not await first.try_lead()
    finally:
        await first.stop()
        await second.stop()


async def test_sweep_expires_and_compacts_but_skips_busy_threads(
    settings: Settings, pool: Any, sql: psycopg.Connection[Any], tmp_path: Path
) -> None:
    threads = [f"sweep-{i}-{uuid.uuid4()}" for i in range(4)]
    saver = PostgresCheckpointer(pool)
    for tid in threads:
        await run_turns(saver, settings, tid, 3, tmp_path)
    old, busy_old, long_, busy_long = threads
    sql.execute(
        "UPDATE threads SET updated_at = '2000-01-01' WHERE thread_id = ANY(%s)",
        ([old, busy_old],),
    )
    gpool = await guard_pool(settings)
    guard = PostgresAdvisoryGuard(gpool, settings.database_url, retry_after_s=1)
    sweeper = PostgresSweeper(
        settings.model_copy(update={"thread_ttl_days": 7, "checkpoint_retention": "keep_latest"}),
        pool,
    )
    try:
        async with (
            guard.hold(busy_old, wait=False, timeout_s=1),
            guard.hold(busy_long, wait=False, timeout_s=1),
        ):
            report = await sweeper.sweep()
    finally:
        guard.close()
        await gpool.close()
    assert report.expired_deleted >= 1 and report.skipped_busy >= 2
    for table in ("threads", "checkpoints", "checkpoint_blobs", "checkpoint_writes"):
        assert one(sql, f"SELECT count(*) FROM {table} WHERE thread_id = %s", old) == 0
    assert one(sql, "SELECT count(*) FROM threads WHERE thread_id = %s", busy_old) == 1
    roots = "SELECT count(*) FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = ''"
    assert one(sql, roots, long_) == 1
    assert one(sql, roots, busy_long) > 1
    latest = await saver.aget_tuple({"configurable": {"thread_id": long_}})
    humans = [m for m in latest.checkpoint["channel_values"]["messages"] if m.type == "human"]
    assert len(humans) == 3


async def test_outage_is_503_and_the_pool_recovers_by_itself(
    settings: Settings, tmp_path: Path
) -> None:
    target = int(settings.database_url.rsplit(":", 1)[1].split("/")[0])
    proxy = TcpProxy(target).start()
    via_proxy = settings.model_copy(update={"database_url": proxy.url(settings.database_url)})
    persistence = PostgresPersistence(via_proxy)
    await persistence.aopen()
    try:
        await persistence.pool.wait(timeout=5)
        tid = str(uuid.uuid4())
        await persistence.create_thread(tid, {"a": 1}, "raise")
        proxy.cut()
        started = time.monotonic()
        with pytest.raises(StorageUnavailableError) as err:
            await persistence.get_thread(tid)
        assert err.value.retry_after_s == settings.busy_retry_after_s
        with pytest.raises(StorageUnavailableError):
            await persistence.checkpointer.aget_tuple({"configurable": {"thread_id": tid}})
        assert time.monotonic() - started < 10
        assert not persistence.guard.is_busy(tid)  # answers at once, does not hang
        proxy.restore()
        deadline = time.monotonic() + 15
        while True:
            try:
                record = await persistence.get_thread(tid)
                break
            except StorageUnavailableError:
                assert time.monotonic() < deadline, "the pool did not recover"
                await asyncio.sleep(0.2)
        assert record is not None and record.metadata == {"a": 1}
        async with persistence.guard.hold(tid, wait=False, timeout_s=1):
            pass
    finally:
        await persistence.aclose()
        proxy.cut()


async def test_a_threads_own_ttl_overrides_thread_ttl_days(
    settings: Settings, pool: Any, sql: psycopg.Connection[Any], tmp_path: Path
) -> None:
    saver = PostgresCheckpointer(pool)
    own_hour, own_long, plain_old, own_fresh = (f"ttl-{i}-{uuid.uuid4()}" for i in range(4))
    for tid in (own_hour, own_long, plain_old, own_fresh):
        await run_turns(saver, settings, tid, 1, tmp_path)
    for tid, age, ttl in (
        (own_hour, "2 hours", 60),
        (own_long, "30 days", 60 * 24 * 60),
        (plain_old, "30 days", None),
        (own_fresh, "5 minutes", 60),
    ):
        sql.execute(
            "UPDATE threads SET updated_at = now() - %s::interval, ttl_minutes = %s "
            "WHERE thread_id = %s",
            (age, ttl, tid),
        )
    week = settings.model_copy(update={"thread_ttl_days": 7, "checkpoint_retention": "all"})
    await PostgresSweeper(week, pool).sweep()
    alive = {
        tid
        for tid in (own_hour, own_long, plain_old, own_fresh)
        if one(sql, "SELECT count(*) FROM threads WHERE thread_id = %s", tid)
    }
    assert alive == {own_long, own_fresh}
    assert one(sql, "SELECT count(*) FROM checkpoints WHERE thread_id = %s", own_hour) == 0
    # With THREAD_TTL_DAYS off, a thread's own TTL still runs out.
    sql.execute(
        "UPDATE threads SET updated_at = now() - interval '3 hours' WHERE thread_id = %s",
        (own_fresh,),
    )
    off = week.model_copy(update={"thread_ttl_days": 0})
    report = await PostgresSweeper(off, pool).sweep()
    assert report.expired_deleted == 1
    assert one(sql, "SELECT count(*) FROM threads WHERE thread_id = %s", own_long) == 1
