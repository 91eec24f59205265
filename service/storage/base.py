"""The narrow persistence interface every backend implements.

The HTTP and run layers see only this: a LangGraph checkpointer, a thread guard and
thread records. SQLite and PostgreSQL (and the in-memory ceiling used by the
benchmark) each provide one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore

from service.storage.assistant_records import AssistantRecord
from service.storage.locks import ThreadGuard

ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
IfExists = Literal["raise", "do_nothing"]
PruneStrategy = Literal["delete", "keep_latest"]


@dataclass
class ThreadRecord:
    thread_id: str
    created_at: str
    updated_at: str
    metadata: dict[str, Any] = field(default_factory=dict)
    status: str = "idle"
    error: str | None = None
    # Its own TTL: deleted this many minutes after its last activity (None: THREAD_TTL_DAYS).
    ttl_minutes: float | None = None


# A resumable stream's event: (seq, the SSE event id; event name; data as JSON text).
RunEvent = tuple[int, str, str]

RunStatus = Literal["pending", "running", "success", "error", "timeout", "interrupted"]
CancelAction = Literal["interrupt", "rollback"]


@dataclass
class RunRecord:
    """One run, whatever its endpoint (`service.storage.run_records` has its SQL)."""

    run_id: str
    thread_id: str
    assistant_id: str
    status: str
    multitask_strategy: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""
    worker: str = ""


@dataclass
class CronRecord:
    """A run on a schedule (`service.storage.cron_records` has its SQL). Times are ISO
    UTC text, as `records.iso_utc` writes them, so that they compare as strings."""

    cron_id: str
    assistant_id: str
    thread_id: str | None
    schedule: str
    payload: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    user_id: str | None = None
    timezone: str | None = None
    enabled: bool = True
    on_run_completed: str | None = None
    end_time: str | None = None
    next_run_date: str | None = None
    created_at: str = ""
    updated_at: str = ""


def metadata_matches(metadata: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(metadata.get(key) == value for key, value in wanted.items())


SortBy = Literal["thread_id", "status", "created_at", "updated_at"]
SortOrder = Literal["asc", "desc"]


@dataclass
class ThreadQuery:
    """Which thread records a search or count wants, and in what order."""

    metadata: dict[str, Any] = field(default_factory=dict)
    status: str | None = None  # a stored status: idle, interrupted or error
    ids: list[str] | None = None
    sort_by: SortBy = "updated_at"
    sort_order: SortOrder = "desc"

    def matches(self, record: ThreadRecord) -> bool:
        return (
            metadata_matches(record.metadata, self.metadata)
            and (self.status is None or record.status == self.status)
            and (self.ids is None or record.thread_id in self.ids)
        )


class Persistence(Protocol):
    """One backend: its checkpointer, its guard and its thread records."""

    backend: str
    checkpointer: BaseCheckpointSaver
    guard: ThreadGuard
    # The Store API's long-term memory, shared by all workers; set by `start()`.
    store: BaseStore

    async def create_thread(
        self,
        thread_id: str,
        metadata: dict[str, Any],
        if_exists: IfExists,
        ttl_minutes: float | None = None,
    ) -> tuple[ThreadRecord, bool]:
        """Returns the record and whether it was created now."""
        ...

    async def get_thread(self, thread_id: str) -> ThreadRecord | None: ...

    async def search_threads(
        self, query: ThreadQuery, limit: int, offset: int
    ) -> list[ThreadRecord]: ...

    async def count_threads(self, query: ThreadQuery) -> int: ...

    async def update_thread(
        self, thread_id: str, metadata: dict[str, Any], ttl_minutes: float | None = None
    ) -> ThreadRecord | None:
        """Merge `metadata` into the thread's (top-level keys) and set its TTL when given;
        None if there is no thread."""
        ...

    async def copy_thread(self, source_id: str, target_id: str) -> ThreadRecord:
        """A new thread with the source's checkpoints and metadata (hold the source first)."""
        ...

    async def delete_thread(self, thread_id: str) -> bool: ...

    async def set_thread_error(self, thread_id: str, error: str) -> None: ...

    async def mark_interrupted(self, thread_id: str) -> None:
        """The thread's last run stopped at an interrupt or breakpoint; the next checkpoint
        write sets it back to idle, as it does an error."""
        ...

    async def prune_threads(self, thread_ids: list[str], strategy: PruneStrategy) -> int: ...

    # --- runs ---------------------------------------------------------------------------
    async def create_run(
        self, run: RunRecord, *, unless_queued: bool = False, unless_active: bool = False
    ) -> bool:
        """Record a run that now holds its thread, or (`pending`) waits in the queue.
        With `unless_queued`, only if no pending run of the thread is ahead of it; with
        `unless_active`, only if none of its runs is pending or running; returns whether
        it was recorded."""
        ...

    async def set_run_status(
        self, run_id: str, status: RunStatus, events: tuple[str, list[RunEvent]] | None = None
    ) -> None:
        """A run's final status (a cancel asked of it is done with); with `events`
        (thread id, events), a resumable stream's last events first (SQLite: in the
        same transaction)."""
        ...

    async def next_pending_runs(self, limit: int, worker: str = "") -> list[RunRecord]:
        """The oldest pending run of each thread: those `worker` accepted first, then
        the others, each oldest first."""
        ...

    async def claim_run(self, run_id: str, thread_id: str, worker: str) -> int | None:
        """pending -> running for `worker`, which holds the thread: None if the run was
        taken or cancelled meanwhile, else how many runs a dead worker had left
        `running` on the thread (now `error`)."""
        ...

    async def cancel_run(self, run_id: str, action: CancelAction) -> RunStatus | None:
        """Cancel a pending run where it stands (interrupted, or deleted for rollback) or
        ask the worker running it to stop. Returns its status before, None if it had
        ended (or does not exist)."""
        ...

    async def cancel_requests(self, worker: str) -> dict[str, CancelAction]:
        """The cancels asked of `worker`'s running runs."""
        ...

    async def active_runs(self, thread_id: str | None) -> list[RunRecord]:
        """Pending and running runs, of one thread or of all."""
        ...

    async def queue_stats(self) -> tuple[int, str | None]:
        """How many runs are pending, and when the oldest was accepted."""
        ...

    async def append_run_events(self, thread_id: str, run_id: str, events: list[RunEvent]) -> None:
        """Keep a resumable stream's next events (one transaction)."""
        ...

    async def run_events_after(self, run_id: str, after: int, limit: int) -> list[RunEvent]:
        """A resumable stream's kept events after `after`, in order."""
        ...

    async def get_run(self, thread_id: str, run_id: str) -> RunRecord | None: ...

    async def run_statuses(self, run_ids: list[str]) -> dict[str, RunStatus]:
        """The status of each of these runs that still has a record (one read)."""
        ...

    # --- assistants ---------------------------------------------------------------------
    async def create_assistant(self, record: AssistantRecord) -> bool:
        """Its first version; False (nothing written) if the id is taken."""
        ...

    async def add_assistant_version(self, record: AssistantRecord) -> AssistantRecord | None:
        """`record`'s fields as the assistant's next version, now in use; None if there is
        no such assistant."""
        ...

    async def set_assistant_version(self, assistant_id: str, version: int) -> bool:
        """Use one of the assistant's versions; False if it has none by that number."""
        ...

    async def get_assistant(self, assistant_id: str) -> AssistantRecord | None: ...

    async def list_assistants(self) -> list[AssistantRecord]:
        """Every stored assistant as its version in use, oldest first."""
        ...

    async def list_assistant_versions(self, assistant_id: str) -> list[AssistantRecord]:
        """Every version, newest first (empty: no such assistant)."""
        ...

    async def delete_assistant(self, assistant_id: str) -> bool: ...

    # --- crons --------------------------------------------------------------------------
    async def save_cron(self, cron: CronRecord) -> None:
        """Create or replace a cron."""
        ...

    async def get_cron(self, cron_id: str) -> CronRecord | None: ...

    async def delete_cron(self, cron_id: str) -> bool: ...

    async def list_crons(
        self, assistant_id: str | None, thread_id: str | None, enabled: bool | None
    ) -> list[CronRecord]:
        """Crons matching the filters given, oldest first."""
        ...

    async def due_crons(self, now: str, limit: int) -> list[CronRecord]:
        """Enabled crons whose next firing is at or before `now`, earliest first."""
        ...

    async def advance_cron(
        self, cron_id: str, fired: str, next_run_date: str | None, enabled: bool
    ) -> bool:
        """Move a cron past its firing at `fired`; False if another worker already did."""
        ...

    async def list_runs(
        self, thread_id: str, status: RunStatus | None, limit: int, offset: int
    ) -> list[RunRecord]:
        """Newest first."""
        ...

    async def delete_run(self, thread_id: str, run_id: str) -> bool:
        """Delete a finished run's record; False if none such (an active run stays)."""
        ...

    @property
    def leads_maintenance(self) -> bool:
        """Whether this worker is the maintenance leader now (it also fires crons)."""
        ...

    async def start(self) -> None:
        """Open pools and start background work (maintenance), once per worker, in its loop."""
        ...

    async def touch(self, thread_id: str) -> None:
        """Mark a thread active after a successful run, where the checkpoint write did not."""
        ...

    async def check_ready(self) -> None:
        """A real read through the store; raises when it cannot serve."""
        ...

    def info(self) -> dict[str, Any]: ...

    def refresh_gauges(self) -> None:
        """Set this backend's scrape-time gauges (file sizes, pools). Blocking: run it off
        the event loop. Never raises: a scrape must not fail because storage is slow."""
        ...

    async def aclose(self) -> None: ...
