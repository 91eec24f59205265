"""The Store API's storage: langgraph's own long-term memory stores, shared by all workers.

SQLite keeps the store's table in the checkpoint file itself (one file to back up,
migrate and watch), PostgreSQL in the checkpoint database; both are langgraph's own
stores (`langgraph.store.sqlite`, `langgraph.store.postgres`), with their TTLs. The
schema is made once before the workers start; the maintenance leader sweeps expired
items. With authentication on, every owner's items live under a namespace of their
own, which callers never see.
"""

from __future__ import annotations

from collections.abc import Iterable

from langgraph.store.base import BaseStore, Op, Result, TTLConfig

from service.settings import Settings
from service.storage.errors import StorageUnavailableError

__all__ = [
    "STORE_OWNER_KEY",
    "BaseStore",
    "SharedStore",
    "owner_label",
    "scoped",
    "store_ttl",
    "unscoped",
]

# The hidden first label of an owner's namespaces.
_OWNER_PREFIX = "owner="
# Where a run's config carries its owner, for the graph's own use of the store. Clients
# cannot set it: keys starting with "__" are dropped from the `configurable` they send.
STORE_OWNER_KEY = "__store_owner"


def store_ttl(settings: Settings) -> TTLConfig:
    """STORE_DEFAULT_TTL_MINUTES (0: items never expire) and STORE_TTL_REFRESH_ON_READ."""
    return TTLConfig(
        default_ttl=settings.store_default_ttl_minutes or None,
        refresh_on_read=settings.store_ttl_refresh_on_read,
        omit_expired=True,
    )


def owner_label(owner: str) -> str:
    """A namespace label for the owner: labels may not hold a period."""
    return _OWNER_PREFIX + owner.replace("%", "%25").replace(".", "%2E")


def scoped(owner: str | None, namespace: tuple[str, ...]) -> tuple[str, ...]:
    """The namespace as stored: under the owner's label when there is an owner."""
    return namespace if owner is None else (owner_label(owner), *namespace)


def unscoped(owner: str | None, namespace: tuple[str, ...]) -> tuple[str, ...]:
    """The namespace as its owner sees it."""
    return namespace if owner is None else namespace[1:]


class SharedStore(BaseStore):
    """The backend's store with its driver's transient errors as StorageUnavailableError,
    so that a busy or unreachable database is a 503 with Retry-After, in the API and in
    the graph alike."""

    supports_ttl = True

    def __init__(
        self,
        inner: BaseStore,
        transient: tuple[type[BaseException], ...],
        retry_after_s: int,
    ) -> None:
        self.inner = inner
        self.ttl_config = inner.ttl_config
        self._transient = transient
        self._retry_after_s = retry_after_s

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        try:
            return self.inner.batch(ops)
        except self._transient as exc:
            raise self._unavailable(exc) from exc

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        try:
            return await self.inner.abatch(ops)
        except self._transient as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: BaseException) -> StorageUnavailableError:
        return StorageUnavailableError(
            f"the store is unavailable: {str(exc)[:200]}", retry_after_s=self._retry_after_s
        )
