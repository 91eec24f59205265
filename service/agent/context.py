"""What a run, or the assistant it runs as, may set for one conversation: LangGraph's
runtime context (`context` on a run), checked against this model at the door."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

Language = Literal["es", "en"]
_LANGUAGE_NAMES: dict[str, str] = {"es": "Spanish", "en": "English"}
# How the system prompt states the context, which the offline model reads back.
LANGUAGE_LINE = re.compile(r"\(reply language: (es|en)\)")
SALON_LINE = re.compile(r"^The salon is called (.+)\.$", re.MULTILINE)


class BookingContext(BaseModel):
    """The conversation's settings; every field is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The reply language; None: the customer's own.
    language: Language | None = None
    # The salon's name, as the assistant introduces itself.
    salon_name: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    # `interrupt`: each booking waits for a person's approval (never turns one off).
    booking_confirmation: Literal["interrupt", "none"] | None = None


def context_prompt(context: BookingContext | None) -> str:
    """The system prompt's lines for the context ('' without one)."""
    if context is None:
        return ""
    lines = []
    if context.salon_name:
        lines.append(f"The salon is called {context.salon_name}.")
    if context.language:
        name = _LANGUAGE_NAMES[context.language]
        lines.append(
            f"Whatever language the customer writes in, answer in {name} "
            f"(reply language: {context.language})."
        )
    return "\n" + "\n".join(lines) if lines else ""
