"""Customers the salon has met: their name and usual service, in the Store API's
long-term memory, so that any thread on any worker greets a returning customer by name.

One item per contact under the namespace `("customers",)` (inside the run owner's own
namespace when keys are on): `{"name", "contact", "services": {service: count},
"codes": [...]}`, written after each confirmed booking (once per confirmation code, so
a replayed turn counts once) and read when a customer's message gives a contact. The
conversation keeps what was read (`customer` in the state), so later turns need no read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.store.base import BaseStore

from service.agent.offline.nlu import parse_contact
from service.bookings.store import normalize_contact
from service.storage.store import STORE_OWNER_KEY, scoped

CUSTOMERS = ("customers",)
# The codes kept per customer, to count each booking once.
KEPT_CODES = 50
# How the system prompt names a returning customer; the offline model reads it back.
RETURNING_LINE = re.compile(
    r"^Returning customer: (?P<name>.+) \((?P<contact>[^()]+)\); "
    r"usual service: (?P<service>[^.]+)\.",
    re.MULTILINE,
)


def _namespace(config: RunnableConfig) -> tuple[str, ...]:
    owner = (config.get("configurable") or {}).get(STORE_OWNER_KEY)
    return scoped(owner, CUSTOMERS)


def usual_service(profile: dict[str, Any]) -> str | None:
    """The service booked most often (the latest of equals)."""
    services: dict[str, int] = profile.get("services") or {}
    return max(reversed(list(services)), key=services.__getitem__, default=None)


def customer_prompt(customer: dict[str, Any] | None) -> str:
    """The system prompt's line for a returning customer ('' for anyone else)."""
    if not customer:
        return ""
    service = usual_service(customer) or "none yet"
    return (
        f"\nReturning customer: {customer['name']} ({customer['contact']}); usual service: "
        f"{service}. Greet them by name, offer their usual service, and book under this "
        "name and contact unless they give others."
    )


def latest_contact(messages: Sequence[BaseMessage]) -> str | None:
    """The contact in the customer's latest message, if it gives one."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return parse_contact(str(message.text))
    return None


async def recall(
    store: BaseStore | None,
    config: RunnableConfig,
    messages: Sequence[BaseMessage],
    known: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """The customer this conversation is with: read when their latest message gives a
    contact the conversation has not looked up yet (None for someone new), else what it
    already knows."""
    contact = latest_contact(messages)
    if store is None or contact is None:
        return known
    key = normalize_contact(contact)
    if known and normalize_contact(known["contact"]) == key:
        return known
    item = await store.aget(_namespace(config), key)
    return item.value if item is not None else None


def confirmed_bookings(results: Sequence[ToolMessage]) -> list[dict[str, Any]]:
    """The bookings the latest tool results confirmed."""
    confirmed = []
    for message in results:
        if message.name != "book_appointment" or message.status == "error":
            continue
        try:
            payload = json.loads(str(message.content))
        except ValueError:
            continue
        if isinstance(payload, dict) and payload.get("status") == "confirmed":
            confirmed.append(payload)
    return confirmed


async def remember(
    store: BaseStore | None, config: RunnableConfig, bookings: Sequence[dict[str, Any]]
) -> dict[str, Any] | None:
    """Count each confirmed booking in its customer's profile; the last profile written."""
    profile = None
    if store is None:
        return None
    for booking in bookings:
        key = normalize_contact(str(booking["contact"]))
        item = await store.aget(_namespace(config), key)
        profile = dict(item.value) if item is not None else {"services": {}, "codes": []}
        code = booking.get("confirmation_code")
        if code in profile["codes"]:
            continue  # a replayed turn: counted already
        services = dict(profile["services"])
        services[booking["service"]] = services.get(booking["service"], 0) + 1
        profile.update(
            name=booking["customer_name"],
            contact=booking["contact"],
            services=services,
            codes=[*profile["codes"], code][-KEPT_CODES:],
        )
        await store.aput(_namespace(config), key, profile)
    return profile
