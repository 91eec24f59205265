"""Thread search and count, with the filters the thread records alone cannot answer.

Metadata, ids and stored status (idle, interrupted, error) are filtered and sorted by
the backend in SQL. Two filters need more: a thread running now is `busy` whatever its
record says (the guard's live state), and `values` is the latest checkpoint's state.
For those the records are read page by page (in the requested order) and filtered
here, so limit and offset still count matching threads; a scan that would read more
than SCAN_LIMIT records is refused (422) rather than answered short.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from langgraph.types import StateSnapshot

from service.api.deps import AppState
from service.api.thread_bodies import thread_config
from service.runs.encoding import encode
from service.runs.errors import RunInputError
from service.runs.serialize import to_jsonable
from service.schemas.models import ThreadCount, ThreadSearch
from service.storage.base import ThreadQuery, ThreadRecord
from service.storage.records import STORED_STATUSES

SCAN_LIMIT = 10_000
PAGE = 200


def contains(value: Any, wanted: Any) -> bool:
    """PostgreSQL's jsonb `@>`: objects by key, arrays by element, scalars equal."""
    if isinstance(wanted, dict):
        return isinstance(value, dict) and all(
            key in value and contains(value[key], item) for key, item in wanted.items()
        )
    if isinstance(wanted, list):
        return isinstance(value, list) and all(
            any(contains(have, item) for have in value) for item in wanted
        )
    return value == wanted


class ThreadLister:
    """One search or count, for one caller."""

    def __init__(self, state: AppState, body: ThreadCount, metadata: dict[str, Any]) -> None:
        self.state = state
        self.body = body
        sort_by = getattr(body, "sort_by", None) or "updated_at"
        sort_order = getattr(body, "sort_order", None) or "desc"
        self.query = ThreadQuery(
            metadata=metadata,
            status=body.status if body.status in STORED_STATUSES else None,
            ids=list(dict.fromkeys(body.ids)) if body.ids is not None else None,
            sort_by=sort_by,
            sort_order=sort_order,
        )
        self.snapshots: dict[str, StateSnapshot] = {}
        # Any thread may be running now, and then it is busy, not what its record says.
        self.live_status = body.status is not None

    @property
    def needs_scan(self) -> bool:
        return self.live_status or bool(self.body.values)

    async def values(self, thread_id: str) -> Any:
        """The latest state's values; the snapshot is kept for the results' bodies."""
        snapshot = await self.state.graph.aget_state(thread_config(thread_id))
        self.snapshots[thread_id] = snapshot
        return snapshot.values

    async def _matches(self, record: ThreadRecord) -> bool:
        if self.live_status:
            busy = self.state.persistence.guard.is_busy(record.thread_id)
            if busy != (self.body.status == "busy"):
                return False
        if self.body.values:
            values = orjson.loads(encode(await self.values(record.thread_id)))
            if not contains(values, to_jsonable(self.body.values)):
                return False
        return True

    async def _scan(self) -> AsyncIterator[ThreadRecord]:
        offset = 0
        while True:
            if offset >= SCAN_LIMIT:
                raise RunInputError(
                    f"a `status` or `values` filter reads at most {SCAN_LIMIT} threads; "
                    "narrow the search with `metadata` or `ids`"
                )
            page = await self.state.persistence.search_threads(self.query, PAGE, offset)
            for record in page:
                if await self._matches(record):
                    yield record
            if len(page) < PAGE:
                return
            offset += PAGE

    async def search(self, limit: int, offset: int) -> list[ThreadRecord]:
        if not self.needs_scan:
            return await self.state.persistence.search_threads(self.query, limit, offset)
        found: list[ThreadRecord] = []
        skipped = 0
        async for record in self._scan():
            if skipped < offset:
                skipped += 1
                continue
            found.append(record)
            if len(found) == limit:
                break
        return found

    async def count(self) -> int:
        if not self.needs_scan:
            return await self.state.persistence.count_threads(self.query)
        return sum([1 async for _ in self._scan()])


def select_fields(body: dict[str, Any], search: ThreadSearch) -> dict[str, Any]:
    if not search.select:
        return body
    return {key: body[key] for key in search.select}


def wants_values(search: ThreadSearch) -> bool:
    return search.select is None or "values" in search.select or "interrupts" in search.select
