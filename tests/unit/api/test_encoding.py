"""Response encoding: messages and models as JSON, and the rare values orjson refuses."""

from __future__ import annotations

import json

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.types import Interrupt
from pydantic import BaseModel

from service.api.encoding import json_response
from service.runs.encoding import encode


class Slot(BaseModel):
    day: str


def test_messages_and_models_encode_as_their_dumps() -> None:
    message = AIMessage(content="Booked.", id="m1")
    data = json.loads(
        encode({"messages": [message, HumanMessage("hi", id="m0")], "slot": Slot(day="mon")})
    )
    assert data["messages"][0] == json.loads(json.dumps(message.model_dump()))
    assert data["messages"][1]["type"] == "human"
    assert data["slot"] == {"day": "mon"}


def test_an_edited_message_is_encoded_anew() -> None:
    message = AIMessage(content="first", id="m1")
    assert json.loads(encode(message))["content"] == "first"
    message.content = "second"
    message.id = "m2"  # the memo is keyed on the object and its id
    assert json.loads(encode(message))["content"] == "second"


def test_values_orjson_refuses_take_the_general_path() -> None:
    data = json.loads(encode({"big": 2**70, "text": "\ud800", "nan": float("nan"), 1: (1, 2)}))
    assert data == {"big": 2**70, "text": "\ud800", "nan": None, "1": [1, 2]}


def test_sets_and_bytes_become_lists_and_text() -> None:
    assert json.loads(encode({"s": frozenset({1}), "b": b"ok"})) == {"s": [1], "b": "ok"}


def test_json_response_carries_the_status_and_media_type() -> None:
    response = json_response({"ok": True}, status_code=201)
    assert response.status_code == 201
    assert response.media_type == "application/json"
    assert json.loads(response.body) == {"ok": True}


def test_interrupts_encode_as_langgraph_server_sends_them() -> None:
    interrupt = Interrupt(value={"question": "book it?"}, id="i1")
    data = json.loads(encode({"__interrupt__": (interrupt,)}))
    assert data == {"__interrupt__": [{"value": {"question": "book it?"}, "id": "i1"}]}
