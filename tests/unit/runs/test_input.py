"""What a run accepts as input: user messages in the shapes the SDKs send, within limits."""

from __future__ import annotations

import pytest

from service.runs.errors import RunInputError, RunTooLargeError
from service.runs.lifecycle import validate_input
from service.settings import Settings

SETTINGS = Settings(_env_file=None, max_message_chars=10, max_messages_per_request=2)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"messages": ["hi"]}, [{"role": "user", "content": "hi"}]),
        ({"messages": [{"role": "user", "content": "hi"}]}, [{"role": "user", "content": "hi"}]),
        ({"messages": [{"type": "human", "content": "hi", "id": "m1"}]},
         [{"role": "user", "content": "hi", "id": "m1"}]),
        ({"messages": [{"role": "human", "content": [{"type": "text", "text": "a"}, "b"]}]},
         [{"role": "user", "content": "ab"}]),
    ],
)  # fmt: skip
def test_accepted_shapes(payload: dict, expected: list) -> None:
    assert validate_input(payload, SETTINGS) == {"messages": expected}


@pytest.mark.parametrize(
    "payload",
    [
        None,
        {},
        {"messages": []},
        {"messages": "hi"},
        {"messages": ["hi"], "other": 1},
        {"messages": [{"role": "ai", "content": "hi"}]},
        {"messages": [{"role": "user", "content": 5}]},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "url": "x"}]}]},
        {"messages": [7]},
    ],
)
def test_refused_shapes(payload: dict | None) -> None:
    with pytest.raises(RunInputError):
        validate_input(payload, SETTINGS)


@pytest.mark.parametrize(
    "payload",
    [{"messages": ["a", "b", "c"]}, {"messages": [{"role": "user", "content": "x" * 11}]}],
)
def test_limits(payload: dict) -> None:
    with pytest.raises(RunTooLargeError):
        validate_input(payload, SETTINGS)
