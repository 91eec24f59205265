"""What a run starts from besides new input: a command, breakpoints, a past checkpoint.

Everything here is checked before the run takes its thread or writes anything, so a
command the graph could not carry out (an unknown node, an update of a channel the
state does not have, a resume that does not answer the pending approval) is a 4xx with
a `detail`, never a failed run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from langchain_core.messages import convert_to_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Send, StateSnapshot

from service.schemas.approval import ApprovalAnswerError, as_request, check_answer
from service.schemas.models import RunCommand, SendTo
from service.schemas.validation import quote
from service.settings import Settings

# Nodes LangGraph adds itself; a client may neither go to nor break on them.
_INTERNAL_NODES = {"__start__", "__end__"}


class CommandError(ValueError):
    """The command, breakpoint or resume cannot apply to this graph or thread (422)."""


class CommandTooLargeError(CommandError):
    """A message in an update breaks a size limit (413)."""


class NotInterruptedError(Exception):
    """`command.resume` on a thread with no pending interrupt (409)."""


def node_names(graph: CompiledStateGraph) -> set[str]:
    return set(graph.nodes) - _INTERNAL_NODES


def check_breakpoints(graph: CompiledStateGraph, field: str, value: Any) -> None:
    if value is None or value == "*":
        return
    for name in value:
        check_node(graph, name, field)


def _check_messages(value: Any, settings: Settings, where: str) -> None:
    items = value if isinstance(value, list) else [value]
    if len(items) > settings.max_messages_per_request:
        raise CommandError(
            f"{where} has {len(items)} messages; the limit is "
            f"{settings.max_messages_per_request} (MAX_MESSAGES_PER_REQUEST)"
        )
    try:
        messages = convert_to_messages(items)
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise CommandError(f"{where}.messages: {str(exc)[:200]}") from None
    for message in messages:
        if len(str(message.content)) > settings.max_message_chars:
            raise CommandTooLargeError(
                f"{where}: a message has more than {settings.max_message_chars} characters "
                "(MAX_MESSAGE_CHARS)"
            )


def check_update(
    graph: CompiledStateGraph, items: Iterable[tuple[str, Any]], settings: Settings, where: str
) -> None:
    """A state update names only the state's keys, and its messages are messages."""
    channels = set(graph.builder.channels)
    for key, value in items:
        if key not in channels:
            raise CommandError(
                f"{where}: the state has no key {quote(key)}; keys: {', '.join(sorted(channels))}"
            )
        if key == "messages":
            _check_messages(value, settings, where)


def check_node(graph: CompiledStateGraph, name: str | None, where: str) -> None:
    if name is not None and name not in node_names(graph):
        raise CommandError(
            f"{where}: no node named {quote(name)}; nodes: {', '.join(sorted(node_names(graph)))}"
        )


def to_command(command: RunCommand, graph: CompiledStateGraph, settings: Settings) -> Command:
    """The LangGraph `Command` for a run's `command`, checked against the graph."""
    update = command.update
    pairs = update.items() if isinstance(update, dict) else [tuple(p) for p in update or ()]
    check_update(graph, pairs, settings, "command.update")
    for name in command.goto_nodes():
        check_node(graph, name, "command.goto")
    goto: Any = ()
    if command.goto is not None:
        targets = command.goto if isinstance(command.goto, list) else [command.goto]
        goto = [Send(t.node, t.input) if isinstance(t, SendTo) else t for t in targets]
    if isinstance(update, list):
        update = [tuple(pair) for pair in update]
    return Command(resume=command.resume, update=update, goto=goto)


def check_resume(snapshot: StateSnapshot, resume: Any) -> None:
    """A resume must answer a pending interrupt, and an approval as its request asks."""
    pending = list(snapshot.interrupts)
    if not pending:
        raise NotInterruptedError(
            "the thread has no pending interrupt to resume (it was never interrupted, or "
            "the interrupt was already resumed); nothing was run"
        )
    by_id = {item.id: item for item in pending}
    if isinstance(resume, dict) and resume and set(resume) <= set(by_id):
        answers = [(by_id[key], value) for key, value in resume.items()]
    else:
        answers = [(pending[0], resume)]
    for interrupt, answer in answers:
        request = as_request(interrupt.value)
        if request is None:
            continue
        try:
            check_answer(request, answer)
        except ApprovalAnswerError as exc:
            raise CommandError(str(exc)) from None
