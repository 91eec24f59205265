"""The end watch that joins of runs executing elsewhere wait on, on a real SQLite file:
woken when the run ends or loses its record, when it starts on this worker, and
told when storage fails; one read serves every waiting join."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from service.runs.end_watch import EndWatch
from service.runs.lifecycle import new_run_id
from service.storage.base import Persistence, RunRecord
from service.storage.errors import StorageUnavailableError
from service.storage.records import utcnow_iso


@pytest.fixture
def persistence(sqlite_persistence: Persistence) -> Persistence:
    return sqlite_persistence


async def _pending_run(persistence: Persistence) -> RunRecord:
    thread_id = str(uuid.uuid4())
    await persistence.create_thread(thread_id, {}, "raise")
    now = utcnow_iso()
    run = RunRecord(
        run_id=new_run_id(),
        thread_id=thread_id,
        assistant_id="agent",
        status="pending",
        multitask_strategy="enqueue",
        created_at=now,
        updated_at=now,
        worker="elsewhere:1",
    )
    assert await persistence.create_run(run)
    return run


async def test_joins_wake_when_their_run_ends_or_is_gone(persistence: Persistence) -> None:
    watch = EndWatch(persistence, interval_s=0.01)
    ending, deleted, waiting = [await _pending_run(persistence) for _ in range(3)]
    joins = {
        run.run_id: asyncio.create_task(watch.until_changed(run.run_id))
        for run in (ending, deleted, waiting)
    }
    twice = asyncio.create_task(watch.until_changed(ending.run_id))
    await asyncio.sleep(0.05)
    assert not any(join.done() for join in joins.values())
    await persistence.set_run_status(ending.run_id, "success")
    await persistence.delete_thread(deleted.thread_id)
    await asyncio.wait_for(asyncio.gather(joins[ending.run_id], joins[deleted.run_id], twice), 5)
    assert not joins[waiting.run_id].done()
    watch.started_here(waiting.run_id)
    await asyncio.wait_for(joins[waiting.run_id], 5)


async def test_a_run_expected_here_is_read_less_often(persistence: Persistence) -> None:
    """Until another worker takes it: then its joins are woken to wait for it as for any
    run executing elsewhere."""
    reads: list[list[str]] = []

    class Recording:
        async def run_statuses(self, run_ids: list[str]) -> dict[str, str]:
            reads.append(list(run_ids))
            return await persistence.run_statuses(run_ids)

    here, elsewhere = await _pending_run(persistence), await _pending_run(persistence)
    watch = EndWatch(Recording(), interval_s=0.01, slow_interval_s=0.25)  # type: ignore[arg-type]
    join_here = asyncio.create_task(watch.until_changed(here.run_id, expected_here=True))
    join_elsewhere = asyncio.create_task(watch.until_changed(elsewhere.run_id))
    await asyncio.sleep(0.3)
    with_here = sum(here.run_id in ids for ids in reads)
    with_elsewhere = sum(elsewhere.run_id in ids for ids in reads)
    assert with_here <= 2 < with_elsewhere, reads
    assert await persistence.claim_run(here.run_id, here.thread_id, "other:2") == 0
    await asyncio.wait_for(join_here, 5)  # still running, elsewhere
    assert not join_elsewhere.done()
    join_elsewhere.cancel()


async def test_a_join_is_told_when_storage_fails(persistence: Persistence) -> None:
    class Failing:
        async def run_statuses(self, run_ids: list[str]) -> dict[str, str]:
            raise StorageUnavailableError("down")

    watch = EndWatch(Failing(), interval_s=0.01)  # type: ignore[arg-type]
    with pytest.raises(StorageUnavailableError):
        await asyncio.wait_for(watch.until_changed("some-run"), 5)


async def test_one_read_serves_every_waiting_join(persistence: Persistence) -> None:
    reads: list[int] = []

    class Counting:
        async def run_statuses(self, run_ids: list[str]) -> dict[str, str]:
            reads.append(len(run_ids))
            return await persistence.run_statuses(run_ids)

    runs = [await _pending_run(persistence) for _ in range(20)]
    watch = EndWatch(Counting(), interval_s=0.01)  # type: ignore[arg-type]
    joins = [asyncio.create_task(watch.until_changed(run.run_id)) for run in runs]
    await asyncio.sleep(0.1)
    for run in runs:
        await persistence.set_run_status(run.run_id, "success")
    await asyncio.wait_for(asyncio.gather(*joins), 5)
    assert reads and reads[0] == 20  # each pass reads them all at once
