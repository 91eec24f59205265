"""Work done once per live message object, forgotten when the object is.

The decoded-checkpoint cache keeps a conversation's message objects alive from
turn to turn, so what is derived from each one (its JSON form for responses, its
msgpack form for checkpoints) can be kept with it instead of being rebuilt for
the whole history on every turn. Entries are keyed by identity and dropped by a
weak-reference callback, so a reused `id()` never returns another object's result.

The one edit LangGraph makes to a message in place is giving it an id (`add_messages`
assigns one to a message that has none), so each entry also remembers a `version`
of its object (for messages: the id) and is recomputed when that changed. Any other
in-place edit is outside LangGraph's contract and not detected.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class IdentityMemo(Generic[T]):
    def __init__(self, compute: Callable[[Any], T], version: Callable[[Any], Any]) -> None:
        self._compute = compute
        self._version = version
        # No lock: the weak-reference callback may run inside any allocation, even one
        # made while a lock is held. Single dict operations are atomic; a race can only
        # drop an entry, which costs one recomputation.
        self._entries: dict[int, tuple[weakref.ref[Any], Any, T]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __call__(self, obj: Any) -> T:
        key = id(obj)
        version = self._version(obj)
        entry = self._entries.get(key)
        if entry is not None and entry[0]() is obj and entry[1] == version:
            return entry[2]
        value = self._compute(obj)
        ref = weakref.ref(obj, lambda dead: self._forget(key, dead))
        self._entries[key] = (ref, version, value)
        return value

    def _forget(self, key: int, dead: weakref.ref[Any]) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] is dead:
            self._entries.pop(key, None)
