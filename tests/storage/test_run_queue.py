"""The run queue's storage, the same on every backend: which run goes next, who claims
it, what a cancel does where the run stands, and the runs a dead worker left behind."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from service.runs.lifecycle import new_run_id
from service.settings import Settings
from service.storage import open_persistence, prepare_checkpoint_storage
from service.storage.base import Persistence, RunRecord
from service.storage.records import iso_utc, parse_iso, utcnow_iso
from service.storage.run_records import OWN_FIRST_S

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=["sqlite", "postgres", "memory"])
async def persistence(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Persistence]:
    fields: dict = {"checkpointer": request.param, "checkpoints_db_path": tmp_path / "c.db"}
    if request.param == "postgres":
        fields["database_url"] = request.getfixturevalue("pg_url")
    settings = Settings(_env_file=None, **fields)
    prepare_checkpoint_storage(settings)
    opened = open_persistence(settings)
    await opened.start()
    yield opened
    await opened.aclose()


async def _thread(persistence: Persistence) -> str:
    thread_id = str(uuid.uuid4())
    await persistence.create_thread(thread_id, {}, "raise")
    return thread_id


def _run(thread_id: str, status: str = "pending") -> RunRecord:
    now = utcnow_iso()
    return RunRecord(
        run_id=new_run_id(),
        thread_id=thread_id,
        assistant_id="agent",
        status=status,
        multitask_strategy="enqueue",
        kwargs={"input": {"messages": [{"role": "user", "content": "hi"}]}},
        created_at=now,
        updated_at=now,
        worker="host:1",
    )


async def _status(persistence: Persistence, run: RunRecord) -> str | None:
    found = await persistence.get_run(run.thread_id, run.run_id)
    return found.status if found else None


async def test_the_oldest_pending_run_of_each_thread_goes_next(persistence: Persistence) -> None:
    a, b = await _thread(persistence), await _thread(persistence)
    first_a, first_b, second_a = _run(a), _run(b), _run(a)
    for run in (first_a, first_b, second_a):
        assert await persistence.create_run(run)
    queued = await persistence.next_pending_runs(10)
    mine = [run.run_id for run in queued if run.thread_id in (a, b)]
    assert mine == [first_a.run_id, first_b.run_id]
    depth, oldest = await persistence.queue_stats()
    assert depth >= 3 and oldest is not None and oldest <= first_a.created_at

    assert await persistence.claim_run(first_a.run_id, a, "host:2") == 0
    assert await persistence.claim_run(first_a.run_id, a, "host:3") is None  # taken
    claimed = await persistence.get_run(a, first_a.run_id)
    assert claimed is not None and claimed.status == "running" and claimed.worker == "host:2"
    # Next for its thread now (the thread's guard keeps it waiting while the first runs).
    queued = await persistence.next_pending_runs(10)
    assert [run.run_id for run in queued if run.thread_id in (a, b)] == [
        first_b.run_id,
        second_a.run_id,
    ]
    depth, _ = await persistence.queue_stats()
    assert depth >= 2


async def test_a_worker_takes_the_runs_it_accepted_first(persistence: Persistence) -> None:
    """Its clients' joins wait for them in its memory; a thread's order still holds, and
    a run that has waited OWN_FIRST_S goes first whoever accepted it."""
    a, b, c, d = [await _thread(persistence) for _ in range(4)]
    aged = _run(d)
    aged.created_at = iso_utc(parse_iso(aged.created_at) - dt.timedelta(seconds=OWN_FIRST_S + 1))
    aged.worker = "gone:1"
    assert await persistence.create_run(aged)
    theirs = _run(a)
    mine_behind_theirs = _run(a)
    mine = _run(b)
    theirs_later = _run(c)
    for run, worker in (
        (theirs, "other:1"),
        (mine_behind_theirs, "me:1"),
        (mine, "me:1"),
        (theirs_later, "other:1"),
    ):
        run.worker = worker
        assert await persistence.create_run(run)
    queued = [run.run_id for run in await persistence.next_pending_runs(10, "me:1")]
    known = {r.run_id for r in (aged, theirs, mine, theirs_later)}
    ours = [run_id for run_id in queued if run_id in known]
    assert ours == [aged.run_id, mine.run_id, theirs.run_id, theirs_later.run_id]
    assert mine_behind_theirs.run_id not in queued  # behind its thread's first


async def test_the_statuses_of_many_runs_in_one_read(persistence: Persistence) -> None:
    thread_id = await _thread(persistence)
    pending, running = _run(thread_id), _run(thread_id, "running")
    for run in (pending, running):
        assert await persistence.create_run(run)
    await persistence.set_run_status(running.run_id, "success")
    unknown = new_run_id()
    statuses = await persistence.run_statuses([pending.run_id, running.run_id, unknown])
    assert statuses == {pending.run_id: "pending", running.run_id: "success"}


async def test_a_wait_run_is_not_recorded_ahead_of_a_pending_one(persistence: Persistence) -> None:
    thread_id = await _thread(persistence)
    pending = _run(thread_id)
    assert await persistence.create_run(pending)
    assert not await persistence.create_run(_run(thread_id, "running"), unless_queued=True)
    assert await persistence.claim_run(pending.run_id, thread_id, "host:1") == 0
    late = _run(thread_id, "running")
    assert await persistence.create_run(late, unless_queued=True)
    assert [run.run_id for run in await persistence.active_runs(thread_id)] == [
        pending.run_id,
        late.run_id,
    ]


async def test_cancels_act_where_the_run_stands(persistence: Persistence) -> None:
    thread_id = await _thread(persistence)
    interrupted, rolled_back, running = _run(thread_id), _run(thread_id), _run(thread_id)
    for run in (interrupted, rolled_back, running):
        await persistence.create_run(run)
    assert await persistence.claim_run(running.run_id, thread_id, "host:7") == 0
    assert await persistence.cancel_run(interrupted.run_id, "interrupt") == "pending"
    assert await _status(persistence, interrupted) == "interrupted"
    assert await persistence.cancel_run(rolled_back.run_id, "rollback") == "pending"
    assert await _status(persistence, rolled_back) is None  # deleted
    assert await persistence.cancel_requests("host:7") == {}
    assert await persistence.cancel_run(running.run_id, "rollback") == "running"
    assert await _status(persistence, running) == "running"  # its worker stops it
    assert await persistence.cancel_requests("host:7") == {running.run_id: "rollback"}
    assert await persistence.cancel_requests("host:8") == {}
    await persistence.set_run_status(running.run_id, "interrupted")
    assert await persistence.cancel_requests("host:7") == {}
    assert await persistence.cancel_run(running.run_id, "interrupt") is None  # ended
    assert await persistence.cancel_run(new_run_id(), "interrupt") is None  # unknown
    assert await persistence.active_runs(thread_id) == []


async def test_claiming_a_thread_fails_what_a_dead_worker_left_running(
    persistence: Persistence,
) -> None:
    thread_id = await _thread(persistence)
    orphan, nxt = _run(thread_id), _run(thread_id)
    await persistence.create_run(orphan)
    await persistence.create_run(nxt)
    await persistence.claim_run(orphan.run_id, thread_id, "dead:1")
    other_thread = await _thread(persistence)
    elsewhere = _run(other_thread)
    await persistence.create_run(elsewhere)
    await persistence.claim_run(elsewhere.run_id, other_thread, "alive:1")
    # The worker that now holds the thread knows no run of it is alive.
    assert await persistence.claim_run(nxt.run_id, thread_id, "alive:2") == 1
    assert await _status(persistence, orphan) == "error"
    assert await _status(persistence, nxt) == "running"
    assert await _status(persistence, elsewhere) == "running"


async def test_a_resumable_streams_events_are_kept_in_order(persistence: Persistence) -> None:
    thread_id = await _thread(persistence)
    run = _run(thread_id, "running")
    await persistence.create_run(run)
    await persistence.append_run_events(thread_id, run.run_id, [(1, "metadata", "{}")])
    batch = [(2, "values", '{"n":1}'), (3, "values", '{"n":2}')]
    await persistence.append_run_events(thread_id, run.run_id, batch)
    await persistence.append_run_events(thread_id, run.run_id, batch[:1])  # a retry: kept once
    assert await persistence.run_events_after(run.run_id, 0, 10) == [(1, "metadata", "{}"), *batch]
    assert await persistence.run_events_after(run.run_id, 1, 1) == batch[:1]
    assert await persistence.run_events_after(run.run_id, 3, 10) == []
    assert await persistence.run_events_after(new_run_id(), 0, 10) == []
    await persistence.delete_thread(thread_id)
    assert await persistence.run_events_after(run.run_id, 0, 10) == []


def test_a_queue_pass_reads_the_pending_runs_only(tmp_path: Path) -> None:
    """However many runs the file has recorded: the queue's reads go through the index
    of pending runs, never a scan of the table."""
    from service.storage.run_records import NEXT_PENDING_SQL, insert_run_sql
    from service.storage.sqlite.driver import sqlite3

    settings = Settings(_env_file=None, checkpoints_db_path=tmp_path / "c.db")
    prepare_checkpoint_storage(settings)
    conn = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    ended = [
        (f"r{n:06d}", f"t{n % 50}", "agent", "success", "{}", "{}", "x", "x", "w")
        for n in range(5000)
    ]
    conn.executemany(
        "INSERT INTO runs (run_id, thread_id, assistant_id, status, metadata, kwargs, "
        "created_at, updated_at, worker) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ended,
    )
    conn.execute("ANALYZE")
    for sql, params in (
        (NEXT_PENDING_SQL.format(collate="", m="?"), ("w", "2000-01-01T00:00:00Z", 4)),
        (insert_run_sql(", ".join("?" * 10), "?", unless_queued=True), ("x",) * 11),
    ):
        plan = [row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
        reads = [step for step in plan if step.startswith(("SCAN runs", "SCAN r ", "SEARCH"))]
        assert reads and all("runs_pending" in step for step in reads), plan
    conn.close()


def test_the_sqlite_sweep_drops_events_past_their_ttl(tmp_path: Path) -> None:
    from service.storage.sqlite.driver import sqlite3
    from service.storage.sqlite.maintenance import expire_run_events

    settings = Settings(_env_file=None, checkpoints_db_path=tmp_path / "c.db")
    prepare_checkpoint_storage(settings)
    conn = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    rows = [("old", "t", 1, "values", "{}", "2000-01-01T00:00:00.000000Z")]
    rows.append(("new", "t", 1, "values", "{}", utcnow_iso()))
    conn.executemany("INSERT INTO run_events VALUES (?, ?, ?, ?, ?, ?)", rows)
    assert expire_run_events(conn, 600) == 1
    assert [row[0] for row in conn.execute("SELECT run_id FROM run_events")] == ["new"]
    conn.close()


async def test_a_cron_firing_is_claimed_once(persistence: Persistence) -> None:
    from service.storage.base import CronRecord

    thread_id = await _thread(persistence)
    now = utcnow_iso()
    cron = CronRecord(
        cron_id=str(uuid.uuid4()),
        assistant_id="agent",
        thread_id=thread_id,
        schedule="* * * * *",
        payload={"assistant_id": "agent"},
        metadata={"job": "x"},
        next_run_date="2000-01-01T00:00:00.000000Z",
        created_at=now,
        updated_at=now,
    )
    await persistence.save_cron(cron)
    assert [c.cron_id for c in await persistence.due_crons(now, 10)] == [cron.cron_id]
    later = "2999-01-01T00:00:00.000000Z"
    assert await persistence.advance_cron(cron.cron_id, cron.next_run_date, later, True)
    assert not await persistence.advance_cron(cron.cron_id, cron.next_run_date, later, True)
    assert await persistence.due_crons(now, 10) == []
    stored = await persistence.get_cron(cron.cron_id)
    assert stored is not None and stored.next_run_date == later and stored.metadata == {"job": "x"}
    assert [c.cron_id for c in await persistence.list_crons("agent", thread_id, True)] == [
        cron.cron_id
    ]
    assert await persistence.list_crons("agent", thread_id, False) == []
    await persistence.delete_thread(thread_id)  # a thread's crons go with it
    assert await persistence.get_cron(cron.cron_id) is None
    assert not await persistence.delete_cron(cron.cron_id)
