"""Full history in linear storage: each checkpoint's messages as a link of a chain.

Every checkpoint of a conversation holds all its messages so far, so storing each
one whole makes a thread that keeps its history grow with the square of its
length. Here a checkpoint's `messages` are stored as a *link*: the messages it
appended to its parent's list, and the id of the parent's link. A checkpoint's
list is its chain of links back to a *snapshot* (a link that holds a whole list);
the first link of a conversation is one. So each message is stored once.

Reading any checkpoint decodes exactly its own messages; each worker keeps links
decoded (`LinkCache`), so reading an older checkpoint of a conversation it serves
decodes nothing new, and yields the very message objects the latest state holds.
A chain grows by one link per checkpoint that adds messages; once it is
`SNAPSHOT_DEPTH` links long and its links since the snapshot outweigh the snapshot,
the next link is a snapshot again. That keeps a read's row count bounded while
snapshots add at most twice the messages' bytes, and only to very long threads.

Links are immutable and shared by the checkpoints of a branch; a fork (a run from
an older checkpoint) starts a new link from the one it branched off. A checkpoint
whose list is not its parent's plus new messages (an edited or removed message)
is stored as a snapshot. A link lives as long as some checkpoint's chain reaches
it; unreached links are removed when checkpoints are pruned.

The backends store links in a `checkpoint_messages` table and each checkpoint's
head link in `checkpoints.messages_head`; the rest of the checkpoint is stored as
before, without `messages`. Rows written before this format have no head and
keep their messages inline, and stay readable.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage
from langgraph.checkpoint.base import Checkpoint, SerializerProtocol

MESSAGES = "messages"
SNAPSHOT_DEPTH = 256


@dataclass(frozen=True)
class Link:
    """One row of `checkpoint_messages`."""

    link_id: str
    prev_id: str | None  # None: a snapshot, holding the whole list
    count: int  # messages in the list this link ends
    depth: int  # links after the snapshot, this one included
    since_snapshot: int  # bytes of the links after the snapshot, this one included
    snapshot_bytes: int  # bytes of that snapshot
    type: str
    blob: bytes

    def row(self) -> tuple[Any, ...]:
        return (
            self.link_id,
            self.prev_id,
            self.count,
            self.depth,
            self.since_snapshot,
            self.snapshot_bytes,
            self.type,
            self.blob,
        )


@dataclass(frozen=True)
class Chain:
    """A checkpoint's messages, and the head link they end with: what a child extends."""

    checkpoint_id: str
    head: Link
    messages: list[Any]
    latest: bool = True  # it was the thread's newest checkpoint when written or read


def encodable(value: Any) -> bool:
    """A non-empty list of messages: the value this format is for."""
    return type(value) is list and bool(value) and all(isinstance(m, BaseMessage) for m in value)


def extends(messages: Sequence[Any], parent: Sequence[Any]) -> bool:
    """Whether `messages` is `parent` with messages appended (none edited or removed)."""
    if len(messages) < len(parent):
        return False
    return all(a is b or a == b for a, b in zip(messages, parent, strict=False))


def split(checkpoint: Checkpoint) -> tuple[Checkpoint, list[Any] | None]:
    """(the checkpoint to store without its messages, the messages) when encodable."""
    values = checkpoint["channel_values"]
    messages = values.get(MESSAGES)
    if not encodable(messages):
        return checkpoint, None
    rest = {key: value for key, value in values.items() if key != MESSAGES}
    return {**checkpoint, "channel_values": rest}, messages


def link_for(messages: list[Any], parent: Chain | None, serde: SerializerProtocol) -> Link:
    """The head link of a checkpoint with these messages, whose parent's chain is `parent`.

    The parent's head itself when nothing was appended; a new link with the appended
    messages when the list extends the parent's; a snapshot otherwise, or when the
    chain is long and its links since the snapshot outweigh it.
    """
    if parent is not None and extends(messages, parent.messages):
        head = parent.head
        appended = messages[head.count :]
        if not appended:
            return head
        type_, blob = serde.dumps_typed(appended)
        depth, since = head.depth + 1, head.since_snapshot + len(blob)
        if depth < SNAPSHOT_DEPTH or since <= head.snapshot_bytes:
            count, base = len(messages), head.snapshot_bytes
            return Link(uuid.uuid4().hex, head.link_id, count, depth, since, base, type_, blob)
    type_, blob = serde.dumps_typed(messages)
    return Link(uuid.uuid4().hex, None, len(messages), 0, 0, len(blob), type_, blob)


class BrokenChainError(RuntimeError):
    """A checkpoint's message links are missing: the database lost rows it depends on."""


def assemble(
    checkpoint_id: str,
    chain_ids: Sequence[str],
    head: Link,
    parts: dict[str, list[Any] | None],
) -> Chain:
    """A checkpoint's chain from its links' ids (snapshot first) and their messages."""
    if not chain_ids or chain_ids[-1] != head.link_id:
        raise BrokenChainError(f"messages of checkpoint {checkpoint_id} are missing links")
    messages: list[Any] = []
    for link_id in chain_ids:
        part = parts.get(link_id)
        if part is None:
            raise BrokenChainError(f"link {link_id} of checkpoint {checkpoint_id} is missing")
        messages.extend(part)
    if len(messages) != head.count:
        raise BrokenChainError(f"messages of checkpoint {checkpoint_id} do not add up")
    return Chain(checkpoint_id, head, messages)


def restore(checkpoint: Checkpoint, messages: list[Any]) -> Checkpoint:
    """Put the messages back into a checkpoint read without them."""
    checkpoint["channel_values"][MESSAGES] = messages
    return checkpoint


class LinkCache:
    """Per worker: links decoded, by id (an LRU bounded in blob bytes).

    The lists are never handed out: readers build a new list from them. Message
    objects are shared, as LangGraph shares them between the steps of a run.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._links: OrderedDict[str, tuple[int, list[Any]]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, link_id: str) -> list[Any] | None:
        with self._lock:
            found = self._links.get(link_id)
            if found is None:
                return None
            self._links.move_to_end(link_id)
            return found[1]

    def put(self, link_id: str, size: int, messages: list[Any]) -> None:
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._links.pop(link_id, None)
            if old is not None:
                self._bytes -= old[0]
            self._links[link_id] = (size, messages)
            self._bytes += size
            while self._bytes > self.max_bytes:
                self._bytes -= self._links.popitem(last=False)[1][0]

    def decode(self, link_id: str, type_: str, blob: bytes, serde: SerializerProtocol) -> list[Any]:
        messages = serde.loads_typed((type_, blob))
        self.put(link_id, len(blob), messages)
        return messages


class ChainMemo:
    """Per worker: the chain of each thread's last checkpoint written or read.

    A turn writes the child of the checkpoint it has just read, so the parent's chain
    is almost always here; a miss costs one read of the parent's chain.
    """

    def __init__(self, max_threads: int = 4096) -> None:
        self.max_threads = max_threads
        self._chains: OrderedDict[tuple[str, str], Chain] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None) -> Chain | None:
        chain = self._chains.get((thread_id, checkpoint_ns))
        if chain is None or chain.checkpoint_id != checkpoint_id:
            return None
        return chain

    def put(self, thread_id: str, checkpoint_ns: str, chain: Chain) -> None:
        key = (thread_id, checkpoint_ns)
        with self._lock:
            self._chains.pop(key, None)
            self._chains[key] = chain
            while len(self._chains) > self.max_threads:
                self._chains.popitem(last=False)

    def discard_thread(self, thread_id: str) -> None:
        with self._lock:
            for key in [key for key in self._chains if key[0] == thread_id]:
                del self._chains[key]
