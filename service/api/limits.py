"""Bounds on client-supplied JSON: size and nesting depth."""

from __future__ import annotations

import json

from service.runs.errors import RunInputError, RunTooLargeError
from service.settings import Settings


def json_depth(value: object, limit: int, depth: int = 1) -> int:
    """Nesting depth, giving up early once it passes `limit`."""
    if depth > limit:
        return depth
    if isinstance(value, dict):
        return max((json_depth(v, limit, depth + 1) for v in value.values()), default=depth)
    if isinstance(value, list):
        return max((json_depth(v, limit, depth + 1) for v in value), default=depth)
    return depth - 1 if depth > 1 else 1


def check_metadata(metadata: dict | None, settings: Settings, what: str = "metadata") -> None:
    if not metadata:
        return
    if json_depth(metadata, settings.max_json_depth) > settings.max_json_depth:
        raise RunInputError(f"{what} is nested deeper than {settings.max_json_depth} levels")
    size = len(json.dumps(metadata, ensure_ascii=False).encode())
    if size > settings.max_metadata_bytes:
        raise RunTooLargeError(
            f"{what} is {size} bytes; the limit is {settings.max_metadata_bytes} "
            "(MAX_METADATA_BYTES)"
        )
