"""The `values` filter of a thread search: PostgreSQL's jsonb containment, on state values."""

from __future__ import annotations

import pytest

from service.api.thread_listing import contains

STATE = {
    "messages": [
        {"type": "human", "content": "What services?", "id": "m1"},
        {"type": "ai", "content": "We offer haircut.", "id": "m2"},
    ],
    "tool_retries": 0,
}


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        ({}, True),
        ({"tool_retries": 0}, True),
        ({"tool_retries": 1}, False),
        ({"messages": [{"content": "What services?"}]}, True),
        ({"messages": [{"type": "ai"}, {"id": "m1"}]}, True),
        ({"messages": [{"content": "What services"}]}, False),  # equality, not a substring
        ({"messages": {"content": "What services?"}}, False),
        ({"missing": None}, False),
    ],
)
def test_values_filters_match_as_jsonb_containment(wanted: dict, expected: bool) -> None:
    assert contains(STATE, wanted) is expected
