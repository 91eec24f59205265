"""Fast JSON for conversation state: responses, and a stream's events.

A thread's values hold every message. FastAPI's generic encoder walks such a payload
in Python (about 5 ms for 300 messages, growing with the conversation); orjson with
pydantic's own `model_dump` for messages takes a tenth of that, and each message
is dumped once while it stays in memory (see `service.identity_memo`), so a long
conversation's turn costs almost what a short one does.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import orjson
from langchain_core.messages import BaseMessage
from langgraph.types import Interrupt
from pydantic import BaseModel

from service.identity_memo import IdentityMemo
from service.runs.serialize import interrupt_json, to_jsonable

_message_dump: IdentityMemo[dict[str, Any]] = IdentityMemo(
    lambda message: message.model_dump(), version=lambda message: message.id
)


def _default(value: Any) -> Any:
    if isinstance(value, BaseMessage):
        return _message_dump(value)
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, Interrupt):
        return interrupt_json(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {item.name: getattr(value, item.name) for item in dataclasses.fields(value)}
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError


def encode(data: Any) -> bytes:
    try:
        return orjson.dumps(
            data,
            default=_default,
            option=orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS,
        )
    except TypeError:
        # Integers beyond 64 bits, lone surrogates and other rarities: the slow, general
        # path, which like orjson writes non-finite numbers as null and always emits
        # valid JSON (ASCII, with escapes).
        return json.dumps(to_jsonable(data), allow_nan=False).encode()
