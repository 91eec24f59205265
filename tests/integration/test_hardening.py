"""What a careless or hostile client can send: always a 4xx with a JSON `detail`, and
nothing written. Each case here was once a 500, or a refusal that still wrote.

Runs against real two-worker servers on both backends; "nothing written" is checked
on every thread's record, state and history, through both workers.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.support.booking import booking_text
from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(180)

MSG = {"messages": [{"role": "user", "content": "hola"}]}


def raw_post(base: str, path: str, text: str) -> httpx.Response:
    """POST a body as written: JSON the client library would refuse to produce."""
    return httpx.post(
        f"{base}{path}",
        content=text.encode("utf-8", "surrogatepass"),
        headers={"content-type": "application/json"},
        timeout=30,
    )


def everything(base: str) -> list[Any]:
    """Every thread with its record, state and history, read twice (both workers)."""
    seen = []
    for _ in range(2):
        with httpx.Client(base_url=base, timeout=30) as client:  # a new connection each time
            threads = client.post("/threads/search", json={"limit": 1000}).json()
            for thread in sorted(threads, key=lambda t: t["thread_id"]):
                tid = thread["thread_id"]
                record = client.get(f"/threads/{tid}")
                state = client.get(f"/threads/{tid}/state")
                history = client.post(f"/threads/{tid}/history", json={"limit": 1000})
                assert record.status_code == state.status_code == history.status_code == 200
                seen.append((thread, state.json(), history.json()))
    return seen


def assert_refused(response: httpx.Response, status: int = 422) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert detail
    assert len(response.text) < 2000, "an error quotes at most a short prefix of the input"


@pytest.fixture(scope="module")
def base(server: ServerProcess) -> str:
    url = server.base_url
    httpx.post(
        f"{url}/threads", json={"thread_id": "kept", "metadata": {"n": 1}}
    ).raise_for_status()
    turn = httpx.post(
        f"{url}/threads/kept/runs/wait", json={"assistant_id": "agent", "input": MSG}, timeout=30
    )
    turn.raise_for_status()
    return url


HISTORY_BODIES = [
    '{"before": {"configurable": "x"}}',
    '{"before": {"configurable": null, "checkpoint_id": 5}}',
    '{"before": {"configurable": null}, "limit": "x"}',
    '{"before": [1]}',
    '{"before": {"checkpoint_id": [1]}}',
    '{"before": {"checkpoint_id": {"a": 1}}}',
    '{"before": {"configurable": {"checkpoint_id": ["x"]}}}',
    '{"before": 9223372036854775808}',
    '{"before": "x\\n"}',
    '{"metadata": {"a": 9223372036854775808}}',
    '{"metadata": {"a": -9223372036854775809}}',
    '{"metadata": {".": 1}}',
    '{"metadata": {"a..b": 1}}',
    '{"metadata": {"a\\"b": 1}}',
    '{"metadata": {"a": NaN}}',
    '{"metadata": {"a": "\\ud800"}}',
    json.dumps({"metadata": {f"k{i}": i for i in range(1001)}}),
    json.dumps({"metadata": {f"k{i}": i for i in range(33)}}),
]


@pytest.mark.parametrize("body", HISTORY_BODIES)
def test_history_rejects_malformed_before_and_filters(base: str, body: str) -> None:
    before = everything(base)
    assert_refused(raw_post(base, "/threads/kept/history", body))
    assert everything(base) == before


def test_history_accepts_the_shapes_the_sdk_sends(base: str) -> None:
    history = httpx.post(f"{base}/threads/kept/history", json={"limit": 5}).json()
    newest = history[0]["checkpoint"]["checkpoint_id"]
    for before in (newest, {"configurable": {"checkpoint_id": newest}}, {"checkpoint_id": newest}):
        answer = httpx.post(f"{base}/threads/kept/history", json={"before": before})
        assert answer.status_code == 200, answer.text
    for metadata in ({"source": "loop"}, {"step": 1}, {f"k{i}": i for i in range(32)}):
        answer = httpx.post(f"{base}/threads/kept/history", json={"metadata": metadata})
        assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    "limit", ["true", "false", "0", "-1", "101", "1.5", '"5"', "9223372036854775808", "null"]
)
def test_recursion_limit_must_be_an_integer_in_range(base: str, limit: str) -> None:
    before = everything(base)
    body = '{"assistant_id": "agent", "input": %s, "config": {"recursion_limit": %s}}'
    response = raw_post(base, "/threads/kept/runs/wait", body % (json.dumps(MSG), limit))
    assert_refused(response)
    assert everything(base) == before


def test_a_run_that_reaches_its_recursion_limit_says_what_it_kept(base: str) -> None:
    tid = f"limit-{uuid.uuid4()}"
    body = {
        "assistant_id": "agent",
        "input": {"messages": [{"role": "user", "content": booking_text()}]},
        "config": {"recursion_limit": 2},
        "if_not_exists": "create",
    }
    response = httpx.post(f"{base}/threads/{tid}/runs/wait", json=body, timeout=30)
    assert_refused(response)
    assert "kept" in response.json()["detail"]
    thread = httpx.get(f"{base}/threads/{tid}").json()
    assert thread["status"] == "error"
    # As the answer says: the completed steps are kept, the booking's included.
    types = [m["type"] for m in thread["values"]["messages"]]
    assert types[:3] == ["human", "ai", "tool"]
    # The thread is usable again.
    again = httpx.post(f"{base}/threads/{tid}/runs/wait", json={**body, "config": {}}, timeout=30)
    assert again.status_code == 200
    assert httpx.get(f"{base}/threads/{tid}").json()["status"] == "idle"


def run_body(message: str = '{"role": "user", "content": "hola"}', extra: str = "") -> str:
    """A run request as raw JSON text, around one message given as raw JSON text."""
    return '{"assistant_id": "agent", "input": {"messages": [' + message + "]}" + extra + "}"


RUN_BODIES = [
    # Lone surrogates and NUL characters, in a message, its id, metadata and config.
    run_body('{"role": "user", "content": "hola \\ud800"}'),
    run_body('{"role": "user", "content": "hola \\udfff x"}'),
    run_body('{"role": "user", "content": "a\\u0000b"}'),
    run_body(
        '{"role": "user", "content": "haircut tomorrow at 10, my name is Bo\\ud800b, b@x.io"}'
    ),
    run_body('{"role": "user", "content": "hola", "id": "\\ud800"}'),
    run_body('{"role": "user", "content": [{"type": "text", "text": "\\ud83d"}]}'),
    run_body(extra=', "metadata": {"\\ud800": 1}'),
    # Non-finite numbers and integers beyond 64 bits.
    run_body(extra=', "metadata": {"a": Infinity}'),
    run_body(extra=', "metadata": {"a": 18446744073709551616, "b": NaN}'),
    run_body(extra=', "config": {"configurable": {"x": -Infinity}}'),
    run_body().replace('"agent"', '"\\ud800"'),
]


@pytest.mark.parametrize("body", RUN_BODIES)
@pytest.mark.parametrize("endpoint", ["wait", "stream"])
def test_runs_refuse_what_cannot_be_stored_and_write_nothing(
    base: str, body: str, endpoint: str
) -> None:
    before = everything(base)
    assert_refused(raw_post(base, f"/threads/kept/runs/{endpoint}", body))
    assert everything(base) == before


THREAD_BODIES = [
    '{"thread_id": "x\\n"}',
    '{"thread_id": "x\\r\\n"}',
    '{"thread_id": "\\nx"}',
    '{"thread_id": "x y"}',
    '{"thread_id": ""}',
    '{"metadata": {"a": NaN}}',
    '{"metadata": {"a": 18446744073709551616, "b": Infinity}}',
    '{"metadata": {"k": "\\ud800"}}',
    '{"metadata": {"k": "a\\u0000"}}',
]


@pytest.mark.parametrize("body", THREAD_BODIES)
def test_thread_creation_refuses_bad_ids_and_values(base: str, body: str) -> None:
    before = everything(base)
    assert_refused(raw_post(base, "/threads", body))
    assert everything(base) == before


SEARCH_BODIES = [
    '{"metadata": {".": 1}}',
    '{"metadata": {"a": 9223372036854775808}}',
    '{"metadata": {"a": NaN}}',
    '{"ids": ["x\\n"]}',
    json.dumps({"metadata": {f"k{i}": i for i in range(1001)}}),
]


@pytest.mark.parametrize("body", SEARCH_BODIES)
def test_search_refuses_bad_filters(base: str, body: str) -> None:
    assert_refused(raw_post(base, "/threads/search", body))


def test_prune_refuses_ids_with_a_trailing_newline(base: str) -> None:
    before = everything(base)
    assert_refused(raw_post(base, "/threads/prune", '{"thread_ids": ["kept\\n"]}'))
    assert everything(base) == before


def test_deep_nesting_is_refused(base: str) -> None:
    deep = '{"metadata": {"a": ' + "[" * 5000 + "]" * 5000 + "}}"
    response = raw_post(base, "/threads", deep)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["detail"]


def test_a_user_message_cannot_replace_what_the_service_wrote(base: str) -> None:
    tid = f"ids-{uuid.uuid4()}"

    def say(text: str, message_id: str | None = None) -> list[dict]:
        message = {"role": "user", "content": text}
        if message_id:
            message["id"] = message_id
        body = {"assistant_id": "agent", "input": {"messages": [message]}}
        body["if_not_exists"] = "create"
        response = httpx.post(f"{base}/threads/{tid}/runs/wait", json=body, timeout=30)
        response.raise_for_status()
        return response.json()["messages"]

    booked = say(booking_text(), "my-first")
    written = [m for m in booked if m["type"] in ("ai", "tool")]
    assert any("confirmed" in str(m["content"]) for m in written)
    for target in written:
        after = say("thanks", target["id"])
        kept = {m["id"]: m for m in after}
        assert kept[target["id"]] == target, "a server-written message was replaced"
    humans = [m for m in after if m["type"] == "human"]
    assert len(humans) == 1 + len(written)
    assert len({m["id"] for m in after}) == len(after)
    # The client's own message may be replaced by its id, as in LangGraph.
    edited = say("hello again", "my-first")
    first = next(m for m in edited if m["id"] == "my-first")
    assert first["content"] == "hello again"


def test_a_trailing_slash_is_not_redirected_to_the_host_header(base: str) -> None:
    response = httpx.get(f"{base}/threads/", headers={"Host": "evil.example"})
    assert response.status_code == 404
    assert "location" not in response.headers
    assert "evil" not in response.text


def test_error_texts_quote_only_a_short_prefix(base: str) -> None:
    long_id = "a" * 10_000
    body = {"assistant_id": long_id, "input": MSG}
    response = httpx.post(f"{base}/threads/kept/runs/wait", json=body)
    assert_refused(response)
    assert "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" not in response.text
    medium = httpx.post(f"{base}/threads/kept/runs/wait", json={**body, "assistant_id": "b" * 120})
    assert_refused(medium, 404)
    assert "b" * 41 not in medium.text
    key = "k" * 500 + "\ud800"
    weird = raw_post(base, "/threads/search", json.dumps({"metadata": {key: 1}}))
    assert_refused(weird)
    assert "k" * 41 not in weird.text


def test_stored_values_always_read_back_as_valid_json(base: str) -> None:
    """Large integers that fit 64 bits, floats and unicode survive the round trip."""
    metadata = {"big": 2**63 - 1, "small": -(2**63), "f": 0.25, "text": "ñ 😀"}
    created = httpx.post(f"{base}/threads", json={"metadata": metadata})
    assert created.status_code == 200, created.text
    tid = created.json()["thread_id"]
    for _ in range(2):
        raw = httpx.get(f"{base}/threads/{tid}").text
        assert (
            json.loads(raw, parse_constant=lambda name: pytest.fail(name))["metadata"] == metadata
        )
