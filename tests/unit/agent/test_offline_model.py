"""The offline model: message parsing, Spanish and English dialogues, streaming, tools."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage

from service.agent.model import build_model
from service.agent.offline import nlu
from service.agent.offline.model import OfflineChatModel
from service.agent.tools import build_tools
from service.bookings.store import BookingStore
from service.settings import Settings
from tests.unit.conftest import MONDAY_10AM, Chat, fixed_clock, make_settings

TODAY = MONDAY_10AM.date()


def code_in(text: str) -> str:
    match = re.search(r"(?:code|código)[^A-Z0-9]*([A-Z0-9]{6})", text)
    assert match, text
    return match.group(1)


# --- parsing ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hoy", dt.date(2025, 6, 2)),
        ("tomorrow please", dt.date(2025, 6, 3)),
        ("para mañana", dt.date(2025, 6, 3)),
        ("mañana por la mañana", dt.date(2025, 6, 3)),
        ("pasado mañana", dt.date(2025, 6, 4)),
        ("on Friday", dt.date(2025, 6, 6)),
        ("el miércoles", dt.date(2025, 6, 4)),
        ("next monday", dt.date(2025, 6, 9)),
        ("2025-06-20", dt.date(2025, 6, 20)),
        ("on the 5th", dt.date(2025, 6, 5)),
        ("el 1", dt.date(2025, 7, 1)),
        ("el 12 de junio", dt.date(2025, 6, 12)),
        ("June 12", dt.date(2025, 6, 12)),
        ("a las 3", None),
    ],
)
def test_parse_date(text: str, expected: dt.date | None) -> None:
    assert nlu.parse_date(text, TODAY) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3pm", dt.time(15, 0)),
        ("at 10", dt.time(10, 0)),
        ("at 3", dt.time(15, 0)),
        ("a las 3pm", dt.time(15, 0)),
        ("10:30", dt.time(10, 30)),
        ("15:00", dt.time(15, 0)),
        ("a las 3 de la tarde", dt.time(15, 0)),
        ("a las 9 de la mañana", dt.time(9, 0)),
        ("a las 5 y media", dt.time(17, 30)),
        ("10 a.m.", dt.time(10, 0)),
        ("at noon", dt.time(12, 0)),
        ("on the 5th", None),
    ],
)
def test_parse_time(text: str, expected: dt.time | None) -> None:
    assert nlu.parse_time(text) == expected


def test_parse_fields() -> None:
    services = ["haircut", "beard trim", "hair coloring", "manicure"]
    assert nlu.parse_service("corte de pelo", services) == "haircut"
    assert nlu.parse_service("arreglo de barba", services) == "beard trim"
    assert nlu.parse_service("un tinte", services) == "hair coloring"
    assert nlu.parse_service("manicura", services) == "manicure"
    assert nlu.parse_service("a massage", services) is None
    assert nlu.parse_name("me llamo ana, ana@example.com") == "Ana"
    assert nlu.parse_name("my name is Bob Smith and my email is b@x.io") == "Bob Smith"
    assert nlu.parse_name("I'm Bob") == "Bob"
    assert nlu.parse_name("I'm looking for a haircut") is None
    assert nlu.parse_contact("write to Bob@Example.com.") == "Bob@Example.com"
    assert nlu.parse_contact("call +34 600 123 456") == "+34 600 123 456"
    assert nlu.parse_contact("on 2025-06-20 at 10:30") is None
    assert nlu.parse_code("cancel abc123") == "ABC123"
    assert nlu.parse_code("CANCEL KQZDXA") == "KQZDXA"
    assert nlu.parse_code("cancel 437225") == "437225"  # an all-digit code issued earlier
    assert nlu.parse_code("cancel 437225, or is it K3ZDXA?") == "K3ZDXA"
    assert nlu.detect_language("¿qué horas hay mañana?") == "es"
    assert nlu.detect_language("what's free tomorrow") == "en"
    assert nlu.detect_language("ana@example.com") is None


# --- dialogues through the graph ---------------------------------------------------------
async def test_spanish_booking_over_three_turns(chat: Chat, store: BookingStore) -> None:
    first = await chat.say("Quiero agendar una cita")
    assert "servicio" in first and "día" in first and "hora" in first
    second = await chat.say("corte de pelo para mañana a las 3pm")
    assert "nombre" in second and "martes 3 de junio" in second and "15:00" in second
    third = await chat.say("me llamo Ana, ana@example.com")
    assert third.startswith("¡Listo!")
    code = code_in(third)
    [booked] = store.appointments_for("ana@example.com")
    assert booked.confirmation_code == code
    assert (booked.service, booked.starts_at.strftime("%Y-%m-%d %H:%M")) == (
        "haircut",
        "2025-06-03 15:00",
    )
    state = await chat.state()
    assert [m.content for m in state["messages"] if isinstance(m, HumanMessage)] == [
        "Quiero agendar una cita",
        "corte de pelo para mañana a las 3pm",
        "me llamo Ana, ana@example.com",
    ]
    assert (await chat.say("gracias")).startswith("¡De nada!")


async def test_english_booking_in_one_turn(chat: Chat, store: BookingStore) -> None:
    reply = await chat.say("I'd like a haircut tomorrow at 10, my name is Bob, bob@example.com")
    assert reply.startswith("All set!") and "Tuesday, June 3 at 10:00" in reply
    [booked] = store.appointments_for("bob@example.com")
    assert booked.confirmation_code == code_in(reply) and booked.customer_name == "Bob"


async def test_bare_name_answers_the_name_question(chat: Chat, store: BookingStore) -> None:
    await chat.say("a beard trim on friday at 11")
    reply = await chat.say("Carla, 600 111 222")
    assert "Carla" in reply and store.appointments_for("600111222")


async def test_taken_slot_then_an_alternative(graph: Any, store: BookingStore) -> None:
    await Chat(graph, "first").say("haircut tomorrow at 3pm, I'm Ana, ana@example.com")
    chat = Chat(graph, "second")
    taken = await chat.say("I'd like a haircut tomorrow at 3pm, my name is Bob, bob@example.com")
    assert "already taken" in taken and "14:30" in taken and "15:30" in taken
    assert store.appointments_for("bob@example.com") == []
    booked = await chat.say("15:30 then")
    assert booked.startswith("All set!") and "15:30" in booked


async def test_cancellation_in_both_languages(chat: Chat, store: BookingStore) -> None:
    code = code_in(await chat.say("book a manicure on 2025-06-04 at 12:00, I'm Eve, eve@x.org"))
    reply = await chat.say(f"cancel {code}")
    assert code in reply and "cancelled" in reply
    assert store.get(code).status == "cancelled"  # type: ignore[union-attr]

    spanish = Chat(chat.graph, "es")
    code = code_in(await spanish.say("tinte el viernes a las 10, me llamo Eva, eva@x.org"))
    ask = await spanish.say("quiero cancelar mi cita")
    assert "código" in ask
    done = await spanish.say(code)
    assert done.startswith("Hecho") and code in done
    assert store.get(code).status == "cancelled"  # type: ignore[union-attr]


async def test_cancel_unknown_code_is_explained_not_raised(chat: Chat) -> None:
    reply = await chat.say("cancelar ZZZ999")
    assert reply.startswith("Lo siento") and "código" in reply


async def test_availability_and_services_and_my_appointments(chat: Chat) -> None:
    free = await chat.say("¿qué horas hay mañana?")
    assert free.startswith("Horas libres") and "09:00" in free and "17:30" in free
    services = await chat.say("what services do you offer?")
    assert "haircut" in services and "Monday to Saturday" in services
    await chat.say("I'd like a haircut on Wednesday at 9am, I'm Bob, bob@example.com")
    mine = await chat.say("what are my appointments? bob@example.com")
    assert "Wednesday, June 4 at 09:00" in mine


async def test_closed_day_is_explained(graph: Any, store: BookingStore) -> None:
    reply = await Chat(graph).say("book a haircut on Sunday at 10, I'm Bob, bob@example.com")
    assert "closed" in reply and "Monday to Saturday" in reply
    assert store.appointments_for("bob@example.com") == []


async def test_invalid_time_from_the_tool_is_explained(chat: Chat) -> None:
    reply = await chat.say("corte de pelo mañana a las 15:10, soy Ana, ana@example.com")
    assert reply.startswith("Lo siento") and "cada 30 minutos" in reply


async def test_saturday_tomorrow_is_closed(settings: Settings, tmp_path: Any) -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    from service.agent.graph import build_graph

    saturday = fixed_clock(dt.datetime(2025, 6, 7, 10, 0, tzinfo=settings.tz))
    store = BookingStore(tmp_path / "a.db", settings, now=saturday)
    store.init_schema()
    model = OfflineChatModel(settings=settings, now=saturday)
    graph = build_graph(model, build_tools(store, settings), settings, now=saturday)
    chat = Chat(graph.compile(checkpointer=InMemorySaver()))
    reply = await chat.say("Quiero una cita de corte de pelo mañana a las 10")
    assert "cerrados" in reply and "domingo" in reply
    store.close()


# --- the model on its own ------------------------------------------------------------------
BOOK_REQUEST = [HumanMessage("a haircut tomorrow at 10, my name is Bob, bob@example.com")]


def test_tool_calls_only_for_bound_tools(offline_model: OfflineChatModel, store: Any) -> None:
    tools = build_tools(store, offline_model.settings)
    bound = offline_model.bind_tools(tools).invoke(BOOK_REQUEST)
    [call] = bound.tool_calls
    assert call["name"] == "book_appointment" and call["id"].startswith("call_")
    assert call["args"] == {
        "service": "haircut",
        "date": "2025-06-03",
        "time": "10:00",
        "customer_name": "Bob",
        "contact": "bob@example.com",
    }
    others = [t for t in tools if t.name != "book_appointment"]
    without = offline_model.bind_tools(others).invoke(BOOK_REQUEST)
    assert not without.tool_calls and without.content
    assert not offline_model.invoke(BOOK_REQUEST).tool_calls
    forbidden = offline_model.bind_tools(tools, tool_choice="none").invoke(BOOK_REQUEST)
    assert not forbidden.tool_calls


def test_tool_call_ids_are_deterministic(offline_model: OfflineChatModel, store: Any) -> None:
    bound = offline_model.bind_tools(build_tools(store, offline_model.settings))
    first = bound.invoke(BOOK_REQUEST).tool_calls[0]["id"]
    assert bound.invoke(BOOK_REQUEST).tool_calls[0]["id"] == first
    other = [HumanMessage("a haircut tomorrow at 11, my name is Bob, bob@example.com")]
    assert bound.invoke(other).tool_calls[0]["id"] != first


def test_answers_tool_results(offline_model: OfflineChatModel) -> None:
    call = {"name": "cancel_appointment", "args": {"confirmation_code": "K7Q2ZD"}, "id": "c1"}
    result = ToolMessage(
        '{"status": "cancelled", "confirmation_code": "K7Q2ZD", "service": "haircut", '
        '"date": "2025-06-03", "time": "15:00"}',
        tool_call_id="c1",
        name="cancel_appointment",
    )
    messages = [HumanMessage("cancelar K7Q2ZD"), AIMessage("", tool_calls=[call]), result]
    reply = offline_model.invoke(messages)
    assert reply.content == (
        "Hecho: he cancelado tu cita K7Q2ZD (corte de pelo, el martes 3 de junio a las 15:00)."
    )


async def test_streaming_yields_tokens_and_one_tool_call_chunk(
    offline_model: OfflineChatModel, store: Any
) -> None:
    chunks = [c async for c in offline_model.astream([HumanMessage("hola")])]
    assert len(chunks) > 5 and all(isinstance(c, AIMessageChunk) for c in chunks)
    assert "".join(str(c.content) for c in chunks) == str(
        (await offline_model.ainvoke([HumanMessage("hola")])).content
    )
    assert len(list(offline_model.stream([HumanMessage("hola")]))) == len(chunks)

    bound = offline_model.bind_tools(build_tools(store, offline_model.settings))
    tool_chunks = [c async for c in bound.astream(BOOK_REQUEST)]
    with_calls = [c for c in tool_chunks if c.tool_call_chunks]
    assert len(with_calls) == 1
    merged = tool_chunks[0]
    for chunk in tool_chunks[1:]:
        merged += chunk
    assert merged.tool_calls[0]["args"]["time"] == "10:00"


async def test_graph_streams_message_chunks(chat: Chat) -> None:
    chunks = []
    async for message, meta in chat.graph.astream(
        {"messages": [{"role": "user", "content": "what's free tomorrow"}]},
        chat.config,
        stream_mode="messages",
    ):
        if isinstance(message, AIMessageChunk) and meta["langgraph_node"] == "agent":
            chunks.append(message)
    text = "".join(str(c.content) for c in chunks)
    assert len(chunks) > 10 and text.startswith("Free times on Tuesday, June 3")


async def test_latency_is_applied(settings: Settings) -> None:
    model = OfflineChatModel(settings=settings, latency_ms=50, now=fixed_clock(MONDAY_10AM))
    started = time.perf_counter()
    await model.ainvoke([HumanMessage("hi")])
    assert time.perf_counter() - started >= 0.05


def test_build_model_by_provider() -> None:
    offline = build_model(make_settings(offline_llm_latency_ms=7))
    assert isinstance(offline, OfflineChatModel) and offline.latency_ms == 7
    remote = build_model(
        make_settings(llm_provider="openai", openai_base_url="http://127.0.0.1:9/v1")
    )
    assert type(remote).__name__ == "ChatOpenAI"
    assert remote.model_name == "gpt-4o-mini" and remote.max_retries == 1  # type: ignore[attr-defined]


async def test_a_corrected_code_after_an_error_is_used(chat: Chat, store: BookingStore) -> None:
    code = code_in(await chat.say("haircut on friday at 10, I'm Ann, ann@example.com"))
    assert (await chat.say("cancel ZZZ999")).startswith("Sorry, I couldn't cancel")
    done = await chat.say(f"oops, it is {code}")
    assert done.startswith("Done") and store.get(code).status == "cancelled"  # type: ignore[union-attr]


async def test_same_words_in_two_threads_are_two_requests(graph: Any) -> None:
    text = "haircut tomorrow at 3pm, I'm Ana, ana@example.com"
    assert (await Chat(graph, "one").say(text)).startswith("All set!")
    assert "already taken" in await Chat(graph, "two").say(text)
