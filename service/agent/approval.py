"""Human in the loop: a booking waits for a person's decision before it is written.

The `approval` node raises LangChain's human-in-the-loop request (the shape
`HumanInTheLoopMiddleware` uses and agent-chat-ui renders) and, once resumed with
`{"decisions": [...]}`, sends each approved or edited tool call to the tools node and
answers each rejected one itself, so the model hears that nothing was booked. The
node runs again from its start on resume, so everything before `interrupt()` is free
of side effects; the booking itself stays idempotent per tool call id, so a resume
replayed after a crash books once.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolCall, ToolMessage
from langgraph.types import Command, Send, interrupt

from service.schemas.approval import (
    ActionRequest,
    ApprovalRequest,
    Edit,
    Reject,
    ReviewConfig,
    check_answer,
)

REVIEWED_TOOLS = frozenset({"book_appointment"})
DECLINED = "declined"


def describe(call: ToolCall) -> str:
    """One line a person can approve: what would be booked, when and for whom."""
    args = call["args"]
    if call["name"] == "book_appointment":
        return (
            f"Book {args.get('service', '?')} on {args.get('date', '?')} at "
            f"{args.get('time', '?')} for {args.get('customer_name', '?')} "
            f"({args.get('contact', '?')})"
        )
    return f"Run {call['name']} with {json.dumps(args, ensure_ascii=False)}"


def approval_request(calls: list[ToolCall]) -> ApprovalRequest:
    return ApprovalRequest(
        action_requests=[
            ActionRequest(name=call["name"], args=call["args"], description=describe(call))
            for call in calls
        ],
        review_configs=[
            ReviewConfig(action_name=name, allowed_decisions=["approve", "edit", "reject"])
            for name in dict.fromkeys(call["name"] for call in calls)
        ],
    )


def declined_message(call: ToolCall, reason: str | None) -> ToolMessage:
    """The tool result of a rejected call: nothing was done, and why."""
    payload = {
        "status": DECLINED,
        "reason": reason or None,
        "note": "The customer did not approve this booking; nothing was booked.",
    }
    return ToolMessage(
        json.dumps(payload, ensure_ascii=False), tool_call_id=call["id"], name=call["name"]
    )


def approval_node(reviewed: frozenset[str]) -> Callable[[dict[str, Any]], Awaitable[Command]]:
    """The node between the model and the tools when a tool in `reviewed` is called."""

    async def approval(state: dict[str, Any]) -> Command:
        last: BaseMessage = state["messages"][-1]
        assert isinstance(last, AIMessage)
        calls = list(last.tool_calls)
        pending = [call for call in calls if call["name"] in reviewed]
        request = approval_request(pending)
        answer = check_answer(request, interrupt(request.model_dump()))
        decided = {call["id"]: d for call, d in zip(pending, answer.decisions, strict=True)}
        revised: list[ToolCall] = []
        declined: list[ToolMessage] = []
        for call in calls:
            decision = decided.get(call["id"])
            if isinstance(decision, Edit):
                call = {**call, "args": decision.edited_action.args}
            elif isinstance(decision, Reject):
                declined.append(declined_message(call, decision.message))
            revised.append(call)
        update: list[BaseMessage] = []
        if revised != calls:  # same id: replaces the model's message with the edited calls
            update.append(last.model_copy(update={"tool_calls": revised}))
        update.extend(declined)
        answered = {message.tool_call_id for message in declined}
        to_run = [call for call in revised if call["id"] not in answered]
        if not to_run:
            return Command(update={"messages": update}, goto="agent")
        return Command(
            update={"messages": update},
            goto=[
                Send(
                    "tools",
                    {"__type": "tool_call_with_context", "tool_call": call, "state": state},
                )
                for call in to_run
            ],
        )

    return approval
