"""Work done once per live message object, forgotten when the object is.

The decoded-checkpoint cache keeps a conversation's message objects alive from
turn to turn, so what is derived from each one (its JSON form for responses, its
msgpack form for checkpoints) can be kept with it instead of being rebuilt for
the whole history on every turn. Entries are keyed by identity and dropped by a
weak-reference callback, so a reused `id()` never returns another object's result.
Like the cache, this relies on messages never being edited in place.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class IdentityMemo(Generic[T]):
    def __init__(self, compute: Callable[[Any], T]) -> None:
        self._compute = compute
        # No lock: the weak-reference callback may run inside any allocation, even one
        # made while a lock is held. Single dict operations are atomic; a race can only
        # drop an entry, which costs one recomputation.
        self._entries: dict[int, tuple[weakref.ref[Any], T]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __call__(self, obj: Any) -> T:
        key = id(obj)
        entry = self._entries.get(key)
        if entry is not None and entry[0]() is obj:
            return entry[1]
        value = self._compute(obj)
        self._entries[key] = (weakref.ref(obj, lambda dead: self._forget(key, dead)), value)
        return value

    def _forget(self, key: int, dead: weakref.ref[Any]) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] is dead:
            self._entries.pop(key, None)
