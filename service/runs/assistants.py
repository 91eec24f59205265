"""Assistants: the graph's own (`agent`, never stored) and stored configurations of it,
versioned, whose `config` and `context` every run made with them starts from.

For example one assistant per salon, each with its name and language in `context`: a
run names the assistant, and what it sends itself goes over the assistant's values
(its `configurable` keys and context fields win; `recursion_limit` when it sends one).
With authentication on an assistant belongs to its creator (`owner` in its metadata,
as on threads): another owner's is missing. The graph's own is everyone's.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ValidationError

from service.runs.errors import RunInputError
from service.schemas.assistants import AssistantCreate, AssistantPatch
from service.schemas.models import RunConfig
from service.storage.assistant_records import AssistantRecord
from service.storage.base import Persistence
from service.storage.errors import (
    AssistantExistsError,
    AssistantNotFoundError,
    AssistantVersionNotFoundError,
    BuiltInAssistantError,
)

OWNER_KEY = "owner"
_BUILT_IN_CREATED = "2026-01-01T00:00:00+00:00"


def check_context(schema: Any, context: dict[str, Any] | None, what: str = "context") -> None:
    """`context` fits the graph's context schema (a pydantic model), else a 422."""
    if context is None or not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        return
    try:
        schema.model_validate(context)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or what}: {error['msg']}" for error in exc.errors()
        )
        raise RunInputError(f"invalid `{what}`: {problems}") from None


def merged_config(
    assistant: dict[str, Any], sent: RunConfig | None
) -> tuple[int | None, dict[str, Any]]:
    """The run's recursion limit (None: the default) and `configurable`: the
    assistant's, with the run's own keys over them."""
    configurable = dict(assistant.get("configurable") or {})
    limit = assistant.get("recursion_limit")
    if sent is not None:
        configurable.update(sent.configurable or {})
        if "recursion_limit" in sent.model_fields_set:
            limit = sent.recursion_limit
    return limit, configurable


class AssistantService:
    """The graph's own assistant and the stored ones, as one owner sees them."""

    def __init__(self, persistence: Persistence, graph_id: str, context_schema: Any) -> None:
        self.persistence = persistence
        self.graph_id = graph_id
        self.context_schema = context_schema

    def built_in(self) -> AssistantRecord:
        return AssistantRecord(
            assistant_id=self.graph_id,
            graph_id=self.graph_id,
            name=self.graph_id,
            description="Books, lists and cancels appointments, in Spanish and English.",
            metadata={"created_by": "system"},
            version=1,
            created_at=_BUILT_IN_CREATED,
            updated_at=_BUILT_IN_CREATED,
        )

    async def get(self, assistant_id: str, owner: str | None) -> AssistantRecord:
        if assistant_id == self.graph_id:
            return self.built_in()
        record = await self.persistence.get_assistant(assistant_id)
        if record is None or not _owned(record, owner):
            raise AssistantNotFoundError(assistant_id)
        return record

    async def all(self, owner: str | None) -> list[AssistantRecord]:
        """The graph's own first, then the owner's stored ones, oldest first."""
        stored = await self.persistence.list_assistants()
        return [self.built_in(), *(record for record in stored if _owned(record, owner))]

    async def create(self, body: AssistantCreate, owner: str | None) -> AssistantRecord:
        self._check_graph(body.graph_id)
        check_context(self.context_schema, body.context)
        assistant_id = body.assistant_id or str(uuid.uuid4())
        if assistant_id == self.graph_id:
            raise AssistantExistsError(assistant_id)
        metadata = dict(body.metadata)
        if owner is not None:
            metadata[OWNER_KEY] = owner
        record = AssistantRecord(
            assistant_id=assistant_id,
            graph_id=body.graph_id,
            name=body.name or "Untitled",
            description=body.description,
            config=_config(body.config),
            context=dict(body.context or {}),
            metadata=metadata,
        )
        if await self.persistence.create_assistant(record):
            return await self.get(assistant_id, owner)
        if body.if_exists == "do_nothing":
            return await self.get(assistant_id, owner)  # another owner's is missing
        raise AssistantExistsError(assistant_id)

    async def update(
        self, assistant_id: str, body: AssistantPatch, owner: str | None
    ) -> AssistantRecord:
        current = await self._stored(assistant_id, owner)
        if body.graph_id is not None:
            self._check_graph(body.graph_id)
        check_context(self.context_schema, body.context)
        metadata = {**current.metadata, **(body.metadata or {})}
        if owner is not None:
            metadata[OWNER_KEY] = owner
        sent = body.model_fields_set
        revised = AssistantRecord(
            assistant_id=assistant_id,
            graph_id=body.graph_id or current.graph_id,
            name=body.name or current.name,
            description=body.description if "description" in sent else current.description,
            config=_config(body.config) if body.config is not None else current.config,
            context=dict(body.context) if body.context is not None else current.context,
            metadata=metadata,
        )
        updated = await self.persistence.add_assistant_version(revised)
        if updated is None:  # deleted meanwhile
            raise AssistantNotFoundError(assistant_id)
        return updated

    async def delete(self, assistant_id: str, owner: str | None) -> None:
        await self._stored(assistant_id, owner)
        if not await self.persistence.delete_assistant(assistant_id):
            raise AssistantNotFoundError(assistant_id)

    async def versions(self, assistant_id: str, owner: str | None) -> list[AssistantRecord]:
        """Newest first."""
        if assistant_id == self.graph_id:
            return [self.built_in()]
        await self.get(assistant_id, owner)
        return await self.persistence.list_assistant_versions(assistant_id)

    async def set_latest(
        self, assistant_id: str, version: int, owner: str | None
    ) -> AssistantRecord:
        await self._stored(assistant_id, owner)
        if not await self.persistence.set_assistant_version(assistant_id, version):
            raise AssistantVersionNotFoundError(assistant_id, version)
        return await self.get(assistant_id, owner)

    async def _stored(self, assistant_id: str, owner: str | None) -> AssistantRecord:
        if assistant_id == self.graph_id:
            raise BuiltInAssistantError(assistant_id)
        return await self.get(assistant_id, owner)

    def _check_graph(self, graph_id: str) -> None:
        if graph_id != self.graph_id:
            raise RunInputError(
                f"unknown graph_id {graph_id!r}: this server serves the graph {self.graph_id!r}"
            )


def _owned(record: AssistantRecord, owner: str | None) -> bool:
    return owner is None or record.metadata.get(OWNER_KEY) == owner


def _config(config: RunConfig | None) -> dict[str, Any]:
    """What the assistant's config sets: `recursion_limit` and `configurable` only."""
    if config is None:
        return {}
    kept = config.model_dump(exclude_unset=True, include={"recursion_limit", "configurable"})
    return {key: value for key, value in kept.items() if value is not None}
