"""LangChain's human-in-the-loop shapes: what an interrupt asks, what a person answers.

The request is the one `HumanInTheLoopMiddleware` raises and agent-chat-ui renders
(`action_requests` with one `review_configs` entry per action name); the answer is
`{"decisions": [...]}`, one decision per action request, in order. The run layer checks
an answer against the pending request before the run starts, so a malformed answer is
refused with a 422 and never reaches the graph; the graph parses it again with the same
models.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

DecisionType = Literal["approve", "edit", "reject"]
ToolName = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class ActionRequest(BaseModel):
    name: str
    args: dict[str, Any]
    description: str = ""


class ReviewConfig(BaseModel):
    action_name: str
    allowed_decisions: list[DecisionType]


class ApprovalRequest(BaseModel):
    """The interrupt's value: the actions waiting for a decision."""

    action_requests: list[ActionRequest]
    review_configs: list[ReviewConfig]

    def allowed(self, action_name: str) -> list[str]:
        for config in self.review_configs:
            if config.action_name == action_name:
                return list(config.allowed_decisions)
        return []


class _Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Approve(_Decision):
    type: Literal["approve"]


class EditedAction(_Decision):
    name: ToolName
    args: dict[str, Any]


class Edit(_Decision):
    type: Literal["edit"]
    edited_action: EditedAction


class Reject(_Decision):
    type: Literal["reject"]
    message: Annotated[str, StringConstraints(max_length=2000)] | None = None


Decision = Annotated[Approve | Edit | Reject, Field(discriminator="type")]


class ApprovalAnswer(_Decision):
    """The resume value: `{"decisions": [...]}`."""

    decisions: Annotated[list[Decision], Field(min_length=1, max_length=32)]


_REQUEST = TypeAdapter(ApprovalRequest)


class ApprovalAnswerError(ValueError):
    """The answer does not fit the request it resumes."""


def as_request(value: Any) -> ApprovalRequest | None:
    """The interrupt value as an approval request, or None when it is some other interrupt."""
    if not isinstance(value, dict) or "action_requests" not in value:
        return None
    try:
        return _REQUEST.validate_python(value)
    except ValidationError:
        return None


def check_answer(request: ApprovalRequest, answer: Any) -> ApprovalAnswer:
    """The answer, parsed; ApprovalAnswerError says plainly what is wrong with it."""
    try:
        parsed = ApprovalAnswer.model_validate(answer)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "resume"
        raise ApprovalAnswerError(
            f"command.resume must be {{'decisions': [...]}} with one decision per action "
            f"({where}: {first['msg']})"
        ) from None
    actions = request.action_requests
    if len(parsed.decisions) != len(actions):
        raise ApprovalAnswerError(
            f"{len(actions)} action(s) wait for a decision; command.resume has "
            f"{len(parsed.decisions)} decision(s)"
        )
    for index, (action, decision) in enumerate(zip(actions, parsed.decisions, strict=True)):
        allowed = request.allowed(action.name)
        if decision.type not in allowed:
            raise ApprovalAnswerError(
                f"decisions[{index}]: {decision.type!r} is not allowed for {action.name!r} "
                f"(allowed: {', '.join(allowed) or 'none'})"
            )
        if isinstance(decision, Edit) and decision.edited_action.name != action.name:
            raise ApprovalAnswerError(
                f"decisions[{index}]: an edit must keep the action {action.name!r}"
            )
    return parsed
