"""What simulated customers say, in Spanish and English, and how their replies are read.

Shared by the Locust profile and the benchmark so both drive the same dialogue
paths of the offline model (slot filling, booking, cancelling, availability).
Every booking gets its own (service, day, time) from `SlotAllocator`, so users
rarely compete for a slot; a "taken" answer is still a valid outcome.
"""

from __future__ import annotations

import calendar
import datetime as dt
import random
import re
from dataclasses import dataclass
from typing import Literal

from service.agent.offline.nlu import MONTHS_ES as NLU_MONTHS_ES
from service.settings import Settings

Lang = Literal["es", "en"]

SPANISH_SERVICE = {
    "haircut": "corte de pelo",
    "beard trim": "arreglo de barba",
    "hair coloring": "tinte",
    "manicure": "manicura",
}
MONTHS_ES = tuple(NLU_MONTHS_ES)
MONTHS_EN = tuple(calendar.month_name[1:])
NAMES = (
    "Ana",
    "Bob",
    "Lucía",
    "Carlos",
    "Marta",
    "John",
    "Sofía",
    "Pedro",
    "Emma",
    "Javier",
    "Olivia",
    "Diego",
)

_CODE = re.compile(r"(?:confirmation code is|código de confirmación es) ([A-Z0-9]{6})")
_TAKEN = re.compile(r"already taken|ya están ocupadas")
_CANCELLED = re.compile(r"is cancelled|he cancelado")
_DECLINED = re.compile(r"have not booked anything|no he reservado nada")


@dataclass(frozen=True)
class Slot:
    service: str
    day: dt.date
    time: dt.time


class SlotAllocator:
    """Hands out distinct bookable slots: every open day from `first_offset` days ahead.

    Index i maps to one (day, time, service) of the schedule, so consecutive
    bookings never collide until the whole horizon is used, then wrap around.
    """

    def __init__(self, settings: Settings, *, first_offset: int = 2, today: dt.date | None = None):
        self.settings = settings
        today = today or dt.datetime.now(settings.tz).date()
        last = settings.booking_horizon_days - 1
        self.days = [
            today + dt.timedelta(days=offset)
            for offset in range(first_offset, last)
            if (today + dt.timedelta(days=offset)).weekday() in settings.booking_open_days
        ]
        step = dt.timedelta(minutes=settings.booking_slot_minutes)
        start = dt.datetime.combine(today, settings.opening_time)
        close = dt.datetime.combine(today, settings.closing_time)
        self.times: list[dt.time] = []
        while start + step <= close:
            self.times.append(start.time())
            start += step
        self.services = list(settings.booking_services)

    @property
    def size(self) -> int:
        return len(self.days) * len(self.times) * len(self.services)

    def slot(self, index: int) -> Slot:
        index %= self.size
        service = self.services[index % len(self.services)]
        index //= len(self.services)
        time = self.times[index % len(self.times)]
        day = self.days[index // len(self.times)]
        return Slot(service, day, time)


@dataclass(frozen=True)
class Customer:
    """One simulated customer for one booking conversation."""

    lang: Lang
    name: str
    email: str
    slot: Slot
    style: int = 0  # picks one of several phrasings, so the NLU sees variety


def make_customer(uid: int, slot: Slot, rng: random.Random | None = None) -> Customer:
    rng = rng or random.Random(uid)
    name = NAMES[uid % len(NAMES)]
    ascii_name = name.lower().translate(str.maketrans("áéíóú", "aeiou"))
    return Customer(
        lang="es" if uid % 2 == 0 else "en",
        name=name,
        email=f"{ascii_name}.{uid}@example.com",
        slot=slot,
        style=rng.randrange(3),
    )


# --- phrasing ----------------------------------------------------------------------------
def service_text(c: Customer) -> str:
    if c.lang == "es":
        return SPANISH_SERVICE.get(c.slot.service, c.slot.service)
    return c.slot.service


def date_text(c: Customer) -> str:
    day = c.slot.day
    if c.style == 2:
        return day.isoformat()
    if c.lang == "es":
        return f"el {day.day} de {MONTHS_ES[day.month - 1]}"
    return f"on {MONTHS_EN[day.month - 1]} {day.day}"


def time_text(c: Customer) -> str:
    t = c.slot.time
    if c.style == 1 and t.minute == 0:
        hour12 = t.hour % 12 or 12
        if c.lang == "es":
            period = "de la tarde" if t.hour >= 12 else "de la mañana"
            return f"a las {hour12} {period}"
        return f"at {hour12}{'pm' if t.hour >= 12 else 'am'}"
    if c.style == 1 and t.minute == 30 and c.lang == "es":
        return f"a las {t.hour % 12 or 12} y media"
    return f"a las {t:%H:%M}" if c.lang == "es" else f"at {t:%H:%M}"


def greeting(c: Customer) -> str:
    if c.lang == "es":
        return ("Hola, quiero agendar una cita", "Buenas, quisiera reservar", "Hola")[c.style]
    return ("Hi, I'd like to book an appointment", "Hello, I want to book", "Hi there")[c.style]


def slot_message(c: Customer) -> str:
    if c.lang == "es":
        return f"{service_text(c)} para {date_text(c)} {time_text(c)}"
    return f"a {service_text(c)} {date_text(c)} {time_text(c)}"


def booking_request(c: Customer) -> str:
    """Intent and slot in one message."""
    if c.lang == "es":
        return f"Quiero una cita de {service_text(c)} para {date_text(c)} {time_text(c)}"
    return f"I'd like to book a {service_text(c)} {date_text(c)} {time_text(c)}"


def customer_message(c: Customer) -> str:
    if c.lang == "es":
        if c.style == 1:
            return f"Soy {c.name}, mi correo es {c.email}"
        return f"me llamo {c.name}, {c.email}"
    if c.style == 1:
        return f"I'm {c.name}, email {c.email}"
    return f"my name is {c.name}, {c.email}"


def one_shot(c: Customer) -> str:
    """A complete booking request in one message."""
    if c.lang == "es":
        return (
            f"Quiero una cita de {service_text(c)} para {date_text(c)} {time_text(c)}, "
            f"me llamo {c.name}, {c.email}"
        )
    return (
        f"I'd like a {service_text(c)} {date_text(c)} {time_text(c)}, "
        f"my name is {c.name}, {c.email}"
    )


def availability_question(c: Customer) -> str:
    if c.lang == "es":
        return f"¿Qué horas hay libres {date_text(c)} para {service_text(c)}?"
    return f"What times are free {date_text(c)} for a {service_text(c)}?"


def cancel_message(c: Customer, code: str) -> str:
    if c.lang == "es":
        return (f"cancela {code}", f"Quiero cancelar la cita {code}", f"anula {code}")[c.style]
    return (f"cancel {code}", f"Please cancel appointment {code}", f"cancel {code} please")[c.style]


def my_appointments(c: Customer) -> str:
    if c.lang == "es":
        return f"¿Tengo alguna cita? Mi correo es {c.email}"
    return f"Do I have any appointments? My email is {c.email}"


def thanks(c: Customer) -> str:
    return "¡Gracias!" if c.lang == "es" else "Thanks!"


# --- reading replies -----------------------------------------------------------------------
def confirmation_code(reply: str) -> str | None:
    match = _CODE.search(reply)
    return match.group(1) if match else None


def is_taken(reply: str) -> bool:
    return bool(_TAKEN.search(reply))


def is_cancelled(reply: str) -> bool:
    return bool(_CANCELLED.search(reply))


def is_declined(reply: str) -> bool:
    return bool(_DECLINED.search(reply))


def last_ai_text(values: object) -> str | None:
    """The final message's text when it is an AI message with content, else None."""
    if not isinstance(values, dict):
        return None
    messages = values.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("type") != "ai":
        return None
    content = _text(last.get("content"))
    return content if isinstance(content, str) and content.strip() else None


def _text(content: object) -> object:
    """A message's content, its text parts joined when it is a list of them."""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content


def human_texts(values: object) -> list[str]:
    """The human messages' texts in a thread's values, in order."""
    messages = values.get("messages") if isinstance(values, dict) else None
    return [
        str(_text(m.get("content")))
        for m in messages or []
        if isinstance(m, dict) and m.get("type") == "human"
    ]


def human_count(values: object) -> int:
    return len(human_texts(values))
