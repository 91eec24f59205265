"""Run records, crons and assistants for the benchmark backends: in this worker's
memory, like their threads."""

from __future__ import annotations

import dataclasses

from service.storage.assistant_records import AssistantRecord
from service.storage.base import CancelAction, CronRecord, RunEvent, RunRecord, RunStatus
from service.storage.records import iso_utc, utcnow_iso
from service.storage.run_records import ACTIVE_STATUSES, own_first_cutoff


class InMemoryRuns:
    """The run half of the Persistence interface, kept in a dict."""

    def __init__(self) -> None:
        self._runs: dict[str, RunRecord] = {}
        self._cancels: dict[str, CancelAction] = {}
        self._events: dict[str, list[RunEvent]] = {}
        self._crons: dict[str, CronRecord] = {}
        # Each assistant's versions, oldest first, the one in use, and when that changed.
        self._assistants: dict[str, tuple[list[AssistantRecord], int, str]] = {}

    async def create_run(
        self, run: RunRecord, *, unless_queued: bool = False, unless_active: bool = False
    ) -> bool:
        blocking = ("pending", "running") if unless_active else ("pending",)
        if (unless_queued or unless_active) and any(
            r.thread_id == run.thread_id and r.status in blocking for r in self._runs.values()
        ):
            return False
        self._runs[run.run_id] = dataclasses.replace(run)
        return True

    async def set_run_status(
        self, run_id: str, status: RunStatus, events: tuple[str, list[RunEvent]] | None = None
    ) -> None:
        if events:
            await self.append_run_events(events[0], run_id, events[1])
        self._cancels.pop(run_id, None)
        if run := self._runs.get(run_id):
            run.status, run.updated_at = status, utcnow_iso()

    async def next_pending_runs(self, limit: int, worker: str = "") -> list[RunRecord]:
        first: dict[str, RunRecord] = {}
        for run in sorted(self._runs.values(), key=lambda r: r.run_id):
            if run.status == "pending":
                first.setdefault(run.thread_id, run)
        cutoff = iso_utc(own_first_cutoff())
        ordered = sorted(
            first.values(),
            key=lambda r: (r.worker != worker and r.created_at >= cutoff, r.run_id),
        )
        return ordered[:limit]

    async def claim_run(self, run_id: str, thread_id: str, worker: str) -> int | None:
        run = self._runs.get(run_id)
        if run is None or run.status != "pending":
            return None
        now = utcnow_iso()
        run.status, run.worker, run.updated_at = "running", worker, now
        stale = [
            other
            for other in self._runs.values()
            if other.thread_id == thread_id and other.status == "running" and other is not run
        ]
        for other in stale:
            other.status, other.updated_at = "error", now
            self._cancels.pop(other.run_id, None)
        return len(stale)

    async def cancel_run(self, run_id: str, action: CancelAction) -> RunStatus | None:
        run = self._runs.get(run_id)
        if run is None or run.status not in ACTIVE_STATUSES:
            return None
        before: RunStatus = "pending" if run.status == "pending" else "running"
        if before == "running":
            self._cancels[run_id] = action
        elif action == "rollback":
            del self._runs[run_id]
        else:
            run.status, run.updated_at = "interrupted", utcnow_iso()
        return before

    async def cancel_requests(self, worker: str) -> dict[str, CancelAction]:
        return {
            run_id: action
            for run_id, action in self._cancels.items()
            if (run := self._runs.get(run_id)) is not None and run.worker == worker
        }

    async def active_runs(self, thread_id: str | None) -> list[RunRecord]:
        return sorted(
            (
                r
                for r in self._runs.values()
                if r.status in ACTIVE_STATUSES and thread_id in (None, r.thread_id)
            ),
            key=lambda r: r.run_id,
        )

    async def queue_stats(self) -> tuple[int, str | None]:
        pending = [r.created_at for r in self._runs.values() if r.status == "pending"]
        return len(pending), min(pending, default=None)

    async def append_run_events(self, thread_id: str, run_id: str, events: list[RunEvent]) -> None:
        kept = self._events.setdefault(run_id, [])
        known = {event[0] for event in kept}
        kept.extend(event for event in events if event[0] not in known)

    async def run_events_after(self, run_id: str, after: int, limit: int) -> list[RunEvent]:
        return [event for event in self._events.get(run_id, []) if event[0] > after][:limit]

    async def get_run(self, thread_id: str, run_id: str) -> RunRecord | None:
        run = self._runs.get(run_id)
        return run if run is not None and run.thread_id == thread_id else None

    async def run_statuses(self, run_ids: list[str]) -> dict[str, RunStatus]:
        return {run_id: self._runs[run_id].status for run_id in run_ids if run_id in self._runs}

    async def list_runs(
        self, thread_id: str, status: RunStatus | None, limit: int, offset: int
    ) -> list[RunRecord]:
        found = [
            r
            for r in self._runs.values()
            if r.thread_id == thread_id and (status is None or r.status == status)
        ]
        found.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
        return found[offset : offset + limit]

    async def delete_run(self, thread_id: str, run_id: str) -> bool:
        run = await self.get_run(thread_id, run_id)
        if run is None or run.status in ACTIVE_STATUSES:
            return False
        del self._runs[run_id]
        return True

    async def create_assistant(self, record: AssistantRecord) -> bool:
        if record.assistant_id in self._assistants:
            return False
        now = record.created_at or utcnow_iso()
        first = dataclasses.replace(record, version=1, created_at=now, updated_at=now)
        self._assistants[record.assistant_id] = ([first], 1, now)
        return True

    async def add_assistant_version(self, record: AssistantRecord) -> AssistantRecord | None:
        if record.assistant_id not in self._assistants:
            return None
        versions, _, _ = self._assistants[record.assistant_id]
        now = utcnow_iso()
        added = dataclasses.replace(record, version=len(versions) + 1, created_at=now)
        self._assistants[record.assistant_id] = ([*versions, added], added.version, now)
        return await self.get_assistant(record.assistant_id)

    async def set_assistant_version(self, assistant_id: str, version: int) -> bool:
        versions, _, _ = self._assistants.get(assistant_id, ([], 0, ""))
        if not 1 <= version <= len(versions):
            return False
        self._assistants[assistant_id] = (versions, version, utcnow_iso())
        return True

    async def get_assistant(self, assistant_id: str) -> AssistantRecord | None:
        if assistant_id not in self._assistants:
            return None
        versions, current, updated = self._assistants[assistant_id]
        return dataclasses.replace(
            versions[current - 1], created_at=versions[0].created_at, updated_at=updated
        )

    async def list_assistants(self) -> list[AssistantRecord]:
        found = [await self.get_assistant(assistant_id) for assistant_id in self._assistants]
        return [record for record in found if record is not None]

    async def list_assistant_versions(self, assistant_id: str) -> list[AssistantRecord]:
        versions, _, _ = self._assistants.get(assistant_id, ([], 0, ""))
        return [dataclasses.replace(v, updated_at=v.created_at) for v in reversed(versions)]

    async def delete_assistant(self, assistant_id: str) -> bool:
        return self._assistants.pop(assistant_id, None) is not None

    async def save_cron(self, cron: CronRecord) -> None:
        kept = self._crons.get(cron.cron_id)
        created = kept.created_at if kept else cron.created_at
        self._crons[cron.cron_id] = dataclasses.replace(cron, created_at=created)

    async def get_cron(self, cron_id: str) -> CronRecord | None:
        cron = self._crons.get(cron_id)
        return dataclasses.replace(cron) if cron else None

    async def delete_cron(self, cron_id: str) -> bool:
        return self._crons.pop(cron_id, None) is not None

    async def list_crons(
        self, assistant_id: str | None, thread_id: str | None, enabled: bool | None
    ) -> list[CronRecord]:
        wanted = {"assistant_id": assistant_id, "thread_id": thread_id, "enabled": enabled}
        return [
            dataclasses.replace(cron)
            for cron in sorted(self._crons.values(), key=lambda c: (c.created_at, c.cron_id))
            if all(value is None or getattr(cron, key) == value for key, value in wanted.items())
        ]

    async def due_crons(self, now: str, limit: int) -> list[CronRecord]:
        due = [
            cron
            for cron in self._crons.values()
            if cron.enabled and cron.next_run_date is not None and cron.next_run_date <= now
        ]
        due.sort(key=lambda cron: cron.next_run_date or "")
        return [dataclasses.replace(cron) for cron in due[:limit]]

    async def advance_cron(
        self, cron_id: str, fired: str, next_run_date: str | None, enabled: bool
    ) -> bool:
        cron = self._crons.get(cron_id)
        if cron is None or cron.next_run_date != fired:
            return False
        cron.next_run_date, cron.enabled, cron.updated_at = next_run_date, enabled, utcnow_iso()
        return True

    def forget_thread(self, thread_id: str) -> None:
        for run_id in [r.run_id for r in self._runs.values() if r.thread_id == thread_id]:
            del self._runs[run_id]
            self._events.pop(run_id, None)
        for cron_id in [c.cron_id for c in self._crons.values() if c.thread_id == thread_id]:
            del self._crons[cron_id]
