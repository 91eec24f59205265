"""One run's own task: the graph, its timeout, its client's departure, cancels, and its
outcome, written while the run still holds its thread.

The graph runs in a task of its own, not in the request's, so what happens to the
client decides the run's fate only as the client asked: one that leaves a run in
flight cancels it with `on_disconnect="cancel"` and lets it finish with `"continue"`
(the default, as in LangGraph Server). Once a side effect has begun
(`service.side_effects`), neither the client, a cancel nor RUN_TIMEOUT_S stops the
run: it ends on its own and is persisted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langgraph.errors import GraphRecursionError

from service import side_effects
from service.observability import metrics
from service.runs.errors import ClientGone, ClientGoneError, RunLimitError, RunTimeoutError
from service.runs.event_log import EventLog
from service.runs.serialize import to_jsonable
from service.runs.stream_modes import StreamTranslator, graph_modes
from service.storage.base import CancelAction, RunStatus
from service.storage.errors import StorageUnavailableError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from service.runs.lifecycle import RunService

log = logging.getLogger(__name__)


@dataclass
class PreparedRun:
    """A validated run that holds its thread until `stack` closes.

    `graph_input` is new input, a `Command`, or None to continue from where the thread
    stopped (after a breakpoint).
    """

    thread_id: str
    run_id: str
    graph_input: Any
    config: dict[str, Any]
    durability: str
    stream_modes: list[str]
    on_disconnect: str = "continue"
    # Events from inside subgraphs too, each under its namespace (`stream_subgraphs`).
    subgraphs: bool = False
    # The run's `context` (LangGraph's runtime context), None when not sent.
    context: dict[str, Any] | None = None
    interrupt_before: Any = None
    interrupt_after: Any = None
    # A stateless run's thread, deleted once the run has ended.
    temporary: bool = False
    # Its events are kept for a join or a reconnect on any worker (`stream_resumable`).
    resumable: bool = False
    # Where the run's outcome is POSTed once it has ended (`webhook`).
    webhook: str | None = None
    stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    @property
    def breakpoints(self) -> dict[str, Any]:
        """The static breakpoints, as `astream`/`ainvoke` take them."""
        points = {
            "interrupt_before": self.interrupt_before,
            "interrupt_after": self.interrupt_after,
        }
        return {key: value for key, value in points.items() if value}

    @property
    def graph_options(self) -> dict[str, Any]:
        """What `ainvoke`, `astream` and `astream_events` all take for this run."""
        options = {"durability": self.durability, **self.breakpoints}
        if self.context is not None:
            options["context"] = self.context
        return options

    def thread_config(self) -> dict[str, Any]:
        """The thread's latest state, whatever checkpoint the run started from."""
        return {"configurable": {"thread_id": self.thread_id}}


class RunExecution:
    """One run's own task: the graph, its timeout, its client's departure, its outcome."""

    def __init__(
        self,
        service: RunService,
        prepared: PreparedRun,
        *,
        stream: bool,
        background: bool = False,
    ) -> None:
        self.service = service
        self.prepared = prepared
        self.background = background
        self.cancel_action: CancelAction | None = None  # a cancel asked of this run
        self.ledger = side_effects.EffectLedger()
        self.timed_out = False
        self.client_left = False
        self.graph_done = False  # past this, only bookkeeping is left: never cancelled
        self.interrupted = False  # the run stopped at an interrupt or a breakpoint
        self.run_status: RunStatus | None = None  # set once the graph has ended
        self.error: str | None = None  # what went wrong, for the webhook
        # A streaming run's events (the graph runs with `astream`); None: `ainvoke`.
        self.log: EventLog | None = None
        if stream:
            self.log = EventLog(
                service.persistence,
                prepared.thread_id,
                prepared.run_id,
                persist=prepared.resumable,
                max_kept=service.settings.resumable_stream_max_events,
            )
        self.task: asyncio.Task[Any]

    @property
    def run_id(self) -> str:
        return self.prepared.run_id

    def start(self, client_gone: ClientGone | None) -> None:
        self.task = asyncio.create_task(self._main(client_gone))

    async def result(self) -> dict[str, Any]:
        """The final state values (LangGraph objects). Waiting here never cancels the run.

        A run cancelled by a cancel request (or another run's `interrupt` / `rollback`)
        answers with the thread's values as the cancel left them."""
        try:
            return await asyncio.shield(self.task)
        except asyncio.CancelledError:
            if self.task.cancelled() and self.client_left:
                raise ClientGoneError("the client left; the run was cancelled") from None
            if self.task.cancelled() and self.cancel_action is not None:
                snapshot = await self.service.graph.aget_state(self.prepared.thread_config())
                return snapshot.values if isinstance(snapshot.values, dict) else {}
            raise

    def final_values(self) -> dict[str, Any] | None:
        """The run's own final values once it has ended on its own (not cancelled, failed
        or timed out; not a stream): what a join on this worker answers without reading
        the thread again. None otherwise."""
        task = self.task
        if not task.done() or task.cancelled() or task.exception() is not None:
            return None
        if self.cancel_action is not None or self.run_status not in ("success", "interrupted"):
            return None
        result = task.result()
        return result if isinstance(result, dict) else None

    def cancel(self, action: CancelAction) -> None:
        """Stop the run (unless a side effect has begun: then it runs to its end)."""
        if self.cancel_action is not None:
            return
        self.cancel_action = action
        stopped = self._stop()
        metrics.RUN_CANCELLATIONS.labels(action=action, stage="running").inc()
        if not stopped:
            log.warning(
                "run %s was asked to cancel past a side effect; it runs to its end", self.run_id
            )

    def events(self, after: int = 0) -> AsyncIterator[tuple[int, str, Any]]:
        """(seq, event, data): `metadata`, the requested modes, then `end` or `error`."""
        assert self.log is not None
        return self.log.follow(after)

    def _emit(self, event: str, data: Any) -> None:
        if self.log is not None:
            self.log.append(event, data)

    async def _main(self, client_gone: ClientGone | None) -> Any:
        if self.background:
            metrics.BACKGROUND_RUNS_ACTIVE.inc()
        try:
            return await self._run(client_gone)
        finally:
            if self.background:
                metrics.BACKGROUND_RUNS_ACTIVE.dec()
            if self.prepared.webhook and self.service.on_run_end is not None:
                await asyncio.shield(self._announce_end(self.prepared.webhook))
            if self.prepared.temporary:
                await self._delete_temporary_thread()

    async def _announce_end(self, webhook: str) -> None:
        """Hand the run's outcome, with the thread's values now, to the webhook sender
        (which posts it in the background)."""
        values: Any = None
        try:
            snapshot = await self.service.graph.aget_state(self.prepared.thread_config())
            values = to_jsonable(snapshot.values)
        except Exception:
            log.exception("could not read the values of run %s for its webhook", self.run_id)
        metadata = self.prepared.config.get("metadata", {})
        outcome = {
            "run_id": self.run_id,
            "thread_id": self.prepared.thread_id,
            "assistant_id": metadata.get("assistant_id"),
            "status": self.run_status or "interrupted",
            "metadata": metadata,
            "values": values,
            "error": self.error,
        }
        assert self.service.on_run_end is not None
        self.service.on_run_end(webhook, outcome)

    async def _delete_temporary_thread(self) -> None:
        try:
            await asyncio.shield(self.service.persistence.delete_thread(self.prepared.thread_id))
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("could not delete the stateless run %s's thread", self.run_id)

    async def _run(self, client_gone: ClientGone | None) -> Any:
        side_effects.track(self.ledger)
        watcher = asyncio.create_task(self._watch(client_gone)) if client_gone else None
        timer = asyncio.get_running_loop().call_later(
            self.service.settings.run_timeout_s, self._time_out
        )
        try:
            if self.log is None:
                async with self.prepared.stack:
                    try:
                        return await self._invoke()
                    finally:
                        await self._record_end()
            self._emit("metadata", {"run_id": self.run_id, "attempt": 1})
            finished = False
            async with self.prepared.stack:
                try:
                    finished = await self._stream()
                finally:
                    # The last events, `end` included, are kept with the run's final status,
                    # in one transaction: a joiner that reads the end finds every event.
                    # `end` reaches the stream after that. A second cancel must not skip it.
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.shield(self.log.settled())
                    await self._record_end(self.log.take_last([("end", None)] if finished else []))
            if finished:
                self._emit("end", None)
            return None
        finally:
            timer.cancel()
            if watcher is not None:
                watcher.cancel()
            if self.log is not None:
                await self.log.close()

    async def _invoke(self) -> dict[str, Any]:
        prepared = self.prepared
        try:
            async with _RunTracker(self):
                result = await self.service.graph.ainvoke(
                    prepared.graph_input, prepared.config, **prepared.graph_options
                )
                await self._note_interrupt(isinstance(result, dict) and "__interrupt__" in result)
                return result
        except GraphRecursionError:
            raise RunLimitError(self._limit_text()) from None

    async def _stream(self) -> bool:
        """Stream the graph's chunks; False when the run ended with an `error` event."""
        prepared = self.prepared
        translator = StreamTranslator(prepared.stream_modes)
        modes = graph_modes(prepared.stream_modes)
        # An interrupt shows in `values` and `updates` chunks; watch `updates` if neither
        # was asked for, without sending it.
        watch = [] if {"values", "updates"} & set(modes) else ["updates"]
        try:
            async with _RunTracker(self):
                interrupted = False
                async for namespace, mode, chunk in self._chunks(modes + watch):
                    if not namespace and mode in ("values", "updates") and isinstance(chunk, dict):
                        interrupted = interrupted or "__interrupt__" in chunk
                    if mode not in watch:
                        for event, data in translator.chunk(namespace, mode, chunk):
                            self._emit(event, data)
                await self._note_interrupt(interrupted)
        except GraphRecursionError:
            self._emit("error", {"error": "RunLimitError", "message": self._limit_text()})
            return False
        except (StorageUnavailableError, RunTimeoutError) as exc:
            self._emit("error", {"error": type(exc).__name__, "message": str(exc)})
            return False
        except Exception as exc:
            log.exception("run %s failed", self.run_id)
            self._emit("error", {"error": type(exc).__name__, "message": str(exc)})
            return False
        return True

    async def _chunks(self, modes: list[str]) -> AsyncIterator[tuple[tuple[str, ...], str, Any]]:
        """(namespace, mode, chunk) from the graph's stream; with `events` asked for, from
        its callback events, each of which (but the graph's own chunks and hidden
        runs) is also sent as an `events` event."""
        prepared = self.prepared
        subgraphs = prepared.subgraphs
        options = {"stream_mode": modes, "subgraphs": subgraphs, **prepared.graph_options}
        graph = self.service.graph
        if "events" not in prepared.stream_modes:
            async for item in graph.astream(prepared.graph_input, prepared.config, **options):
                yield item if subgraphs else ((), *item)
            return
        async for event in graph.astream_events(
            prepared.graph_input, prepared.config, version="v2", **options
        ):
            if event["event"] == "on_chain_stream" and event["run_id"] == self.run_id:
                item = event["data"]["chunk"]
                yield item if subgraphs else ((), *item)
            elif "langsmith:hidden" not in (event.get("tags") or ()):
                self._emit("events", event)

    async def _record_end(self, last_events: list[Any] | None = None) -> None:
        """The run record's final status (with a resumable stream's last events),
        written while the run still holds its thread; a run rolled back leaves nothing:
        its checkpoints and its record are deleted."""
        status = self.run_status or "interrupted"  # cancelled before the graph started
        persistence = self.service.persistence
        events = (self.prepared.thread_id, last_events) if last_events else None
        try:
            if self.cancel_action == "rollback" and status == "interrupted":
                await asyncio.shield(self._roll_back())
            else:
                await asyncio.shield(persistence.set_run_status(self.run_id, status, events))
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("could not record the end of run %s", self.run_id)

    async def _roll_back(self) -> None:
        persistence = self.service.persistence
        await persistence.checkpointer.adelete_for_runs([self.run_id])
        await persistence.set_run_status(self.run_id, "interrupted")
        await persistence.delete_run(self.prepared.thread_id, self.run_id)
        await persistence.touch(self.prepared.thread_id)

    async def _note_interrupt(self, raised: bool) -> None:
        """Whether the run stopped waiting: at an `interrupt()`, or at a breakpoint."""
        if not raised and self.prepared.breakpoints:
            snapshot = await self.service.graph.aget_state(self.prepared.thread_config())
            raised = bool(snapshot.next)
        self.interrupted = raised

    def _limit_text(self) -> str:
        limit = self.prepared.config["recursion_limit"]
        return (
            f"the run reached config.recursion_limit={limit} before it finished; the steps it "
            "completed are kept in the thread, whose status is now error"
        )

    async def _watch(self, client_gone: ClientGone) -> None:
        await client_gone()
        self.client_left = True
        if self.graph_done:
            return
        if self.prepared.on_disconnect != "cancel":
            action = "continued"
        elif self._stop():
            action = "cancelled"
        else:
            action = "shielded"
        metrics.RUN_CLIENT_DISCONNECTS.labels(action=action).inc()

    def _time_out(self) -> None:
        if self.graph_done:
            return
        if self._stop():
            self.timed_out = True
        else:
            log.warning(
                "run %s passed RUN_TIMEOUT_S after a side effect began; it runs to its end",
                self.run_id,
            )

    def _stop(self) -> bool:
        """Cancel the run unless a side effect has begun; whether it was cancelled."""
        if self.graph_done or self.task.done() or not self.ledger.try_stop():
            return False
        self.task.cancel()
        return True


# A run's outcome (the metric's label) as its record's status: a cancelled run is
# `interrupted`, as in LangGraph Server.
_RUN_STATUS: dict[str, RunStatus] = {
    "success": "success",
    "interrupted": "interrupted",
    "cancelled": "interrupted",
    "timeout": "timeout",
}


class _RunTracker:
    """Metrics, the timeout's error and the thread's error status around one run."""

    def __init__(self, execution: RunExecution) -> None:
        self.execution = execution
        self.service = execution.service
        self.prepared = execution.prepared

    async def __aenter__(self) -> None:
        self.started = time.perf_counter()
        metrics.RUNS_IN_FLIGHT.inc()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        self.execution.graph_done = True
        metrics.RUNS_IN_FLIGHT.dec()
        if isinstance(exc, asyncio.CancelledError) and self.execution.timed_out:
            self.execution.task.uncancel()
            exc = RunTimeoutError(
                f"the run took longer than {self.service.settings.run_timeout_s} s"
            )
        outcome = "success"
        if exc is not None:
            if isinstance(exc, asyncio.CancelledError):
                outcome = "cancelled"
            elif isinstance(exc, StorageUnavailableError):
                outcome = "storage_unavailable"
            else:
                outcome = "timeout" if isinstance(exc, RunTimeoutError) else "error"
                await self._record_error(exc)
        elif self.execution.interrupted:
            outcome = "interrupted"
            await self.service.persistence.mark_interrupted(self.prepared.thread_id)
        else:
            await self.service.persistence.touch(self.prepared.thread_id)
        self.execution.run_status = _RUN_STATUS.get(outcome, "error")
        metrics.RUN_SECONDS.labels(outcome=outcome).observe(time.perf_counter() - self.started)
        if isinstance(exc, RunTimeoutError):
            raise exc
        return False

    async def _record_error(self, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"
        self.execution.error = error[:2000]
        try:
            await self.service.persistence.set_thread_error(self.prepared.thread_id, error)
        except Exception:
            log.exception("could not record the error of run %s", self.prepared.run_id)
