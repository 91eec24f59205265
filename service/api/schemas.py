"""Request and response bodies, in the shape of the LangGraph Server API.

Fields the official `langgraph-sdk` may send but this service does not act on are
accepted only when empty; asking for them gets a 422 that says so.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

THREAD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
STREAM_MODES = ("values", "updates", "messages-tuple")
StreamMode = Literal["values", "updates", "messages-tuple"]
ThreadIdText = Annotated[str, StringConstraints(pattern=THREAD_ID.pattern, max_length=128)]


class ErrorResponse(BaseModel):
    """Every error: a message, or for invalid bodies a list of field errors."""

    detail: str | list[dict[str, Any]]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "Malformed request body"),
        (401, "Missing or invalid API key"),
        (404, "Unknown thread or assistant (or another owner's thread)"),
        (409, "Thread exists, or busy with another run"),
        (413, "Body, message or metadata too large"),
        (422, "Invalid request"),
        (503, "Storage unavailable; retry after Retry-After seconds"),
    )
}


def check_thread_id(value: str) -> str:
    if not THREAD_ID.match(value):
        raise ValueError("thread_id must be 1-128 characters: letters, digits, '-', '_', '.', ':'")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ThreadCreate(_Strict):
    thread_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"
    ttl: Any = None
    supersteps: Any = None
    graph_id: str | None = None

    @field_validator("thread_id")
    @classmethod
    def _thread_id(cls, value: str | None) -> str | None:
        return None if value is None else check_thread_id(value)


class ThreadSearch(_Strict):
    metadata: dict[str, Any] = Field(default_factory=dict)
    values: dict[str, Any] | None = None
    ids: list[str] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=1_000_000)
    sort_by: str | None = None
    sort_order: str | None = None
    select: list[str] | None = None
    extract: dict[str, Any] | None = None


class ThreadPrune(_Strict):
    thread_ids: list[ThreadIdText] = Field(min_length=1, max_length=1000)
    strategy: Literal["delete", "keep_latest"] = "delete"


class HistoryRequest(_Strict):
    limit: int = Field(10, ge=1, le=1000)
    before: str | dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None


class AssistantSearch(_Strict):
    metadata: dict[str, Any] = Field(default_factory=dict)
    graph_id: str | None = None
    name: str | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)
    sort_by: str | None = None
    sort_order: str | None = None
    select: list[str] | None = None


class RunCreate(_Strict):
    """POST /threads/{thread_id}/runs/wait and /runs/stream."""

    assistant_id: str
    input: dict[str, Any] | None = None
    command: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: str | None = None
    checkpoint_during: bool | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    webhook: str | None = None
    multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] | None = None
    if_not_exists: Literal["create", "reject"] = "reject"
    on_disconnect: Literal["cancel", "continue"] | None = None
    on_completion: Literal["delete", "keep"] | None = None
    after_seconds: float | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    stream_mode: StreamMode | Annotated[list[StreamMode], Field(min_length=1, max_length=3)] = (
        "values"
    )
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    feedback_keys: list[str] | None = None
    langsmith_tracer: dict[str, Any] | None = None
    strict_resume: bool | None = None

    def stream_modes(self) -> list[str]:
        modes = [self.stream_mode] if isinstance(self.stream_mode, str) else self.stream_mode
        return list(dict.fromkeys(modes))

    def unsupported_fields(self) -> list[str]:
        """Options the SDK can send that this service does not implement."""
        asked = {
            "command": self.command,
            "checkpoint": self.checkpoint,
            "checkpoint_id": self.checkpoint_id,
            "interrupt_before": self.interrupt_before,
            "interrupt_after": self.interrupt_after,
            "webhook": self.webhook,
            "after_seconds": self.after_seconds,
            "stream_resumable": self.stream_resumable or None,
            "stream_subgraphs": self.stream_subgraphs or None,
        }
        return [name for name, value in asked.items() if value]
