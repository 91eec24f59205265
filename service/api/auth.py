"""API keys and thread ownership.

Keys arrive as `Authorization: Bearer KEY` (or `x-api-key: KEY`, which the official
SDK sends). They are compared as SHA-256 digests with `hmac.compare_digest`, against
every configured key, so the time taken does not reveal which prefix matched. Keys
are never logged and never returned.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from service.settings import Settings

OWNER_KEY = "owner"


@dataclass(frozen=True)
class Principal:
    """Who is calling. `owner` is None when authentication is off (one shared space)."""

    owner: str | None

    def owns(self, metadata: dict) -> bool:
        return self.owner is None or metadata.get(OWNER_KEY) == self.owner


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


class KeyRing:
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._entries = [(_digest(key), owner) for owner, key in pairs]

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        lines = settings.api_keys.get_secret_value().split(",")
        if settings.api_keys_file:
            lines += Path(settings.api_keys_file).read_text().splitlines()
        pairs = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            owner, sep, key = line.partition(":")
            if not sep or not owner.strip() or len(key.strip()) < 16:
                raise ValueError("API keys are `owner:key` with a key of at least 16 characters")
            pairs.append((owner.strip(), key.strip()))
        return cls(pairs)

    def owner_for(self, token: str) -> str | None:
        presented = _digest(token)
        found = None
        for digest, owner in self._entries:
            if hmac.compare_digest(presented, digest) and found is None:
                found = owner
        return found

    def __len__(self) -> int:
        return len(self._entries)


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key") or None


def _unauthorized() -> HTTPException:
    return HTTPException(401, "missing or invalid API key", headers={"WWW-Authenticate": "Bearer"})


async def require_principal(request: Request) -> Principal:
    settings: Settings = request.app.state.settings
    if not settings.auth_enabled:
        return Principal(owner=None)
    token = _token(request)
    owner = request.app.state.keyring.owner_for(token) if token else None
    if owner is None:
        raise _unauthorized()
    return Principal(owner=owner)


async def require_metrics_access(request: Request) -> None:
    """Prometheus may present METRICS_TOKEN; any API key works too."""
    settings: Settings = request.app.state.settings
    if not settings.auth_enabled:
        return
    token = _token(request)
    expected = settings.metrics_token.get_secret_value()
    if token and expected and hmac.compare_digest(_digest(token), _digest(expected)):
        return
    if token and request.app.state.keyring.owner_for(token):
        return
    raise _unauthorized()


Caller = Annotated[Principal, Depends(require_principal)]
