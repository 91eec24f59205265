"""The agent graph: model ⇄ tools, with a bounded retry loop for failing tool calls.

Returned uncompiled so the caller compiles it with its own checkpointer. Nodes are
async so a run stays on the event loop; the tools themselves (sync) run in
LangGraph's thread pool. With BOOKING_CONFIRMATION=interrupt a booking passes an
`approval` node first, which waits for a person (`service.agent.approval`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from langgraph.runtime import Runtime, get_runtime
from typing_extensions import TypedDict

from service.agent.approval import REVIEWED_TOOLS, approval_node
from service.agent.context import BookingContext, context_prompt
from service.agent.memory import confirmed_bookings, customer_prompt, recall, remember
from service.observability.metrics import LLM_CALL_SECONDS
from service.settings import Settings

log = logging.getLogger(__name__)

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
INTERRUPTED_TOOL_CALL = "Not run: the previous request was interrupted before this tool ran."


def _is_human(message: Any) -> bool:
    if isinstance(message, dict):
        return message.get("role", message.get("type")) in ("user", "human")
    return isinstance(message, HumanMessage)


def _message_id(message: Any) -> Any:
    return message.get("id") if isinstance(message, dict) else getattr(message, "id", None)


def add_conversation_messages(left: Any, right: Any) -> Any:
    """`add_messages`, except that a user message never replaces what the service wrote.

    A user message whose id is an AI or tool message's id would overwrite it (a booking
    confirmation, a tool result); such a message gets a fresh id and is appended. A
    user message with the id of an earlier user message still replaces it, as in
    LangGraph.
    """
    incoming = right if isinstance(right, list) else [right]
    claimed = {_message_id(m) for m in incoming if _is_human(m)} - {None}
    written = {m.id for m in left if not isinstance(m, HumanMessage)} if claimed else set()
    if claimed & written:
        right = [
            _fresh_id(m) if _is_human(m) and _message_id(m) in written else m for m in incoming
        ]
    return add_messages(left, right)


def _fresh_id(message: Any) -> Any:
    new_id = str(uuid.uuid4())
    if isinstance(message, dict):
        return {**message, "id": new_id}
    return message.model_copy(update={"id": new_id})


class AgentState(TypedDict):
    """Conversation plus the per-turn retry budget for failing tool calls."""

    messages: Annotated[list[AnyMessage], add_conversation_messages]
    tool_retries: int
    retry_instruction: str | None
    # A returning customer's profile, as read from the store (service.agent.memory).
    customer: dict[str, Any] | None


def system_prompt(
    settings: Settings, now: dt.datetime, context: BookingContext | None = None
) -> str:
    """What the model must know every turn: the business, its rules, today's date, and
    what the run's context sets."""
    today = now.astimezone(settings.tz).date()
    days = ", ".join(WEEKDAYS[day] for day in settings.booking_open_days)
    return (
        "You are the booking assistant of a hair and beauty salon. "
        f"Services: {', '.join(settings.booking_services)}. "
        f"Open {days}, {settings.booking_hours} ({settings.booking_timezone}); appointments "
        f"start every {settings.booking_slot_minutes} minutes from opening time and can be "
        f"booked up to {settings.booking_horizon_days} days ahead. "
        f"Today is {WEEKDAYS[today.weekday()]} {today.isoformat()}.\n"
        "Always answer in the customer's language (Spanish or English). Use the tools to "
        "list services, check availability, book, cancel and look up appointments; never "
        "invent free times or confirmation codes. To book you need the service, the date "
        "(YYYY-MM-DD), the start time (24-hour HH:MM), the customer's name and an email "
        "address or phone number: ask for whatever is missing, and resolve relative dates "
        "such as 'tomorrow' from today's date. If a time is taken, offer the alternatives "
        "the tool returns. After booking, give the confirmation code." + context_prompt(context)
    )


def last_tool_results(messages: Sequence[BaseMessage]) -> list[ToolMessage]:
    """The ToolMessages answering the most recent AI message."""
    results: list[ToolMessage] = []
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            break
        results.append(message)
    return results[::-1]


def context_window(messages: Sequence[BaseMessage], limit: int) -> list[BaseMessage]:
    """The last `limit` messages, starting at a user message (no orphaned tool result).

    The model sees a bounded window, so a turn costs the same at message 20 and at 2000;
    the stored conversation keeps every message.
    """
    if len(messages) <= limit:
        return list(messages)
    start = len(messages) - limit
    while start < len(messages) - 1 and not isinstance(messages[start], HumanMessage):
        start += 1
    return list(messages[start:])


def answer_dangling_tool_calls(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """Give every tool call a result, so a run cut off mid-step cannot wedge the thread.

    Providers reject a history where an AI tool call has no ToolMessage; this only
    shapes the prompt, never the stored state.
    """
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    out: list[BaseMessage] = []
    pending: list[ToolMessage] = []
    for message in messages:
        if pending and not isinstance(message, ToolMessage):
            out.extend(pending)
            pending = []
        out.append(message)
        if isinstance(message, AIMessage):
            pending = [
                ToolMessage(
                    INTERRUPTED_TOOL_CALL,
                    tool_call_id=call["id"],
                    name=call["name"],
                    status="error",
                )
                for call in message.tool_calls
                if call["id"] not in answered
            ]
    return out + pending


def retry_instruction(errors: Sequence[ToolMessage], attempt: int, limit: int) -> str:
    details = "; ".join(f"{m.name}: {str(m.text).strip()}" for m in errors)
    return (
        f"The last tool call failed ({details}). Fix the arguments and try again, or ask "
        f"the user for the missing or correct information. (Retry {attempt} of {limit}.)"
    )


def stop_instruction(errors: Sequence[ToolMessage]) -> str:
    details = "; ".join(f"{m.name}: {str(m.text).strip()}" for m in errors)
    return (
        f"Tool calls kept failing ({details}). Stop calling tools in this turn. Apologize "
        "to the user and explain the problem in their language, and say what they can do "
        "next (for example another day or time)."
    )


def confirmation_mode(
    config: RunnableConfig, settings: Settings, context: BookingContext | None = None
) -> str:
    """`interrupt` when BOOKING_CONFIRMATION, the run's `config.configurable` or its
    `context` asks for it.

    A run can add the approval step, never remove it: a client must not skip an
    approval the operator requires.
    """
    asked = (config.get("configurable") or {}).get("booking_confirmation")
    from_context = context.booking_confirmation if context else None
    modes = (asked, from_context, settings.booking_confirmation)
    return "interrupt" if "interrupt" in modes else "none"


def build_graph(
    model: BaseChatModel,
    tools: Sequence[BaseTool],
    settings: Settings,
    *,
    now: Callable[[], dt.datetime] | None = None,
) -> StateGraph:
    """The uncompiled agent graph; compile it with a checkpointer."""
    clock = now or (lambda: dt.datetime.now(settings.tz))
    with_tools = model.bind_tools(list(tools))
    # Once retries are spent the model still sees the tools (providers need them to read
    # the history) but may not call them.
    without_tools = model.bind_tools(list(tools), tool_choice="none")
    limit = settings.tool_max_retries
    provider = settings.llm_provider

    async def agent(
        state: AgentState, config: RunnableConfig, runtime: Runtime[BookingContext]
    ) -> dict[str, Any]:
        messages = state["messages"]
        new_turn = bool(messages) and isinstance(messages[-1], HumanMessage)
        retries = 0 if new_turn else state.get("tool_retries", 0)
        instruction = None if new_turn else state.get("retry_instruction")
        exhausted = retries > limit
        known = state.get("customer")
        customer = known
        # The memory helps; it never fails a turn (a booking may already stand).
        try:
            if new_turn:
                customer = await recall(runtime.store, config, messages, known)
            else:
                booked = confirmed_bookings(last_tool_results(messages))
                await remember(runtime.store, config, booked)
        except Exception:
            log.exception("customer memory unavailable; the turn goes on without it")
        system = system_prompt(settings, clock(), runtime.context) + customer_prompt(customer)
        prompt: list[BaseMessage] = [SystemMessage(system)]
        prompt += answer_dangling_tool_calls(
            context_window(messages, settings.model_context_messages)
        )
        if instruction:
            prompt.append(SystemMessage(instruction))
        started = time.perf_counter()
        try:
            response = await (without_tools if exhausted else with_tools).ainvoke(prompt)
        finally:
            LLM_CALL_SECONDS.labels(provider=provider).observe(time.perf_counter() - started)
        if exhausted and isinstance(response, AIMessage) and response.tool_calls:
            # The bound is the graph's promise, not the model's: drop further calls.
            text = str(response.text).strip() or _fallback_apology(messages)
            response = AIMessage(content=text, id=response.id)
        update = {"messages": [response], "tool_retries": retries, "retry_instruction": None}
        if customer != known:
            update["customer"] = customer
        return update

    async def retry_handler(state: AgentState) -> dict[str, Any]:
        errors = [m for m in last_tool_results(state["messages"]) if m.status == "error"]
        if not errors:
            return {"retry_instruction": None}
        retries = state.get("tool_retries", 0) + 1
        if retries <= limit:
            return {
                "tool_retries": retries,
                "retry_instruction": retry_instruction(errors, retries, limit),
            }
        return {"tool_retries": retries, "retry_instruction": stop_instruction(errors)}

    def route(state: AgentState, config: RunnableConfig) -> Literal["tools", "approval", "__end__"]:
        last = state["messages"][-1]
        if not (isinstance(last, AIMessage) and last.tool_calls):
            return END
        # Read, not injected: `update_state` replays this edge without a runtime.
        runtime = get_runtime(BookingContext)
        context = runtime.context if runtime else None
        if confirmation_mode(config, settings, context) == "interrupt" and any(
            call["name"] in REVIEWED_TOOLS for call in last.tool_calls
        ):
            return "approval"
        return "tools"

    builder = StateGraph(AgentState, context_schema=BookingContext)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(list(tools), handle_tool_errors=True))
    builder.add_node("retry_handler", retry_handler)
    builder.add_node("approval", approval_node(REVIEWED_TOOLS), destinations=("tools", "agent"))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", "approval", END])
    builder.add_edge("tools", "retry_handler")
    builder.add_edge("retry_handler", "agent")
    return builder


def _fallback_apology(messages: Sequence[BaseMessage]) -> str:
    errors = [m for m in last_tool_results(messages) if m.status == "error"]
    detail = str(errors[-1].text).strip() if errors else "the booking system returned an error"
    return f"Sorry, I couldn't complete that request: {detail}"
