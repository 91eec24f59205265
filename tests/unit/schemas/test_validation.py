"""The shared request rules, the JSON encoder's fallback, message ids and the side-effect ledger."""

from __future__ import annotations

import json
import threading

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from service import side_effects
from service.agent.graph import add_conversation_messages
from service.runs.encoding import encode
from service.schemas.validation import check_thread_id, json_problem, quote, safe_text


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"a": "x\ud800"}, "a contains a lone surrogate"),
        ({"a": ["ok", {"b": "\udfff"}]}, "a[1].b contains a lone surrogate"),
        ({"\ud800": 1}, "a key contains a lone surrogate"),
        ({"a": "x\x00"}, "NUL"),
        ({"a": float("nan")}, "a is not a finite number"),
        ({"a": float("-inf")}, "a is not a finite number"),
        ({"a": 2**63}, "outside the signed 64-bit range"),
        ({"a": -(2**63) - 1}, "outside the signed 64-bit range"),
    ],
)
def test_json_problem_finds_what_cannot_be_stored(value: object, problem: str) -> None:
    found = json_problem(value)
    assert found is not None and problem in found


@pytest.mark.parametrize(
    "value",
    [{}, {"a": 2**63 - 1, "b": -(2**63), "c": 1.5, "d": True, "e": None, "f": "ñ 😀", "g": [1]}],
)
def test_json_problem_accepts_what_json_means(value: object) -> None:
    assert json_problem(value) is None


def test_a_body_too_deep_for_recursion_is_checked_without_it() -> None:
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert "nested deeper" in json_problem({"a": deep})


@pytest.mark.parametrize("value", ["x\n", "x\r\n", "\nx", "", "-x", "x" * 129, "a b"])
def test_thread_ids_must_match_in_full(value: str) -> None:
    with pytest.raises(ValueError):
        check_thread_id(value)


def test_quotes_are_short_and_utf8() -> None:
    assert len(quote("a" * 10_000)) < 50
    assert safe_text("x\ud800").encode("utf-8") == b"x\\ud800"


def test_the_encoder_fallback_emits_valid_json() -> None:
    data = {"nan": float("nan"), "inf": float("inf"), "big": 2**64, "s": "x\ud800"}
    text = encode(data).decode("ascii")
    parsed = json.loads(text, parse_constant=lambda name: pytest.fail(name))
    assert parsed == {"nan": None, "inf": None, "big": 2**64, "s": "x\ud800"}


def test_a_user_message_never_takes_a_written_messages_id() -> None:
    history = [
        HumanMessage("book", id="h1"),
        AIMessage("", id="a1", tool_calls=[{"name": "t", "args": {}, "id": "c1"}]),
        ToolMessage("confirmed ABC123", tool_call_id="c1", id="t1"),
        AIMessage("Booked: ABC123", id="a2"),
    ]
    for taken in ("a1", "t1", "a2"):
        merged = add_conversation_messages(
            history, [{"role": "user", "content": "hi", "id": taken}]
        )
        assert merged[:4] == history
        assert merged[4].content == "hi" and merged[4].id not in {"h1", "a1", "t1", "a2"}
    edited = add_conversation_messages(history, [{"role": "user", "content": "new", "id": "h1"}])
    assert edited[0].content == "new" and len(edited) == 4
    # Only the user message is renamed: a service message beside it keeps its id.
    mixed = add_conversation_messages(
        history, [{"role": "user", "content": "hi", "id": "a2"}, AIMessage("edit", id="a2")]
    )
    assert [m.id for m in mixed].count("a2") == 1
    assert next(m for m in mixed if m.id == "a2").content == "edit"


def test_the_ledger_never_both_begins_and_stops() -> None:
    begun = side_effects.EffectLedger()
    begun.begin()
    assert begun.try_stop() is False
    stopped = side_effects.EffectLedger()
    assert stopped.try_stop() is True
    with pytest.raises(side_effects.RunStopped):
        stopped.begin()


def test_a_side_effect_reaches_the_ledger_of_its_own_run_only() -> None:
    side_effects.begin()  # outside any run: nothing to record, no error
    ledger = side_effects.EffectLedger()

    def run() -> None:
        side_effects.track(ledger)
        side_effects.begin()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert ledger.begun == 1
