"""Assistants as every backend stores them: each version a row of `assistant_versions`,
and `assistants` pointing at the one in use (`version`, which `set_latest` moves).

Times are ISO UTC text (`records.iso_utc`); config, context and metadata are JSON text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

ASSISTANTS_DDL = """
CREATE TABLE IF NOT EXISTS assistants (
    assistant_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS assistant_versions (
    assistant_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    graph_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    config TEXT NOT NULL,
    context TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (assistant_id, version)
);
"""
VERSION_COLUMNS = (
    "assistant_id, version, graph_id, name, description, config, context, metadata, created_at"
)
LATEST_SQL = (
    "SELECT a.assistant_id, a.version, v.graph_id, v.name, v.description, v.config, "
    "v.context, v.metadata, a.created_at, a.updated_at FROM assistants a "
    "JOIN assistant_versions v ON v.assistant_id = a.assistant_id AND v.version = a.version"
)
VERSIONS_SQL = (
    f"SELECT {VERSION_COLUMNS}, created_at AS updated_at FROM assistant_versions "
    "WHERE assistant_id = {m} ORDER BY version DESC"
)
INSERT_ASSISTANT_SQL = (
    "INSERT INTO assistants (assistant_id, version, created_at, updated_at) "
    "VALUES ({m}, 1, {m}, {m}) ON CONFLICT (assistant_id) DO NOTHING"
)
INSERT_VERSION_SQL = (
    f"INSERT INTO assistant_versions ({VERSION_COLUMNS}) "
    "VALUES ({m}, {m}, {m}, {m}, {m}, {m}, {m}, {m}, {m})"
)
LAST_VERSION_SQL = "SELECT max(version) FROM assistant_versions WHERE assistant_id = {m}"
SET_VERSION_SQL = (
    "UPDATE assistants SET version = {m}, updated_at = {m} WHERE assistant_id = {m} "
    "AND EXISTS (SELECT 1 FROM assistant_versions WHERE assistant_id = {m} AND version = {m})"
)
DELETE_ASSISTANT_SQL = (
    "DELETE FROM assistant_versions WHERE assistant_id = {m}",
    "DELETE FROM assistants WHERE assistant_id = {m}",
)


@dataclass
class AssistantRecord:
    """One version of an assistant (its current one, as read from `assistants`)."""

    assistant_id: str
    graph_id: str
    name: str
    config: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    version: int = 1
    created_at: str = ""
    updated_at: str = ""


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def version_params(record: AssistantRecord, version: int, now: str) -> tuple[Any, ...]:
    return (
        record.assistant_id,
        version,
        record.graph_id,
        record.name,
        record.description,
        _dumps(record.config),
        _dumps(record.context),
        _dumps(record.metadata),
        now,
    )


def assistant_record(row: tuple[Any, ...] | dict[str, Any]) -> AssistantRecord:
    """A row of LATEST_SQL or VERSIONS_SQL, as a tuple (SQLite) or a dict (PostgreSQL)."""
    values = list(row.values()) if isinstance(row, dict) else list(row)
    assistant_id, version, graph_id, name, description, config, context, metadata = values[:8]
    created_at, updated_at = values[8:10]
    return AssistantRecord(
        assistant_id=assistant_id,
        graph_id=graph_id,
        name=name,
        description=description,
        config=json.loads(config),
        context=json.loads(context),
        metadata=json.loads(metadata),
        version=int(version),
        created_at=created_at,
        updated_at=updated_at,
    )
