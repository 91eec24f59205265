"""Assistant bodies: stored configurations of the graph, as the SDKs send them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from service.schemas.models import MetadataFilter, RunConfig, StrictBody, ThreadIdText

AssistantField = Literal[
    "assistant_id",
    "graph_id",
    "name",
    "description",
    "config",
    "context",
    "metadata",
    "version",
    "created_at",
    "updated_at",
]
GraphId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
AssistantName = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Description = Annotated[str, StringConstraints(max_length=2000)]
Metadata = Annotated[dict[str, Any], Field(max_length=64)]


class AssistantCreate(StrictBody):
    """POST /assistants."""

    graph_id: GraphId
    assistant_id: ThreadIdText | None = None
    config: RunConfig | None = None
    context: dict[str, Any] | None = None
    metadata: Metadata = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"
    name: AssistantName | None = None
    description: Description | None = None


class AssistantPatch(StrictBody):
    """PATCH /assistants/{id}: a new version; `metadata` is merged, the rest replaced."""

    graph_id: GraphId | None = None
    config: RunConfig | None = None
    context: dict[str, Any] | None = None
    metadata: Metadata | None = None
    name: AssistantName | None = None
    description: Description | None = None


class AssistantCount(StrictBody):
    """POST /assistants/count, and the filters of a search."""

    metadata: MetadataFilter = Field(default_factory=dict)
    graph_id: Annotated[str, StringConstraints(max_length=128)] | None = None
    # A case-insensitive substring of the assistant's name.
    name: Annotated[str, StringConstraints(max_length=128)] | None = None


class AssistantSearch(AssistantCount):
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=1_000_000)
    sort_by: Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"] | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: Annotated[list[AssistantField], Field(min_length=1, max_length=10)] | None = None


class AssistantVersionSearch(StrictBody):
    """POST /assistants/{id}/versions."""

    metadata: MetadataFilter = Field(default_factory=dict)
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=1_000_000)


class AssistantLatest(StrictBody):
    """POST /assistants/{id}/latest."""

    version: int = Field(ge=1, le=1_000_000)
