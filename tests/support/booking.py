"""Booking messages the offline model turns into a booking in one turn."""

from __future__ import annotations

import datetime as dt
import itertools

from service.settings import Settings

_slots = itertools.count()


def next_open_day(days_ahead: int = 2) -> str:
    """An open day (ISO date) at least `days_ahead` days from today, in the salon's zone."""
    settings = Settings(_env_file=None)
    day = dt.datetime.now(settings.tz).date() + dt.timedelta(days=days_ahead)
    while day.weekday() not in settings.booking_open_days:
        day += dt.timedelta(days=1)
    return day.isoformat()


def booking_text(name: str = "Bob") -> str:
    """A complete booking request for a slot no earlier call of this process asked for."""
    slot = next(_slots)
    day = next_open_day(2 + slot // 16)
    hour, half = divmod(slot % 16, 2)
    return (
        f"I'd like a haircut on {day} at {9 + hour}:{30 * half:02d}, my name is {name}, "
        f"{name.lower()}@example.com"
    )
