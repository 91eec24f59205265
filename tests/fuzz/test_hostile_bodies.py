"""Property-based bodies in the shapes that once gave 500s, against the real server.

Hypothesis builds JSON with lone surrogates, NUL, non-finite numbers, integers past
64 bits, odd keys and deep nesting, and puts it where the API reads it: thread
metadata, search and history filters, `before`, run input, metadata and config. Every
answer must be below 500, and a refusal must leave everything as it was.
FUZZ_EXAMPLES sets the examples per shape (`make fuzz` runs more).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(900)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "15")) * 4

# Every code point, lone surrogates and NUL included.
nasty_text = st.text(st.characters(codec=None, categories=None), max_size=12) | st.sampled_from(
    ["\ud800", "x\udfff", "\x00", ".", "..", "a.b", "$", '"', "a\n", " ", "'"]
)
numbers = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, float("nan"), float("inf")])
)
scalars = st.none() | st.booleans() | numbers | nasty_text
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(nasty_text, children, max_size=4)
    ),
    max_leaves=12,
)
objects = st.dictionaries(nasty_text, json_values, max_size=6)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "human", "ai", "tool", "system"]), "content": json_values},
    optional={"id": json_values, "type": nasty_text},
)


def as_json(body: Any) -> bytes:
    """The body as a client would put it on the wire: NaN literals, escaped surrogates."""
    return json.dumps(body, allow_nan=True).encode("ascii")


SHAPES: dict[str, tuple[str, st.SearchStrategy[Any]]] = {
    "create thread": (
        "/threads",
        st.fixed_dictionaries({"metadata": objects}, optional={"thread_id": json_values}),
    ),
    "search": (
        "/threads/search",
        st.fixed_dictionaries(
            {}, optional={"metadata": objects, "ids": json_values, "limit": json_values}
        ),
    ),
    "history": (
        "/threads/kept/history",
        st.fixed_dictionaries(
            {},
            optional={
                "before": json_values | st.fixed_dictionaries({"configurable": json_values}),
                "metadata": objects,
                "limit": json_values,
            },
        ),
    ),
    "run": (
        "/threads/kept/runs/wait",
        st.fixed_dictionaries(
            {"assistant_id": st.just("agent") | json_values},
            optional={
                "input": st.fixed_dictionaries({"messages": st.lists(message, max_size=3)}),
                "metadata": objects,
                "config": st.fixed_dictionaries({}, optional={"recursion_limit": json_values})
                | objects,
                "on_disconnect": json_values,
            },
        ),
    ),
    "prune": (
        "/threads/prune",
        st.fixed_dictionaries({"thread_ids": st.lists(nasty_text, min_size=1, max_size=3)}),
    ),
}


def fingerprint(client: httpx.Client) -> Any:
    threads = client.post("/threads/search", json={"limit": 1000}).json()
    kept = client.get("/threads/kept/state").json()
    history = client.post("/threads/kept/history", json={"limit": 1000}).json()
    return sorted(t["thread_id"] for t in threads), kept, history


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> httpx.Client:
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        http.post("/threads", json={"thread_id": "kept"}).raise_for_status()
        turn = {"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": "hi"}]}}
        http.post("/threads/kept/runs/wait", json=turn).raise_for_status()
        yield http


def check(client: httpx.Client, path: str) -> Callable[[Any], None]:
    def one(body: Any) -> None:
        before = fingerprint(client)
        response = client.post(
            path, content=as_json(body), headers={"content-type": "application/json"}
        )
        assert response.status_code < 500, (body, response.text[:500])
        if response.status_code >= 400:
            assert response.json()["detail"], response.text
            assert fingerprint(client) == before, (body, response.text[:500])

    return one


@pytest.mark.parametrize("shape", list(SHAPES))
def test_no_5xx_and_refusals_write_nothing(client: httpx.Client, shape: str) -> None:
    path, strategy = SHAPES[shape]
    run = settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )(given(strategy)(check(client, path)))
    run()
