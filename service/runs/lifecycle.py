"""Run lifecycle: validate, take the thread (or queue the run), start its execution
(`service.runs.execution`), cancel and join it wherever it runs.

A run holds its thread in the guard from before it reads the thread's latest
checkpoint until after its last checkpoint is committed, so concurrent runs on one
thread line up instead of forking the history. A client that leaves while its run
waits for the thread never starts it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.base.id import uuid6
from langgraph.graph.state import CompiledStateGraph

from service.observability import metrics
from service.runs.assistants import AssistantService, check_context, merged_config
from service.runs.commands import check_breakpoints, check_resume, to_command
from service.runs.end_watch import EndWatch
from service.runs.errors import (
    ClientGone,
    ClientGoneError,
    RunInputError,
    RunTooLargeError,
)
from service.runs.execution import PreparedRun, RunExecution
from service.schemas.models import RunCreate
from service.settings import Settings
from service.storage.assistant_records import AssistantRecord
from service.storage.base import CancelAction, Persistence, RunRecord, RunStatus, ThreadRecord
from service.storage.errors import (
    CheckpointNotFoundError,
    ThreadNotFoundError,
)
from service.storage.locks import ThreadBusyError, ThreadWaitTimeoutError
from service.storage.records import seconds_since, utcnow_iso
from service.storage.run_records import ACTIVE_STATUSES
from service.storage.store import STORE_OWNER_KEY

log = logging.getLogger(__name__)


@dataclass
class JoinedRun:
    """A run that has ended: its status, and its final values when it ran on the joining
    worker and ended on its own (None: read them from the thread)."""

    status: RunStatus
    values: dict[str, Any] | None = None


def worker_name() -> str:
    """Which worker runs a run, in its record (read at run time: workers fork)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def new_run_id() -> str:
    """Time-ordered (UUID v6): the order of run ids is the order runs were accepted in."""
    return str(uuid6())


# A wait or stream run that finds background runs accepted before it lets them go
# first, and tries again after this long.
_QUEUE_YIELD_S = 0.02
# A thread held while none of its runs is active is between two runs: one has recorded
# its end and is letting go (a join on another worker may already have returned), or a
# state update holds it. `reject` waits this long for it before it answers 409.
_SETTLE_S = 0.5


_MESSAGE_ROLES = {"user", "human"}
# What the service decides itself; a run's `config.configurable` cannot set it.
_RESERVED_CONFIGURABLE = {"thread_id", "checkpoint_id", "checkpoint_ns", "checkpoint_map", "run_id"}


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            elif isinstance(part, str):
                parts.append(part)
            else:
                raise RunInputError("message content parts must be text")
        return "".join(parts)
    raise RunInputError("each message needs a text `content`")


def validate_input(payload: dict[str, Any] | None, settings: Settings) -> dict[str, Any]:
    """The graph input: only user messages, within the configured limits."""
    if payload is None:
        raise RunInputError("`input` is required: {'messages': [{'role': 'user', ...}]}")
    extra = set(payload) - {"messages"}
    if extra:
        raise RunInputError(f"input may only contain `messages`; got {sorted(extra)}")
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RunInputError("input.messages must be a non-empty list")
    if len(messages) > settings.max_messages_per_request:
        raise RunTooLargeError(
            f"{len(messages)} messages in one request; the limit is "
            f"{settings.max_messages_per_request} (MAX_MESSAGES_PER_REQUEST)"
        )
    cleaned = []
    for message in messages:
        if isinstance(message, str):
            message = {"role": "user", "content": message}
        if not isinstance(message, dict):
            raise RunInputError("each message must be an object with `role` and `content`")
        role = message.get("role", message.get("type"))
        if role not in _MESSAGE_ROLES:
            raise RunInputError(f"message role must be 'user' or 'human'; got {role!r}")
        text = _message_text(message)
        if len(text) > settings.max_message_chars:
            raise RunTooLargeError(
                f"a message has {len(text)} characters; the limit is "
                f"{settings.max_message_chars} (MAX_MESSAGE_CHARS)"
            )
        item: dict[str, Any] = {"role": "user", "content": text}
        if isinstance(message.get("id"), str) and len(message["id"]) <= 128:
            item["id"] = message["id"]
        cleaned.append(item)
    return {"messages": cleaned}


def _owned(metadata: dict[str, Any], owner: str | None) -> bool:
    return owner is None or metadata.get("owner") == owner


# What the service adds to a run's metadata and kwargs; the rest is what the client sent.
_SERVICE_METADATA = ("run_id", "thread_id", "assistant_id")
_SERVICE_KWARGS = ("temporary", "owner")


def stored_request(run: RunRecord) -> dict[str, Any]:
    """The request a queued run was accepted with, from its record."""
    body = {key: value for key, value in run.kwargs.items() if key not in _SERVICE_KWARGS}
    body["assistant_id"] = run.assistant_id
    body["multitask_strategy"] = run.multitask_strategy
    body["metadata"] = {
        key: value for key, value in run.metadata.items() if key not in _SERVICE_METADATA
    }
    return body


async def _unless_gone(step: Coroutine[Any, Any, Any], client_gone: ClientGone | None) -> Any:
    """Await `step`, unless the client leaves first: then cancel it, raise ClientGoneError."""
    if client_gone is None:
        return await step
    work = asyncio.ensure_future(step)
    gone = asyncio.ensure_future(client_gone())
    try:
        await asyncio.wait((work, gone), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        # The request itself is cancelled: the step must not go on (and take the thread) alone.
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        raise
    finally:
        gone.cancel()
    if not work.done() or work.cancelled():
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        metrics.RUN_CLIENT_DISCONNECTS.labels(action="not_started").inc()
        raise ClientGoneError("the client left before its run started; nothing was run")
    return work.result()


class RunService:
    def __init__(
        self,
        graph: CompiledStateGraph,
        persistence: Persistence,
        settings: Settings,
        graph_id: str = "agent",
    ) -> None:
        self.graph = graph
        # The graph's name, which a run's thread records with the assistant it ran as.
        self.graph_id = graph_id
        # Told (url, outcome) when a run that names a webhook ends; set by the app.
        self.on_run_end: Callable[[str, dict[str, Any]], None] | None = None
        context_schema = getattr(getattr(graph, "builder", None), "context_schema", None)
        self.assistants = AssistantService(persistence, graph_id, context_schema)
        self.persistence = persistence
        self.settings = settings
        # This worker's runs in flight, by id (for cancel and join).
        self.executions: dict[str, RunExecution] = {}
        # Set when a background run was queued here or a slot came free.
        self.queued = asyncio.Event()
        # Where joins of runs not executing here wait.
        self.end_watch = EndWatch(persistence, slow_interval_s=settings.run_queue_poll_s)

    def check(self, request: RunCreate) -> tuple[str, Any]:
        """What needs no storage: options, strategy, input, breakpoints. Returns the
        strategy and the graph's input."""
        strategy = request.multitask_strategy or self.settings.default_multitask_strategy
        graph_input = self._graph_input(request)
        self._check_context(request)
        check_breakpoints(self.graph, "interrupt_before", request.interrupt_before)
        check_breakpoints(self.graph, "interrupt_after", request.interrupt_after)
        return strategy, graph_input

    async def thread_for(
        self, thread_id: str, request: RunCreate, owner: str | None
    ) -> ThreadRecord | None:
        """The thread's record (None: to be created); another owner's thread is missing."""
        record = await self.persistence.get_thread(thread_id)
        if record is not None and not _owned(record.metadata, owner):
            raise ThreadNotFoundError(thread_id)
        if record is None and request.if_not_exists != "create":
            raise ThreadNotFoundError(thread_id)
        return record

    async def _create_thread(
        self, thread_id: str, owner: str | None, request: RunCreate
    ) -> ThreadRecord:
        """`if_not_exists=create`: the thread, the owner's (one made meanwhile by another
        owner is missing)."""
        metadata = self._assistant_metadata(request)
        if owner is not None:
            metadata["owner"] = owner
        created, _ = await self.persistence.create_thread(thread_id, metadata, "do_nothing")
        if not _owned(created.metadata, owner):
            raise ThreadNotFoundError(thread_id)
        return created

    def _assistant_metadata(self, request: RunCreate) -> dict[str, Any]:
        return {"graph_id": self.graph_id, "assistant_id": request.assistant_id}

    async def _note_assistant(self, record: ThreadRecord, request: RunCreate) -> None:
        """The thread's metadata names the graph and assistant of its latest run, as
        LangGraph Server records them (agent-chat-ui lists threads by `graph_id`); a
        write only when they change."""
        wanted = self._assistant_metadata(request)
        if any(record.metadata.get(key) != value for key, value in wanted.items()):
            await self.persistence.update_thread(record.thread_id, wanted)

    def _prepared(
        self,
        thread_id: str,
        run_id: str,
        request: RunCreate,
        graph_input: Any,
        owner: str | None,
        assistant: AssistantRecord,
    ) -> PreparedRun:
        """The run as it will execute: the assistant's config and context under the
        request's own."""
        context = {**assistant.context, **(request.context or {})}
        return PreparedRun(
            thread_id=thread_id,
            run_id=run_id,
            graph_input=graph_input,
            config=self._config(thread_id, run_id, request, owner, assistant),
            durability=request.durability or self.settings.checkpoint_durability,
            stream_modes=request.stream_modes(),
            subgraphs=request.stream_subgraphs,
            context=context or None,
            webhook=request.webhook,
            on_disconnect=request.on_disconnect or "continue",
            interrupt_before=request.interrupt_before,
            interrupt_after=request.interrupt_after,
            resumable=request.stream_resumable,
        )

    async def prepare(
        self,
        thread_id: str,
        request: RunCreate,
        owner: str | None = None,
        client_gone: ClientGone | None = None,
    ) -> PreparedRun:
        """Validate, check the thread, and take it in the guard, behind the runs accepted
        before it (a background run's place in the queue counts); record the run.

        With authentication on, another owner's thread is reported as missing. If the
        client leaves while the run waits for the thread, ClientGoneError. With
        `interrupt` or `rollback`, the thread's active runs are cancelled first.
        """
        strategy, graph_input = self.check(request)
        assistant = await self.assistants.get(request.assistant_id, owner)
        if request.after_seconds:
            await _unless_gone(asyncio.sleep(request.after_seconds), client_gone)
        record = await self.thread_for(thread_id, request, owner)
        prepared = self._prepared(thread_id, new_run_id(), request, graph_input, owner, assistant)
        if strategy in ("interrupt", "rollback"):
            await self.cancel_thread_runs(thread_id, strategy)
        wait = strategy != "reject"
        deadline = time.monotonic() + self.settings.enqueue_timeout_s
        while True:
            hold = self.persistence.guard.hold(
                thread_id, wait=wait, timeout_s=max(0.0, deadline - time.monotonic()), counted=wait
            )
            try:
                try:
                    waited = await _unless_gone(
                        prepared.stack.enter_async_context(hold), client_gone
                    )
                except ThreadBusyError:
                    if wait:
                        raise
                    await self._settled_hold(prepared.stack, thread_id, client_gone)
                    waited = True
                if record is None:
                    record = await self._create_thread(thread_id, owner, request)
                elif waited is not False and await self.persistence.get_thread(thread_id) is None:
                    # Deleted while this run waited its turn.
                    raise ThreadNotFoundError(thread_id)
                await self._check_start(prepared, request)
                await self._note_assistant(record, request)
                run = self._record(prepared, request, strategy, "running")
                if await self.persistence.create_run(run, unless_queued=True):
                    return prepared
            except BaseException:
                await prepared.stack.aclose()
                raise
            # Background runs accepted before this one wait for the thread: they go first.
            await prepared.stack.aclose()
            prepared.stack = AsyncExitStack()
            if not wait:
                metrics.GUARD_REJECTIONS.labels(reason="reject").inc()
                raise ThreadBusyError(thread_id)
            if time.monotonic() >= deadline:
                metrics.GUARD_REJECTIONS.labels(reason="timeout").inc()
                raise ThreadWaitTimeoutError(thread_id)
            await _unless_gone(asyncio.sleep(_QUEUE_YIELD_S), client_gone)

    async def _settled_hold(
        self, stack: AsyncExitStack, thread_id: str, client_gone: ClientGone | None
    ) -> None:
        """`reject` on a held thread: 409, unless none of its runs is active and it is let
        go within _SETTLE_S; then `stack` holds it."""
        if await self.persistence.active_runs(thread_id):
            metrics.GUARD_REJECTIONS.labels(reason="reject").inc()
            raise ThreadBusyError(thread_id)
        hold = self.persistence.guard.hold(thread_id, wait=True, timeout_s=_SETTLE_S, counted=False)
        try:
            await _unless_gone(stack.enter_async_context(hold), client_gone)
        except ThreadWaitTimeoutError:
            metrics.GUARD_REJECTIONS.labels(reason="reject").inc()
            raise ThreadBusyError(thread_id) from None

    async def submit(
        self,
        thread_id: str,
        request: RunCreate,
        owner: str | None = None,
        *,
        temporary: bool = False,
    ) -> RunRecord:
        """Accept a background run: checked like any run, then queued as `pending` for
        whichever worker takes it. Only `reject` refuses a busy thread (409)."""
        strategy, _ = self.check(request)
        assistant = await self.assistants.get(request.assistant_id, owner)
        record = await self.thread_for(thread_id, request, owner)
        reject = record is not None and strategy == "reject"
        if reject:
            await self._unless_held(thread_id)
        if record is None:
            await self._create_thread(thread_id, owner, request)
        elif strategy in ("interrupt", "rollback"):
            await self.cancel_thread_runs(thread_id, strategy)
        prepared = self._prepared(thread_id, new_run_id(), request, None, owner, assistant)
        if record is not None:
            await self._check_start(prepared, request)  # checked again when it starts
        run = self._record(prepared, request, strategy, "pending")
        if temporary:
            run.kwargs["temporary"] = True
        if owner is not None:  # whose store the run reads and writes, once it starts
            run.kwargs["owner"] = owner
        # With `reject`, recorded only if none of the thread's runs is active (one read).
        if not await self.persistence.create_run(run, unless_active=reject):
            metrics.GUARD_REJECTIONS.labels(reason="reject").inc()
            raise ThreadBusyError(thread_id)
        if record is not None:
            await self._note_assistant(record, request)
        self.queued.set()
        return run

    async def _unless_held(self, thread_id: str) -> None:
        """`reject` for a background run: 409 if the thread is held and stays held (see
        _settled_hold); a free thread costs one probe of the guard."""
        async with AsyncExitStack() as stack:  # held for a moment, then let go
            hold = self.persistence.guard.hold(thread_id, wait=False, timeout_s=0, counted=False)
            try:
                await stack.enter_async_context(hold)
            except ThreadBusyError:
                await self._settled_hold(stack, thread_id, None)

    @staticmethod
    def not_due(run: RunRecord) -> bool:
        """A pending run whose `after_seconds` have not passed: it waits, keeping its
        thread's later runs behind it."""
        delay = run.kwargs.get("after_seconds")
        return bool(delay) and seconds_since(run.created_at) < delay

    async def start_queued(self, run: RunRecord) -> bool:
        """Start a pending run if its thread is free and no other worker took it first.
        Returns whether the run is off the queue (started, or failed its checks)."""
        hold = self.persistence.guard.hold(run.thread_id, wait=False, timeout_s=0, counted=False)
        stack = AsyncExitStack()
        try:
            await stack.enter_async_context(hold)
        except ThreadBusyError:
            return False
        try:
            recovered = await self.persistence.claim_run(run.run_id, run.thread_id, worker_name())
        except BaseException:
            await stack.aclose()
            raise
        if recovered is None:
            await stack.aclose()
            return False
        if recovered:
            metrics.RUNS_RECOVERED.inc(recovered)
            log.warning(
                "%d run(s) on thread %s outlived their worker: error", recovered, run.thread_id
            )
        try:
            request = RunCreate.model_validate(stored_request(run))
            _, graph_input = self.check(request)
            owner = run.kwargs.get("owner")
            assistant = await self.assistants.get(request.assistant_id, owner)
            prepared = self._prepared(
                run.thread_id, run.run_id, request, graph_input, owner, assistant
            )
            prepared.stack = stack
            prepared.temporary = bool(run.kwargs.get("temporary"))
            await self._check_start(prepared, request)
        except Exception as exc:
            log.warning("queued run %s cannot start: %s", run.run_id, exc)
            await self.persistence.set_run_status(run.run_id, "error")
            await stack.aclose()
            if run.kwargs.get("temporary"):
                await self.persistence.delete_thread(run.thread_id)
            return True
        metrics.RUN_START_SECONDS.observe(max(0.0, seconds_since(run.created_at)))
        execution = RunExecution(self, prepared, stream=prepared.resumable, background=True)
        self._launch(execution, None)
        return True

    async def cancel(self, run: RunRecord, action: CancelAction) -> RunStatus | None:
        """Cancel a run wherever it is: here (at once), in the queue, or on another
        worker (which sees the request within RUN_QUEUE_POLL_S). Returns the status it
        had, None if it had already ended."""
        execution = self.executions.get(run.run_id)
        if execution is not None:
            execution.cancel(action)
            return "running"
        status = await self.persistence.cancel_run(run.run_id, action)
        if status is not None:
            metrics.RUN_CANCELLATIONS.labels(action=action, stage=status).inc()
        return status

    async def cancel_thread_runs(self, thread_id: str, action: CancelAction) -> None:
        """multitask_strategy interrupt / rollback: stop what the thread is doing."""
        for run in await self.persistence.active_runs(thread_id):
            await self.cancel(run, action)

    async def cancel_many(
        self,
        owner: str | None,
        *,
        thread_id: str | None,
        run_ids: list[str] | None,
        status: RunStatus | None,
        action: CancelAction,
    ) -> int:
        """Cancel the owner's active runs that match; how many were."""
        if thread_id is not None:
            record = await self.persistence.get_thread(thread_id)
            if record is None or not _owned(record.metadata, owner):
                raise ThreadNotFoundError(thread_id)
        runs = await self.persistence.active_runs(thread_id)
        if run_ids is not None:
            wanted = set(run_ids)
            runs = [run for run in runs if run.run_id in wanted]
        if status is not None:
            runs = [run for run in runs if run.status == status]
        owned: dict[str, bool] = {}
        cancelled = 0
        for run in runs:
            if run.thread_id not in owned:
                record = await self.persistence.get_thread(run.thread_id)
                owned[run.thread_id] = record is not None and _owned(record.metadata, owner)
            if owned[run.thread_id] and await self.cancel(run, action) is not None:
                cancelled += 1
        return cancelled

    async def apply_cancel_requests(self) -> None:
        """Cancels asked by other workers of the runs this worker executes."""
        if not self.executions:
            return
        for run_id, action in (await self.persistence.cancel_requests(worker_name())).items():
            execution = self.executions.get(run_id)
            if execution is not None:
                execution.cancel(action)

    async def join(self, thread_id: str, run_id: str) -> JoinedRun | None:
        """Wait until the run has ended, wherever it runs; its final status, and its own
        final values if it ran on this worker (None: gone). A run executing here is
        waited for on its task; one pending or executing elsewhere, in the end watch."""
        while True:
            execution = self.executions.get(run_id)
            if execution is not None and execution.prepared.thread_id == thread_id:
                await asyncio.wait({execution.task})
                values = execution.final_values()
                if values is not None and execution.run_status is not None:
                    return JoinedRun(execution.run_status, values)  # its record says so too
            run = await self.persistence.get_run(thread_id, run_id)
            if run is None:
                return None
            if run.status not in ACTIVE_STATUSES:
                return JoinedRun(run.status)
            if run_id not in self.executions:
                accepted_here = run.status == "pending" and run.worker == worker_name()
                await self.end_watch.until_changed(run_id, expected_here=accepted_here)

    def _record(
        self, prepared: PreparedRun, request: RunCreate, strategy: str, status: RunStatus
    ) -> RunRecord:
        now = utcnow_iso()
        kwargs = request.model_dump(
            mode="json",
            exclude_none=True,
            exclude={"assistant_id", "metadata", "multitask_strategy"},
        )
        return RunRecord(
            run_id=prepared.run_id,
            thread_id=prepared.thread_id,
            assistant_id=request.assistant_id,
            status=status,
            multitask_strategy=strategy,
            metadata=prepared.config["metadata"],
            kwargs=kwargs,
            created_at=now,
            updated_at=now,
            worker=worker_name(),
        )

    def _check_context(self, request: RunCreate) -> None:
        """The run's `context` fits the graph's context schema."""
        check_context(self.assistants.context_schema, request.context)

    def _graph_input(self, request: RunCreate) -> Any:
        if request.command is not None:
            if request.input is not None:
                raise RunInputError("send either `input` or `command`, not both")
            return to_command(request.command, self.graph, self.settings)
        if request.input is None:
            return None  # continue from the thread's checkpoint (after a breakpoint)
        return validate_input(request.input, self.settings)

    async def _check_start(self, prepared: PreparedRun, request: RunCreate) -> None:
        """Under the guard: the checkpoint to fork from exists; a resume has its interrupt."""
        command = request.command
        start = request.start_checkpoint()
        if start is None and (command is None or "resume" not in command.model_fields_set):
            return
        snapshot = await self.graph.aget_state(prepared.config)
        if start is not None and snapshot.metadata is None:
            raise CheckpointNotFoundError(prepared.thread_id, start[0])
        if command is not None and "resume" in command.model_fields_set:
            check_resume(snapshot, command.resume)

    def _config(
        self,
        thread_id: str,
        run_id: str,
        request: RunCreate,
        owner: str | None,
        assistant: AssistantRecord,
    ) -> dict[str, Any]:
        limit, sent_configurable = merged_config(assistant.config, request.config)
        metadata = {
            key: value
            for key, value in request.metadata.items()
            if isinstance(key, str) and not key.startswith("__")
        }
        metadata.update(run_id=run_id, thread_id=thread_id, assistant_id=request.assistant_id)
        configurable: dict[str, Any] = {
            key: value
            for key, value in sent_configurable.items()
            if isinstance(key, str)
            and key not in _RESERVED_CONFIGURABLE
            and not key.startswith("__")
        }
        configurable["thread_id"] = thread_id
        if owner is not None:
            configurable[STORE_OWNER_KEY] = owner
        start = request.start_checkpoint()
        if start is not None:
            configurable.update(checkpoint_id=start[0], checkpoint_ns=start[1])
        return {
            "configurable": configurable,
            "metadata": metadata,
            "run_id": run_id,
            "recursion_limit": limit or 25,
        }

    async def start(
        self,
        thread_id: str,
        request: RunCreate,
        owner: str | None = None,
        client_gone: ClientGone | None = None,
        *,
        stream: bool = False,
        temporary: bool = False,
    ) -> RunExecution:
        """Prepare the run and start it in its own task."""
        prepared = await self.prepare(thread_id, request, owner, client_gone)
        prepared.temporary = temporary
        execution = RunExecution(self, prepared, stream=stream)
        self._launch(execution, client_gone)
        return execution

    def _launch(self, execution: RunExecution, client_gone: ClientGone | None) -> None:
        execution.start(client_gone)
        self.executions[execution.run_id] = execution
        self.end_watch.started_here(execution.run_id)

        def forget(_task: asyncio.Task[Any]) -> None:
            self.executions.pop(execution.run_id, None)
            if execution.background:
                self.queued.set()  # a slot is free, and the thread may have a next run

        execution.task.add_done_callback(forget)

    @property
    def background_active(self) -> int:
        return sum(1 for execution in self.executions.values() if execution.background)

    async def drain(self, timeout_s: float) -> None:
        """Let runs in flight (their clients may be gone) finish before the worker closes."""
        if self.executions:
            tasks = {execution.task for execution in self.executions.values()}
            await asyncio.wait(tasks, timeout=timeout_s)
