"""LangGraph Server's stream modes, from what the graph's own stream yields.

Each mode a client asks for maps to one of LangGraph's stream modes and to the SSE
event names the SDKs read:

- `values`, `updates`, `custom`, `tasks`, `debug`, `checkpoints`: the graph's chunk as
  it is, under the mode's name (a checkpoint as the API's ThreadState refs);
- `messages-tuple`: `[message chunk, metadata]` as `messages`;
- `messages`: per message, `messages/metadata` once, then `messages/partial` with the
  message accumulated so far (a streamed message) or `messages/complete` (a whole one);
- `events`: every LangChain callback event (`astream_events` v2) as `events`.

With `stream_subgraphs` the events from inside a subgraph carry its namespace:
`values|parent:<task id>`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.messages import BaseMessage, BaseMessageChunk, message_chunk_to_message

from service.runs.serialize import checkpoint_ref

# The LangGraph stream mode behind each API mode (`events` has none: astream_events).
_GRAPH_MODE = {"messages-tuple": "messages"}
# Event names a joiner's `stream_mode` selects, by their first part.
_EVENT_MODE = {"messages": "messages-tuple", "messages/partial": "messages"}
_EVENT_MODE["messages/complete"] = _EVENT_MODE["messages/metadata"] = "messages"


def graph_modes(modes: list[str]) -> list[str]:
    """The LangGraph stream modes that give the API modes asked for."""
    wanted = (_GRAPH_MODE.get(mode, mode) for mode in modes if mode != "events")
    return list(dict.fromkeys(wanted))


def event_mode(event: str) -> str:
    """The API mode an SSE event belongs to: `messages/partial` to `messages`,
    `messages` to `messages-tuple`, `values|sub:1` to `values`."""
    name = event.split("|", 1)[0]
    return _EVENT_MODE.get(name, name)


class StreamTranslator:
    """One run's graph chunks as (event, data) pairs, in the shapes the SDKs expect."""

    def __init__(self, modes: list[str]) -> None:
        self.tuples = "messages-tuple" in modes
        self.whole = "messages" in modes
        self.modes = set(modes)
        self.seen: dict[str, BaseMessage] = {}  # `messages`: each message so far, by id

    def chunk(self, namespace: tuple[str, ...], mode: str, chunk: Any) -> Iterator[tuple[str, Any]]:
        suffix = "|" + "|".join(namespace) if namespace else ""
        if mode == "messages":
            if self.tuples:
                yield "messages" + suffix, chunk
            if self.whole:
                yield from self._messages(chunk, suffix)
            return
        if mode == "checkpoints":
            yield mode + suffix, _checkpoint(chunk)
            return
        if mode == "debug" and isinstance(chunk, dict) and chunk.get("type") == "checkpoint":
            yield mode + suffix, {**chunk, "payload": _checkpoint(chunk.get("payload"))}
            return
        yield mode + suffix, chunk

    def _messages(self, item: Any, suffix: str) -> Iterator[tuple[str, Any]]:
        message, metadata = item
        if not isinstance(message, BaseMessage) or message.id is None:
            return
        earlier = self.seen.get(message.id)
        if earlier is None:
            yield "messages/metadata" + suffix, {message.id: {"metadata": metadata}}
            sofar = message
        elif isinstance(earlier, BaseMessageChunk) and isinstance(message, BaseMessageChunk):
            sofar = earlier + message
        else:
            sofar = message
        self.seen[message.id] = sofar
        if isinstance(sofar, BaseMessageChunk):
            yield "messages/partial" + suffix, [message_chunk_to_message(sofar)]
        else:
            yield "messages/complete" + suffix, [sofar]


def _checkpoint(payload: Any) -> Any:
    """A checkpoint as the API sends it: `checkpoint` / `parent_checkpoint` refs (as in
    a ThreadState), and each task's `state` config as its `checkpoint`."""
    if not isinstance(payload, dict) or "config" not in payload:
        return payload
    tasks = []
    for task in payload.get("tasks") or []:
        if isinstance(task, dict) and task.get("state"):
            task = {**task, "checkpoint": checkpoint_ref(task["state"])}
            task.pop("state")
        tasks.append(task)
    return {
        **payload,
        "checkpoint": checkpoint_ref(payload.get("config")),
        "parent_checkpoint": checkpoint_ref(payload.get("parent_config")),
        "tasks": tasks,
    }
