"""Request and response bodies, in the shape of the LangGraph Server API.

Fields the official `langgraph-sdk` may send but this service does not act on are
accepted only when empty; asking for them gets a 422 that says so. Every body is
checked by `service.schemas.validation` as a whole before its fields are read.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from service.schemas.validation import (
    FILTER_KEY_PATTERN,
    ID_PATTERN,
    MAX_FILTER_KEYS,
    check_thread_id,
    check_webhook_url,
    json_problem,
)

StreamMode = Literal[
    "values",
    "updates",
    "messages",
    "messages-tuple",
    "events",
    "debug",
    "custom",
    "checkpoints",
    "tasks",
]
STREAM_MODES: tuple[str, ...] = get_args(StreamMode)
StreamModes = StreamMode | Annotated[list[StreamMode], Field(min_length=1, max_length=9)]
# pydantic's patterns are Rust regexes: `$` is the end of the text, never before a newline.
ThreadIdText = Annotated[str, StringConstraints(pattern=f"^{ID_PATTERN}$", max_length=128)]
CheckpointId = Annotated[str, StringConstraints(pattern=f"^{ID_PATTERN}$", max_length=128)]
FilterKey = Annotated[str, StringConstraints(pattern=f"^{FILTER_KEY_PATTERN}$", max_length=259)]
MetadataFilter = Annotated[dict[FilterKey, Any], Field(max_length=MAX_FILTER_KEYS)]
WebhookUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(check_webhook_url)]


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


class StrictBody(BaseModel):
    """A request body: unknown fields refused, and the whole body storable as sent."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        problem = json_problem(data)
        if problem:
            raise ValueError(problem)
        return data


class _Config(BaseModel):
    """A config object as the SDK sends it; fields this service does not read are ignored."""

    model_config = ConfigDict(extra="ignore")


class CheckpointConfigurable(_Config):
    checkpoint_id: CheckpointId | None = None
    checkpoint_ns: Annotated[str, StringConstraints(max_length=256)] | None = None
    thread_id: ThreadIdText | None = None


class CheckpointConfig(_Config):
    """`before` in history: `{"configurable": {"checkpoint_id": …}}` or `{"checkpoint_id": …}`."""

    checkpoint_id: CheckpointId | None = None
    configurable: CheckpointConfigurable | None = None

    def id(self) -> str | None:
        if self.checkpoint_id:
            return self.checkpoint_id
        return self.configurable.checkpoint_id if self.configurable else None


class RunConfig(_Config):
    """The run `config`: `recursion_limit`, and `configurable` for the graph (such as
    `booking_confirmation`; the keys the service sets itself are dropped). `tags` and
    `metadata` are accepted as LangGraph's."""

    recursion_limit: Annotated[StrictInt, Field(ge=1, le=100)] = 25
    configurable: dict[str, Any] | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None


class SuperstepUpdate(StrictBody):
    """One update of a superstep: `values` written as if `as_node` had run."""

    values: dict[str, Any] | None = None
    as_node: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    command: None = None  # the SDK always sends the key; a command here is not supported


class Superstep(StrictBody):
    updates: Annotated[list[SuperstepUpdate], Field(min_length=1, max_length=32)]


# Ten years, in minutes: beyond that a TTL is a mistake, not a policy.
MAX_TTL_MINUTES = 10 * 366 * 24 * 60
TtlMinutes = Annotated[float, Field(gt=0, le=MAX_TTL_MINUTES, allow_inf_nan=False)]


class ThreadTtl(StrictBody):
    """A thread's own TTL, as the SDK sends it: deleted `ttl` minutes after its last activity."""

    ttl: TtlMinutes
    strategy: Literal["delete"] = "delete"


def ttl_minutes(value: float | ThreadTtl | None) -> float | None:
    return value.ttl if isinstance(value, ThreadTtl) else value


class ThreadCreate(StrictBody):
    thread_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"
    ttl: TtlMinutes | ThreadTtl | None = None
    # State to start from (a copied conversation, a seeded greeting), applied at creation.
    supersteps: Annotated[list[Superstep], Field(min_length=1, max_length=64)] | None = None
    graph_id: str | None = None

    @field_validator("thread_id")
    @classmethod
    def _thread_id(cls, value: str | None) -> str | None:
        return None if value is None else check_thread_id(value)


ThreadField = Literal[
    "thread_id", "created_at", "updated_at", "metadata", "status", "values", "interrupts", "error"
]
ThreadStatusName = Literal["idle", "busy", "interrupted", "error"]


class ThreadCount(StrictBody):
    """`POST /threads/count`: the filters of a search."""

    metadata: MetadataFilter = Field(default_factory=dict)
    values: Annotated[dict[str, Any], Field(max_length=MAX_FILTER_KEYS)] | None = None
    ids: Annotated[list[ThreadIdText], Field(max_length=1000)] | None = None
    status: ThreadStatusName | None = None


class ThreadSearch(ThreadCount):
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=1_000_000)
    sort_by: Literal["thread_id", "status", "created_at", "updated_at"] | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: Annotated[list[ThreadField], Field(min_length=1, max_length=8)] | None = None
    extract: dict[str, Any] | None = None


class ThreadPatch(StrictBody):
    """`PATCH /threads/{id}`: metadata merged into the thread's (top-level keys), and its TTL."""

    metadata: dict[str, Any] = Field(default_factory=dict)
    ttl: TtlMinutes | ThreadTtl | None = None


class ThreadPrune(StrictBody):
    thread_ids: list[ThreadIdText] = Field(min_length=1, max_length=1000)
    strategy: Literal["delete", "keep_latest"] = "delete"


StateField = Literal[
    "values",
    "next",
    "checkpoint",
    "metadata",
    "created_at",
    "parent_checkpoint",
    "tasks",
    "interrupts",
]


class HistoryRequest(StrictBody):
    limit: int = Field(10, ge=1, le=1000)
    before: CheckpointId | CheckpointConfig | None = None
    metadata: MetadataFilter | None = None
    checkpoint: CheckpointConfigurable | None = None
    select: Annotated[list[StateField], Field(min_length=1, max_length=8)] | None = None

    def before_id(self) -> str | None:
        return self.before.id() if isinstance(self.before, CheckpointConfig) else self.before


class StateAtCheckpoint(StrictBody):
    """`POST /threads/{id}/state/checkpoint`, as the SDK's `get_state(checkpoint=…)` sends it."""

    checkpoint: CheckpointConfigurable
    subgraphs: bool = False


class ThreadStateUpdate(StrictBody):
    """`POST /threads/{id}/state` (the SDK's `update_state`)."""

    values: dict[str, Any] | None = None
    as_node: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    checkpoint: CheckpointConfigurable | None = None
    checkpoint_id: CheckpointId | None = None

    def start_checkpoint(self) -> str | None:
        if self.checkpoint_id:
            return self.checkpoint_id
        return self.checkpoint.checkpoint_id if self.checkpoint else None

    def checkpoint_ns(self) -> str:
        return (self.checkpoint.checkpoint_ns if self.checkpoint else None) or ""


NodeName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Breakpoints = Literal["*"] | Annotated[list[NodeName], Field(max_length=32)]


class SendTo(StrictBody):
    """A `Send` in `command.goto`: run `node` with `input`."""

    node: NodeName
    input: Any = None


class RunCommand(StrictBody):
    """`command` on a run: resume an interrupt, update the state, or go to a node."""

    resume: Any = None
    update: dict[str, Any] | Annotated[list[tuple[str, Any]], Field(max_length=64)] | None = None
    goto: NodeName | SendTo | Annotated[list[NodeName | SendTo], Field(max_length=32)] | None = None

    @model_validator(mode="after")
    def _something(self) -> RunCommand:
        if not self.model_fields_set & {"resume", "update", "goto"}:
            raise ValueError("command needs `resume`, `update` or `goto`")
        return self

    def goto_nodes(self) -> list[str]:
        targets = self.goto if isinstance(self.goto, list) else [self.goto]
        return [t.node if isinstance(t, SendTo) else t for t in targets if t is not None]

    def update_keys(self) -> list[str]:
        if isinstance(self.update, dict):
            return list(self.update)
        return [key for key, _ in self.update or ()]


class RunCreate(StrictBody):
    """POST /threads/{thread_id}/runs/wait and /runs/stream."""

    assistant_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    input: dict[str, Any] | None = None
    command: RunCommand | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    config: RunConfig | None = None
    context: dict[str, Any] | None = None
    checkpoint: CheckpointConfigurable | None = None
    checkpoint_id: CheckpointId | None = None
    checkpoint_during: bool | None = None
    interrupt_before: Breakpoints | None = None
    interrupt_after: Breakpoints | None = None
    webhook: WebhookUrl | None = None
    multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] | None = None
    if_not_exists: Literal["create", "reject"] = "reject"
    on_disconnect: Literal["cancel", "continue"] | None = None
    on_completion: Literal["delete", "keep"] | None = None
    # A background run waits this long in the queue before it may start; a wait or
    # stream run, before it takes the thread.
    after_seconds: float | None = Field(None, ge=0, le=86_400)
    durability: Literal["sync", "async", "exit"] | None = None
    stream_mode: StreamModes = "values"
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    feedback_keys: list[str] | None = None
    langsmith_tracer: dict[str, Any] | None = None
    strict_resume: bool | None = None

    def stream_modes(self) -> list[str]:
        modes = [self.stream_mode] if isinstance(self.stream_mode, str) else self.stream_mode
        return list(dict.fromkeys(modes))

    def start_checkpoint(self) -> tuple[str, str] | None:
        """(checkpoint id, namespace) to run from (a fork), from either field."""
        if self.checkpoint_id:
            return self.checkpoint_id, ""
        if self.checkpoint and self.checkpoint.checkpoint_id:
            return self.checkpoint.checkpoint_id, self.checkpoint.checkpoint_ns or ""
        return None


# Runs accepted by one `POST /runs/batch`.
MAX_BATCH_RUNS = 100


class BatchRunCreate(RunCreate):
    """One run of `POST /runs/batch`: on a thread, or (no `thread_id`) stateless."""

    thread_id: ThreadIdText | None = None


class RunCancelMany(StrictBody):
    """POST /runs/cancel: the active runs of a thread, those named, or all by status."""

    thread_id: ThreadIdText | None = None
    run_ids: Annotated[list[ThreadIdText], Field(min_length=1, max_length=1000)] | None = None
    status: Literal["pending", "running", "all"] | None = None

    @model_validator(mode="after")
    def _something_named(self) -> RunCancelMany:
        if self.thread_id is None and self.run_ids is None and self.status is None:
            raise ValueError("name the runs to cancel: `thread_id`, `run_ids` or `status`")
        return self


# What a cron's run takes: a run's own fields, less those a schedule decides.
_CRON_RUN_FIELDS = (
    "input",
    "metadata",
    "config",
    "context",
    "checkpoint_during",
    "interrupt_before",
    "interrupt_after",
    "webhook",
    "multitask_strategy",
    "stream_mode",
    "stream_subgraphs",
    "stream_resumable",
    "durability",
)
CronField = Literal[
    "cron_id",
    "assistant_id",
    "thread_id",
    "on_run_completed",
    "end_time",
    "schedule",
    "timezone",
    "created_at",
    "updated_at",
    "payload",
    "user_id",
    "next_run_date",
    "metadata",
    "enabled",
]
Schedule = Annotated[str, StringConstraints(min_length=1, max_length=200)]
TimezoneName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class CronCreate(StrictBody):
    """POST /runs/crons and /threads/{id}/runs/crons: a run on a schedule."""

    assistant_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    schedule: Schedule
    timezone: TimezoneName | None = None
    end_time: dt.datetime | None = None
    enabled: bool = True
    on_run_completed: Literal["delete", "keep"] | None = None
    input: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    config: RunConfig | None = None
    context: dict[str, Any] | None = None
    checkpoint_during: bool | None = None
    interrupt_before: Breakpoints | None = None
    interrupt_after: Breakpoints | None = None
    webhook: WebhookUrl | None = None
    multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] | None = None
    stream_mode: StreamModes = "values"
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    durability: Literal["sync", "async", "exit"] | None = None

    def run_request(self) -> RunCreate:
        """The run each firing starts."""
        fields = self.model_dump(include=set(_CRON_RUN_FIELDS), exclude_unset=True)
        return RunCreate.model_validate({"assistant_id": self.assistant_id, **fields})


class CronPatch(StrictBody):
    """PATCH /runs/crons/{cron_id}: what is sent replaces what the cron had."""

    schedule: Schedule | None = None
    timezone: TimezoneName | None = None
    end_time: dt.datetime | None = None
    enabled: bool | None = None
    on_run_completed: Literal["delete", "keep"] | None = None
    input: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    config: RunConfig | None = None
    context: dict[str, Any] | None = None
    interrupt_before: Breakpoints | None = None
    interrupt_after: Breakpoints | None = None
    webhook: WebhookUrl | None = None
    stream_mode: StreamModes | None = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None
    durability: Literal["sync", "async", "exit"] | None = None


class CronCount(StrictBody):
    assistant_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    thread_id: ThreadIdText | None = None
    enabled: bool | None = None
    metadata: MetadataFilter = Field(default_factory=dict)


class CronSearch(CronCount):
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=1_000_000)
    sort_by: (
        Literal[
            "cron_id",
            "assistant_id",
            "thread_id",
            "next_run_date",
            "end_time",
            "created_at",
            "updated_at",
        ]
        | None
    ) = None
    sort_order: Literal["asc", "desc"] | None = None
    select: Annotated[list[CronField], Field(min_length=1, max_length=14)] | None = None
