"""LangGraph's serializer, with each message's msgpack form built once per object.

A root checkpoint holds the whole conversation, so serializing it costs time in
proportion to the conversation's length on every turn. The bytes are exactly
JsonPlusSerializer's (a test compares them); only a message that is already known,
with the same id, is not dumped again (see `service.identity_memo`).
"""

from __future__ import annotations

from typing import Any

import ormsgpack
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.serde import jsonplus
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from service.identity_memo import IdentityMemo

_message_ext: IdentityMemo[Any] = IdentityMemo(
    jsonplus._msgpack_default, version=lambda message: message.id
)


def _default(obj: Any) -> Any:
    if isinstance(obj, BaseMessage):
        return _message_ext(obj)
    return jsonplus._msgpack_default(obj)


class MessageMemoSerializer(JsonPlusSerializer):
    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        if obj is None or isinstance(obj, bytes | bytearray):
            return super().dumps_typed(obj)
        try:
            return "msgpack", ormsgpack.packb(obj, default=_default, option=jsonplus._option)
        except ormsgpack.MsgpackEncodeError:
            return super().dumps_typed(obj)  # the stock path: pickle fallback or the error
