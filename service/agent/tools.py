"""The tools the model may call, thin wrappers over `BookingStore`.

Bad arguments raise, so `ToolNode(handle_tool_errors=True)` hands the model an
error `ToolMessage` it can correct; a taken slot is an ordinary answer. The tool
call id is the idempotency key: a tool call replayed after a crash or retry
returns the original confirmation instead of booking twice. Booking and cancelling
announce themselves to `service.side_effects` first, so the run that made them is
always persisted.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Annotated, Any

from langchain_core.tools import BaseTool, InjectedToolCallId, tool
from langgraph.config import get_stream_writer

from service import side_effects
from service.bookings.store import WEEKDAYS, BookingError, BookingStore
from service.observability.metrics import TOOL_CALLS
from service.settings import Settings

_TIME = re.compile(r"^\s*([01]?\d|2[0-3])[:.h]([0-5]\d)\s*$")


def parse_iso_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise BookingError(f"Invalid date {value!r}; use YYYY-MM-DD, e.g. 2025-06-03.") from None


def parse_iso_time(value: str) -> dt.time:
    match = _TIME.match(value)
    if not match:
        raise BookingError(f"Invalid time {value!r}; use 24-hour HH:MM, e.g. 15:30.")
    return dt.time(int(match.group(1)), int(match.group(2)))


def _progress(name: str, status: str) -> None:
    """A `custom` stream event: which tool is working and how it ended, so a chat page
    can show "checking availability…" while it runs. Nothing outside a graph run."""
    try:
        write = get_stream_writer()
    except RuntimeError:
        return
    write({"type": "tool_progress", "tool": name, "status": status})


def _counted(name: str, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run a tool body and count its outcome: ok, rejected (slot taken) or error."""
    _progress(name, "running")
    try:
        result = call()
    except Exception:
        TOOL_CALLS.labels(tool=name, outcome="error").inc()
        _progress(name, "error")
        raise
    outcome = "rejected" if result.get("status") == "taken" else "ok"
    TOOL_CALLS.labels(tool=name, outcome=outcome).inc()
    _progress(name, outcome)
    return result


def _invalid_arguments(name: str) -> Callable[[Exception], str]:
    """Schema errors never reach the tool body: count them and hand the model a fixable error."""

    def handle(exc: Exception) -> str:
        TOOL_CALLS.labels(tool=name, outcome="error").inc()
        errors = getattr(exc, "errors", None)
        details = (
            "; ".join(
                f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}" for err in errors()
            )
            if callable(errors)
            else str(exc)
        )
        return f"Error: invalid arguments for {name}: {details}.\n Please fix your mistakes."

    return handle


def build_tools(store: BookingStore, settings: Settings) -> list[BaseTool]:
    """The booking tools bound to one store."""

    @tool
    def list_services() -> dict[str, Any]:
        """List the services that can be booked, with opening days and hours."""
        return _counted(
            "list_services",
            lambda: {
                "services": store.services(),
                "open_days": [WEEKDAYS[day] for day in settings.booking_open_days],
                "hours": settings.booking_hours,
                "slot_minutes": settings.booking_slot_minutes,
                "timezone": settings.booking_timezone,
            },
        )

    @tool
    def check_availability(date: str, service: str | None = None) -> dict[str, Any]:
        """Free start times on one day.

        Args:
            date: The day, as YYYY-MM-DD.
            service: Optional service name; without it, times free for any service.
        """

        def run() -> dict[str, Any]:
            day = parse_iso_date(date)
            name = store.resolve_service(service) if service else None
            result: dict[str, Any] = {
                "date": day.isoformat(),
                "weekday": WEEKDAYS[day.weekday()],
                "service": name,
                "open": store.is_open_day(day),
            }
            if not result["open"]:
                result["slots"] = []
                result["message"] = (
                    f"Closed on {WEEKDAYS[day.weekday()]}s. Open days: {store.open_days_text()}."
                )
                return result
            if day > store.last_bookable_day():
                result["slots"] = []
                result["message"] = (
                    f"Bookings open {settings.booking_horizon_days} days ahead "
                    f"(until {store.last_bookable_day().isoformat()})."
                )
                return result
            slots = store.available_slots(day, name)
            result["slots"] = [slot.strftime("%H:%M") for slot in slots]
            return result

        return _counted("check_availability", run)

    @tool
    def book_appointment(
        service: str,
        date: str,
        time: str,
        customer_name: str,
        contact: str,
        tool_call_id: Annotated[str, InjectedToolCallId],
    ) -> dict[str, Any]:
        """Book an appointment. Returns a confirmation code, or "taken" with alternatives.

        Args:
            service: One of the offered services, e.g. "haircut".
            date: The day, as YYYY-MM-DD.
            time: The start time, as 24-hour HH:MM.
            customer_name: The customer's name.
            contact: The customer's email address or phone number.
        """

        def run() -> dict[str, Any]:
            starts_at = dt.datetime.combine(parse_iso_date(date), parse_iso_time(time))
            side_effects.begin()
            result = store.book(
                service, starts_at, customer_name, contact, idempotency_key=tool_call_id
            )
            return result.to_dict()

        return _counted("book_appointment", run)

    @tool
    def cancel_appointment(confirmation_code: str) -> dict[str, Any]:
        """Cancel an appointment by its 6-character confirmation code."""

        def run() -> dict[str, Any]:
            side_effects.begin()
            return store.cancel(confirmation_code).to_dict()

        return _counted("cancel_appointment", run)

    @tool
    def list_my_appointments(contact: str) -> dict[str, Any]:
        """Upcoming confirmed appointments for an email address or phone number."""
        return _counted(
            "list_my_appointments",
            lambda: {
                "contact": contact,
                "appointments": [item.to_dict() for item in store.appointments_for(contact)],
            },
        )

    tools: list[BaseTool] = [
        list_services,
        check_availability,
        book_appointment,
        cancel_appointment,
        list_my_appointments,
    ]
    for item in tools:
        item.handle_validation_error = _invalid_arguments(item.name)
    return tools
