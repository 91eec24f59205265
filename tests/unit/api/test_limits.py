"""Client metadata bounds: nesting depth and encoded size."""

from __future__ import annotations

import pytest

from service.api.limits import check_metadata, json_depth
from service.runs.errors import RunInputError, RunTooLargeError
from service.settings import Settings

SETTINGS = Settings(_env_file=None, max_json_depth=3, max_metadata_bytes=64)


def nested(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    ("value", "depth"),
    [({}, 1), ({"a": 1}, 1), ({"a": {"b": 1}}, 2), ({"a": [{"b": [1]}]}, 4), ([], 1), ("x", 1)],
)
def test_depth_counts_containers(value: object, depth: int) -> None:
    assert json_depth(value, limit=10) == depth


def test_depth_stops_counting_past_the_limit() -> None:
    assert json_depth(nested(1000), limit=5) == 6


def test_metadata_within_bounds_passes() -> None:
    check_metadata(None, SETTINGS)
    check_metadata({}, SETTINGS)
    check_metadata(nested(3), SETTINGS)


def test_metadata_too_deep_is_an_input_error_naming_the_field() -> None:
    with pytest.raises(RunInputError, match="config is nested deeper than 3 levels"):
        check_metadata(nested(4), SETTINGS, what="config")


def test_metadata_too_large_counts_encoded_bytes() -> None:
    check_metadata({"k": "é" * 20}, SETTINGS)  # 40 bytes of UTF-8 plus the framing
    with pytest.raises(RunTooLargeError, match=r"the limit is 64 \(MAX_METADATA_BYTES\)"):
        check_metadata({"k": "é" * 30}, SETTINGS)
