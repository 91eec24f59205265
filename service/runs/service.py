"""Run lifecycle: validate, take the thread, run the graph, record the outcome.

A run holds its thread in the guard from before it reads the thread's latest
checkpoint until after its last checkpoint is committed, so concurrent runs on one
thread line up instead of forking the history.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from service import metrics
from service.api.schemas import RunCreate
from service.persistence.base import Persistence
from service.persistence.errors import StorageUnavailableError, ThreadNotFoundError
from service.settings import Settings

log = logging.getLogger(__name__)

_MESSAGE_ROLES = {"user", "human"}


class RunInputError(ValueError):
    """The run request cannot be run as sent (422)."""


class RunTooLargeError(ValueError):
    """The input breaks a size limit (413)."""


class UnsupportedStrategyError(RunInputError):
    """interrupt / rollback are not offered (422)."""


class RunTimeoutError(RuntimeError):
    """The run took longer than RUN_TIMEOUT_S (504)."""


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


@dataclass
class PreparedRun:
    """A validated run that holds its thread until `stack` closes."""

    thread_id: str
    run_id: str
    graph_input: dict[str, Any]
    config: dict[str, Any]
    durability: str
    stream_modes: list[str]
    stack: AsyncExitStack = field(default_factory=AsyncExitStack)


class RunService:
    def __init__(
        self, graph: CompiledStateGraph, persistence: Persistence, settings: Settings
    ) -> None:
        self.graph = graph
        self.persistence = persistence
        self.settings = settings

    async def prepare(
        self, thread_id: str, request: RunCreate, owner: str | None = None
    ) -> PreparedRun:
        """Validate, check the thread, and take it in the guard. Writes nothing.

        With authentication on, another owner's thread is reported as missing.
        """
        unsupported = request.unsupported_fields()
        if unsupported:
            raise RunInputError(f"not supported by this server: {', '.join(unsupported)}")
        strategy = request.multitask_strategy or self.settings.default_multitask_strategy
        if strategy in ("interrupt", "rollback"):
            raise UnsupportedStrategyError(
                f"multitask_strategy={strategy!r} is not supported; use 'reject' or 'enqueue'"
            )
        graph_input = validate_input(request.input, self.settings)
        record = await self.persistence.get_thread(thread_id)
        if record is not None and not _owned(record.metadata, owner):
            raise ThreadNotFoundError(thread_id)
        if record is None and request.if_not_exists != "create":
            raise ThreadNotFoundError(thread_id)
        run_id = str(uuid.uuid4())
        prepared = PreparedRun(
            thread_id=thread_id,
            run_id=run_id,
            graph_input=graph_input,
            config=self._config(thread_id, run_id, request),
            durability=request.durability or self.settings.checkpoint_durability,
            stream_modes=request.stream_modes(),
        )
        waited = await prepared.stack.enter_async_context(
            self.persistence.guard.hold(
                thread_id,
                wait=strategy == "enqueue",
                timeout_s=self.settings.enqueue_timeout_s,
            )
        )
        try:
            if record is None:
                metadata = {} if owner is None else {"owner": owner}
                created, _ = await self.persistence.create_thread(thread_id, metadata, "do_nothing")
                if not _owned(created.metadata, owner):
                    raise ThreadNotFoundError(thread_id)
            elif waited is not False and await self.persistence.get_thread(thread_id) is None:
                # Deleted while this run waited its turn.
                raise ThreadNotFoundError(thread_id)
        except BaseException:
            await prepared.stack.aclose()
            raise
        return prepared

    def _config(self, thread_id: str, run_id: str, request: RunCreate) -> dict[str, Any]:
        user_config = request.config or {}
        recursion_limit = user_config.get("recursion_limit", 25)
        if not isinstance(recursion_limit, int) or not 1 <= recursion_limit <= 100:
            raise RunInputError("config.recursion_limit must be an integer from 1 to 100")
        metadata = {
            key: value
            for key, value in request.metadata.items()
            if isinstance(key, str) and not key.startswith("__")
        }
        metadata.update(run_id=run_id, thread_id=thread_id, assistant_id=request.assistant_id)
        return {
            "configurable": {"thread_id": thread_id},
            "metadata": metadata,
            "run_id": run_id,
            "recursion_limit": recursion_limit,
        }

    async def wait(self, prepared: PreparedRun) -> dict[str, Any]:
        """Run to the end and return the final state values (LangGraph objects)."""
        async with prepared.stack, self._tracked(prepared):
            return await self.graph.ainvoke(
                prepared.graph_input, prepared.config, durability=prepared.durability
            )

    async def stream(self, prepared: PreparedRun) -> AsyncIterator[tuple[str, Any]]:
        """(event, data) pairs: `metadata`, the requested modes, then `end` or `error`."""
        modes = ["messages" if mode == "messages-tuple" else mode for mode in prepared.stream_modes]
        async with prepared.stack:
            yield "metadata", {"run_id": prepared.run_id, "attempt": 1}
            try:
                async with self._tracked(prepared):
                    async for mode, chunk in self.graph.astream(
                        prepared.graph_input,
                        prepared.config,
                        stream_mode=modes,
                        durability=prepared.durability,
                    ):
                        yield mode, chunk
            except (StorageUnavailableError, RunTimeoutError) as exc:
                yield "error", {"error": type(exc).__name__, "message": str(exc)}
                return
            except Exception as exc:
                log.exception("run %s failed", prepared.run_id)
                yield "error", {"error": type(exc).__name__, "message": str(exc)}
                return
        yield "end", None

    def _tracked(self, prepared: PreparedRun) -> _RunTracker:
        return _RunTracker(self, prepared)


class _RunTracker:
    """Timeout, metrics and the thread's error status around one run."""

    def __init__(self, service: RunService, prepared: PreparedRun) -> None:
        self.service = service
        self.prepared = prepared
        self._timeout = asyncio.timeout(service.settings.run_timeout_s)

    async def __aenter__(self) -> None:
        self.started = time.perf_counter()
        metrics.RUNS_IN_FLIGHT.inc()
        await self._timeout.__aenter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        metrics.RUNS_IN_FLIGHT.dec()
        try:
            await self._timeout.__aexit__(exc_type, exc, tb)
        except TimeoutError:
            exc = RunTimeoutError(
                f"the run took longer than {self.service.settings.run_timeout_s} s"
            )
        outcome = "success"
        if exc is not None:
            outcome = type(exc).__name__
            if isinstance(exc, asyncio.CancelledError):
                outcome = "cancelled"
            elif isinstance(exc, StorageUnavailableError):
                outcome = "storage_unavailable"
            else:
                outcome = "timeout" if isinstance(exc, RunTimeoutError) else "error"
                await self._record_error(exc)
        else:
            await self.service.persistence.touch(self.prepared.thread_id)
        metrics.RUN_SECONDS.labels(outcome=outcome).observe(time.perf_counter() - self.started)
        if isinstance(exc, RunTimeoutError):
            raise exc
        return False

    async def _record_error(self, exc: BaseException) -> None:
        try:
            await self.service.persistence.set_thread_error(
                self.prepared.thread_id, f"{type(exc).__name__}: {exc}"
            )
        except Exception:
            log.exception("could not record the error of run %s", self.prepared.run_id)
