"""LLM_PROVIDER=openai end to end: real HTTP through langchain-openai to a local server."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from pathlib import Path

import pytest
from langgraph_sdk import get_client, get_sync_client

from tests.support.fake_openai import FakeOpenAI
from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def openai_server(tmp_path_factory: pytest.TempPathFactory):
    with FakeOpenAI() as fake:
        env = {
            "LLM_PROVIDER": "openai",
            "OPENAI_BASE_URL": fake.base_url,
            "OPENAI_API_KEY": "sk-local-test",
            "OPENAI_MODEL": "local-model",
        }
        with ServerProcess(tmp_path_factory.mktemp("openai"), workers=2, env=env) as srv:
            yield srv, fake


def test_tool_call_round_trip_through_the_openai_wire_format(openai_server) -> None:
    srv, fake = openai_server
    client = get_sync_client(url=srv.base_url)
    tid = client.threads.create()["thread_id"]
    values = client.runs.wait(
        tid, "agent", input={"messages": [{"role": "user", "content": "Which services?"}]}
    )
    kinds = [m["type"] for m in values["messages"]]
    assert kinds == ["human", "ai", "tool", "ai"], kinds
    assert values["messages"][1]["tool_calls"][0]["name"] == "list_services"
    assert values["messages"][-1]["content"].startswith("We offer: haircut")
    calls = [r for r in fake.requests if r["path"].endswith("/chat/completions")]
    assert len(calls) == 2
    assert calls[0]["model"] == "local-model"
    assert calls[0]["auth"] == "Bearer sk-local-test"
    assert {t["function"]["name"] for t in calls[0]["tools"]} >= {
        "list_services",
        "book_appointment",
        "cancel_appointment",
    }
    assert calls[1]["messages"][-1]["role"] == "tool"


async def test_streaming_with_the_openai_provider(openai_server) -> None:
    srv, _ = openai_server
    client = get_client(url=srv.base_url)
    events = []
    async for part in client.runs.stream(
        "openai-stream",
        "agent",
        input={"messages": [{"role": "user", "content": "hello there"}]},
        stream_mode=["messages-tuple", "values"],
        if_not_exists="create",
    ):
        events.append(part)
    names = [p.event for p in events]
    assert names[0] == "metadata" and "error" not in names
    final = [p.data for p in events if p.event == "values"][-1]
    assert final["messages"][-1]["content"] == "Hello from the local model."
    assert any(p.event == "messages" for p in events)


def test_settings_reject_openai_without_key_or_url(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path, workers=1, env={"LLM_PROVIDER": "openai"})
    with pytest.raises(RuntimeError) as err:
        srv.start(timeout=30)
    assert "OPENAI_API_KEY" in str(err.value)


def _bookable_day() -> str:
    """A Tuesday at least two days ahead, in the salon's time zone."""
    today = dt.datetime.now(zoneinfo.ZoneInfo("Europe/Madrid")).date()
    day = today + dt.timedelta(days=2)
    while day.weekday() != 1:
        day += dt.timedelta(days=1)
    return day.isoformat()


def test_approval_with_the_openai_provider(openai_server) -> None:
    """A run asks for approval (config.configurable); the model hears approve and reject."""
    srv, fake = openai_server
    client = get_sync_client(url=srv.base_url)
    config = {"configurable": {"booking_confirmation": "interrupt"}}
    outcomes = {}
    for decision, time in (({"type": "approve"}, "10:00"), ({"type": "reject"}, "10:30")):
        args = {
            "service": "haircut",
            "date": _bookable_day(),
            "time": time,
            "customer_name": "Eve",
            "contact": f"eve-{time}@example.com",
        }
        tid = client.threads.create()["thread_id"]
        paused = client.runs.wait(
            tid,
            "agent",
            input={"messages": [{"role": "user", "content": "book " + json.dumps(args)}]},
            config=config,
        )
        [action] = paused["__interrupt__"][0]["value"]["action_requests"]
        assert action["name"] == "book_appointment" and action["args"] == args
        done = client.runs.wait(
            tid, "agent", command={"resume": {"decisions": [decision]}}, config=config
        )
        outcomes[decision["type"]] = done["messages"][-1]["content"]
    assert outcomes["approve"].startswith("Booked, code ")
    assert outcomes["reject"].startswith("Nothing was booked")
    # The provider saw a valid history: the rejected call answered by a tool message.
    last = [r for r in fake.requests if r["path"].endswith("/chat/completions")][-1]
    roles = [m["role"] for m in last["messages"]]
    assert roles[-2:] == ["assistant", "tool"]
    assert json.loads(last["messages"][-1]["content"])["status"] == "declined"
