"""A per-worker cache of each thread's latest decoded checkpoint.

Decoding a checkpoint rebuilds every message object of the conversation (about
17 µs a message), so without a cache a turn's cost grows with the conversation's
length. The database stays the source of truth: a reader asks it for the latest
checkpoint id and uses the cached copy only when the ids (and blob sizes) match,
so a checkpoint written by another worker is never missed.

Runs get a private copy of every container (dicts, lists, sets, tuples): LangGraph
channels update some of them in place. Message objects are shared, as LangGraph
shares them between the steps of one run: nodes must not edit a message in place
(return a new one with the same id instead). A checkpoint that holds any other kind
of object is not cached.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage
from langgraph.checkpoint.base import Checkpoint

from service.observability import metrics

_SCALARS = (str, int, float, bool, bytes, type(None), uuid.UUID, dt.datetime, dt.date)


class _Uncacheable(Exception):
    """The value holds an object whose mutability is unknown."""


def _private_copy(value: Any) -> Any:
    """Copy every container; share scalars and messages; refuse anything else.

    A tuple becomes a list, as it does on its way through msgpack, so a checkpoint
    cached when written reads back exactly as one decoded from the database.
    """
    kind = type(value)
    if kind is dict:
        return {key: _private_copy(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [_private_copy(item) for item in value]
    if kind is set or kind is frozenset:
        return kind(_private_copy(item) for item in value)
    if isinstance(value, (*_SCALARS, BaseMessage)):
        return value
    raise _Uncacheable(kind.__name__)


@dataclass(frozen=True)
class _Entry:
    checkpoint_id: str
    size: int  # the stored blob's, compared with the database's
    weight: int  # what it counts against the bound: the blob and its messages
    checkpoint: Checkpoint


class DecodedCheckpointCache:
    """LRU of (thread_id, checkpoint_ns) → latest decoded checkpoint, bounded in blob bytes."""

    def __init__(self, max_bytes: int, backend: str) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._hits = metrics.CHECKPOINT_CACHE.labels(backend=backend, result="hit")
        self._misses = metrics.CHECKPOINT_CACHE.labels(backend=backend, result="miss")

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def known_id(self, thread_id: str, checkpoint_ns: str) -> str | None:
        """The cached checkpoint id, so the reader can skip fetching that blob."""
        entry = self._entries.get((thread_id, checkpoint_ns))
        return entry.checkpoint_id if entry else None

    def get(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str, size: int
    ) -> Checkpoint | None:
        """A private copy of the cached checkpoint when it is the one asked for."""
        key = (thread_id, checkpoint_ns)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.checkpoint_id != checkpoint_id or entry.size != size:
                return None
            self._entries.move_to_end(key)
        return _private_copy(entry.checkpoint)

    def count(self, hit: bool) -> None:
        (self._hits if hit else self._misses).inc()

    def put(
        self,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint: Checkpoint,
        size: int,
        weight: int | None = None,
    ) -> None:
        """Remember a checkpoint just written or read as the latest (its containers copied).

        `size` is its stored blob's; `weight` (default `size`) adds the bytes of what is
        stored apart from the blob (its message links). The last one stored wins: a
        stale entry only costs a decode, since readers compare ids with the database.
        """
        weight = size if weight is None else weight
        if not self.enabled or weight > self.max_bytes:
            return
        try:
            frozen = _private_copy(checkpoint)
        except _Uncacheable:
            return
        key = (thread_id, checkpoint_ns)
        with self._lock:
            self._drop(key)
            self._entries[key] = _Entry(checkpoint["id"], size, weight, frozen)
            self._bytes += weight
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def discard_thread(self, thread_id: str) -> None:
        with self._lock:
            for key in [key for key in self._entries if key[0] == thread_id]:
                self._drop(key)

    def _drop(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.weight
