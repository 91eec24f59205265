"""Crons: runs on a schedule, each firing one background run, fired by the maintenance
leader alone.

The leader looks every CRON_POLL_S for crons whose next firing is due. A firing is
claimed by moving the cron's `next_run_date` on with a compare-and-set, so it fires
once even while leadership changes hands. A firing found more than MISSED_AFTER_S late
was due while no worker led (the service was down): it is reported (a warning and
`booking_agent_cron_firings_total{result="missed"}`) and skipped, so the cron goes on
from its next time after now instead of replaying a burst.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from service.observability import metrics
from service.runs.errors import RunInputError
from service.runs.lifecycle import RunService
from service.runs.loops import WorkerLoop
from service.schemas.models import CronCreate, CronPatch, RunCreate
from service.storage.base import CronRecord
from service.storage.errors import (
    AssistantNotFoundError,
    StorageUnavailableError,
    ThreadNotFoundError,
)
from service.storage.locks import ThreadBusyError
from service.storage.records import iso_utc, parse_iso

log = logging.getLogger(__name__)

CRON_POLL_S = 1.0
MISSED_AFTER_S = 60.0
_DUE_BATCH = 50
# Counting missed firings stops here (a per-minute cron down for a week).
_MISSED_COUNT_CAP = 100_000

# What a PATCH may change in the run each firing starts.
_RUN_FIELDS = (
    "input",
    "config",
    "context",
    "interrupt_before",
    "interrupt_after",
    "webhook",
    "stream_mode",
    "stream_subgraphs",
    "stream_resumable",
    "durability",
)


def _zone(timezone: str | None) -> dt.tzinfo:
    if not timezone:
        return dt.UTC
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise RunInputError(
            f"unknown timezone {timezone!r} (an IANA name, e.g. Europe/Paris)"
        ) from None


def check_schedule(schedule: str, timezone: str | None) -> None:
    """422 for a schedule croniter cannot read, or an unknown timezone."""
    if not croniter.is_valid(schedule):
        raise RunInputError(f"schedule {schedule!r} is not a cron expression (e.g. '0 9 * * 1')")
    _zone(timezone)


def next_firing(schedule: str, timezone: str | None, after: dt.datetime) -> dt.datetime:
    """The first firing strictly after `after`, in the cron's timezone, as UTC."""
    start = after.astimezone(_zone(timezone))
    return croniter(schedule, start).get_next(dt.datetime).astimezone(dt.UTC)


def _next_run(cron: CronRecord, after: dt.datetime) -> tuple[str | None, bool]:
    """The next firing's time and whether the cron stays enabled (not past its end)."""
    if not cron.enabled:
        return None, False
    upcoming = next_firing(cron.schedule, cron.timezone, after)
    if cron.end_time and upcoming > parse_iso(cron.end_time):
        return None, False
    return iso_utc(upcoming), True


class CronService:
    def __init__(self, runs: RunService) -> None:
        self.runs = runs
        self.persistence = runs.persistence

    async def create(
        self, body: CronCreate, thread_id: str | None, owner: str | None
    ) -> CronRecord:
        """Check the schedule and the run it starts (as a run is checked), then keep it."""
        check_schedule(body.schedule, body.timezone)
        request = body.run_request()
        self.runs.check(request)
        if thread_id is not None:
            if body.on_run_completed is not None:
                raise RunInputError("on_run_completed is for crons without a thread")
            await self.runs.thread_for(thread_id, request, owner)
        now = dt.datetime.now(dt.UTC)
        cron = CronRecord(
            cron_id=str(uuid.uuid4()),
            assistant_id=body.assistant_id,
            thread_id=thread_id,
            schedule=body.schedule,
            payload=request.model_dump(mode="json", exclude_unset=True),
            metadata=body.metadata,
            user_id=owner,
            timezone=body.timezone,
            enabled=body.enabled,
            on_run_completed=body.on_run_completed,
            end_time=iso_utc(body.end_time) if body.end_time else None,
            created_at=iso_utc(now),
            updated_at=iso_utc(now),
        )
        cron.next_run_date, cron.enabled = _next_run(cron, now)
        await self.persistence.save_cron(cron)
        return cron

    async def update(self, cron: CronRecord, patch: CronPatch) -> CronRecord:
        """Apply what the patch sends; the next firing is counted from now."""
        sent = patch.model_dump(mode="json", exclude_unset=True)
        schedule = sent.get("schedule", cron.schedule)
        timezone = sent.get("timezone", cron.timezone)
        check_schedule(schedule, timezone)
        payload: dict[str, Any] = {
            **cron.payload,
            **{key: sent[key] for key in _RUN_FIELDS if key in sent},
        }
        request = RunCreate.model_validate(payload)
        self.runs.check(request)
        now = dt.datetime.now(dt.UTC)
        cron.schedule, cron.timezone = schedule, timezone
        cron.payload = request.model_dump(mode="json", exclude_unset=True)
        if "metadata" in sent:
            cron.metadata = sent["metadata"] or {}
        if "enabled" in sent:
            cron.enabled = bool(sent["enabled"])
        if "on_run_completed" in sent:
            if cron.thread_id is not None and sent["on_run_completed"] is not None:
                raise RunInputError("on_run_completed is for crons without a thread")
            cron.on_run_completed = sent["on_run_completed"]
        if "end_time" in sent:
            cron.end_time = iso_utc(patch.end_time) if patch.end_time else None
        cron.updated_at = iso_utc(now)
        cron.next_run_date, cron.enabled = _next_run(cron, now)
        await self.persistence.save_cron(cron)
        return cron

    async def fire_due(self) -> int:
        """Fire what is due (called by the leader); how many runs were started."""
        now = dt.datetime.now(dt.UTC)
        started = 0
        for cron in await self.persistence.due_crons(iso_utc(now), _DUE_BATCH):
            due = cron.next_run_date
            if due is None:
                continue
            upcoming, enabled = _next_run(cron, now)
            if not await self.persistence.advance_cron(cron.cron_id, due, upcoming, enabled):
                continue  # another worker fired it
            late_s = (now - parse_iso(due)).total_seconds()
            if late_s > MISSED_AFTER_S:
                self._report_missed(cron, parse_iso(due), now)
                continue
            started += await self._fire(cron)
        return started

    def _report_missed(self, cron: CronRecord, due: dt.datetime, now: dt.datetime) -> None:
        missed = 0
        moments = croniter(
            cron.schedule, due.astimezone(_zone(cron.timezone)) - dt.timedelta(seconds=1)
        )
        while missed < _MISSED_COUNT_CAP and moments.get_next(dt.datetime) <= now:
            missed += 1
        metrics.CRON_FIRINGS.labels(result="missed").inc(missed)
        log.warning(
            "cron %s missed %d firing(s) from %s while no worker led; not replayed, next at %s",
            cron.cron_id,
            missed,
            iso_utc(due),
            cron.next_run_date,
        )

    async def _fire(self, cron: CronRecord) -> int:
        payload = dict(cron.payload)
        payload["metadata"] = {**payload.get("metadata", {}), "cron_id": cron.cron_id}
        request = RunCreate.model_validate(payload)
        try:
            if cron.thread_id is not None:
                await self.runs.submit(cron.thread_id, request, cron.user_id)
            else:
                request = request.model_copy(update={"if_not_exists": "create"})
                temporary = cron.on_run_completed != "keep"
                thread_id = str(uuid.uuid4())
                await self.runs.submit(thread_id, request, cron.user_id, temporary=temporary)
        except (ThreadNotFoundError, ThreadBusyError, RunInputError, AssistantNotFoundError) as exc:
            metrics.CRON_FIRINGS.labels(result="refused").inc()
            log.warning("cron %s could not start its run: %s", cron.cron_id, exc)
            return 0
        metrics.CRON_FIRINGS.labels(result="started").inc()
        return 1


class CronScheduler(WorkerLoop):
    """Each worker's loop; only the maintenance leader fires."""

    name = "crons"

    def __init__(self, crons: CronService) -> None:
        super().__init__()
        self.crons = crons

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(CRON_POLL_S)
            if not self.crons.persistence.leads_maintenance:
                continue
            try:
                await self.crons.fire_due()
            except StorageUnavailableError as exc:
                log.warning("crons: storage unavailable (%s); trying again", exc)
            except Exception:
                log.exception("cron pass failed; trying again")
