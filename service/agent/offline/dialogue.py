"""The offline model's dialogue policy: slot-filling over the conversation.

Given the messages so far, decide the next step: ask for what is missing, call a
tool, or put the tool results into words, in the customer's language. Fields are
collected from the customer's messages since the last completed booking or
cancellation, so a finished booking never leaks into the next one.
"""

from __future__ import annotations

import ast
import calendar
import datetime as dt
import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from service.agent.context import LANGUAGE_LINE, SALON_LINE
from service.agent.graph import last_tool_results
from service.agent.memory import RETURNING_LINE
from service.agent.offline import nlu
from service.agent.offline.nlu import Intent, Lang
from service.settings import Settings

STOP_TOOLS = re.compile(r"stop calling tools|do not call (any )?(more )?tools", re.IGNORECASE)

_DAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
}
_MONTHS = {"en": list(calendar.month_name[1:]), "es": nlu.MONTHS_ES}
SERVICE_NAMES_ES = {
    "haircut": "corte de pelo",
    "beard trim": "arreglo de barba",
    "hair coloring": "tinte",
    "manicure": "manicura",
}
_ACTIONS = {
    "book_appointment": ("book that appointment", "reservar la cita"),
    "cancel_appointment": ("cancel that appointment", "cancelar la cita"),
    "check_availability": ("check availability", "consultar la disponibilidad"),
    "list_my_appointments": ("look up your appointments", "buscar tus citas"),
    "list_services": ("list the services", "consultar los servicios"),
}


@dataclass(frozen=True)
class Reply:
    """The next AI message: text, or one tool call."""

    text: str = ""
    tool_name: str | None = None
    tool_args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Fields:
    """What the customer has told us so far; later messages override earlier ones."""

    service: str | None = None
    date: dt.date | None = None
    time: dt.time | None = None
    name: str | None = None
    contact: str | None = None


def _text(message: BaseMessage) -> str:
    return str(message.text)


# --- formatting ----------------------------------------------------------------------
def service_label(service: str, lang: Lang) -> str:
    return SERVICE_NAMES_ES.get(service, service) if lang == "es" else service


def date_label(day: dt.date, lang: Lang) -> str:
    weekday, month = _DAYS[lang][day.weekday()], _MONTHS[lang][day.month - 1]
    if lang == "es":
        return f"el {weekday} {day.day} de {month}"
    return f"{weekday}, {month} {day.day}"


def days_label(days: Sequence[int], lang: Lang) -> str:
    names = [_DAYS[lang][day] for day in days]
    if len(days) >= 3 and list(days) == list(range(days[0], days[-1] + 1)):
        return f"de {names[0]} a {names[-1]}" if lang == "es" else f"{names[0]} to {names[-1]}"
    return _join(names, lang)


def _join(items: Sequence[str], lang: Lang, *, either: bool = False) -> str:
    if len(items) <= 1:
        return "".join(items)
    words = {
        ("es", False): " y ",
        ("es", True): " o ",
        ("en", False): " and ",
        ("en", True): " or ",
    }
    return ", ".join(items[:-1]) + words[lang, either] + items[-1]


def _slot_label(slot: dict[str, str], lang: Lang, same_day: dt.date | None) -> str:
    day = dt.date.fromisoformat(slot["date"])
    if day == same_day:
        return slot["time"]
    joiner = " a las " if lang == "es" else " at "
    return date_label(day, lang) + joiner + slot["time"]


# --- reading the conversation ----------------------------------------------------------
def _tool_payload(message: ToolMessage) -> dict[str, Any] | None:
    try:
        payload = json.loads(_text(message))
    except (TypeError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def _window_start(messages: Sequence[BaseMessage]) -> int:
    """Index just after the last completed booking or cancellation."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if not isinstance(message, ToolMessage) or message.status == "error":
            continue
        if message.name not in ("book_appointment", "cancel_appointment"):
            continue
        payload = _tool_payload(message) or {}
        if payload.get("status") in ("confirmed", "cancelled"):
            return index + 1
    return 0


def _language(humans: Sequence[str]) -> Lang:
    for text in reversed(humans):
        lang = nlu.detect_language(text)
        if lang:
            return lang
    return "en"


def _fields(humans: Sequence[str], services: Sequence[str], today: dt.date) -> Fields:
    fields = Fields()
    for text in humans:
        fields.service = nlu.parse_service(text, services) or fields.service
        fields.date = nlu.parse_date(text, today) or fields.date
        fields.time = nlu.parse_time(text) or fields.time
        fields.name = nlu.parse_name(text) or fields.name
        fields.contact = nlu.parse_contact(text) or fields.contact
    return fields


def _has_booking_fields(text: str, services: Sequence[str], today: dt.date) -> bool:
    return any(
        (
            nlu.parse_service(text, services),
            nlu.parse_date(text, today),
            nlu.parse_time(text),
            nlu.parse_name(text),
            nlu.parse_contact(text),
        )
    )


_TOOL_INTENTS: dict[str, Intent] = {
    "book_appointment": "book",
    "cancel_appointment": "cancel",
    "check_availability": "availability",
    "list_my_appointments": "my_appointments",
}


def _failed_intent(conversation: Sequence[BaseMessage]) -> Intent | None:
    """After a failed tool call, the customer's next message is probably a correction."""
    last = next((m for m in reversed(conversation) if isinstance(m, ToolMessage)), None)
    if last is None or last.status != "error":
        return None
    return _TOOL_INTENTS.get(last.name or "")


def _intent(
    recent: Sequence[str],
    services: Sequence[str],
    today: dt.date,
    failed: Intent | None = None,
) -> Intent | None:
    """The latest message's intent, else the one it continues."""
    latest = recent[-1]
    explicit = nlu.detect_intent(latest)
    if explicit:
        return explicit
    pending = next((i for i in map(nlu.detect_intent, reversed(recent[:-1])) if i), failed)
    if pending == "cancel" and nlu.parse_code(latest):
        return "cancel"
    if pending == "my_appointments" and nlu.parse_contact(latest):
        return "my_appointments"
    if pending == "availability" and not (
        nlu.parse_time(latest) or nlu.parse_name(latest) or nlu.parse_contact(latest)
    ):
        return "availability" if nlu.parse_date(latest, today) else pending
    if _has_booking_fields(latest, services, today):
        return "book"
    return pending


# --- the policy ----------------------------------------------------------------------
@dataclass
class Dialogue:
    """One decision over a conversation, for one settings/today."""

    settings: Settings
    today: dt.date
    tools: Collection[str]
    # How the assistant introduces itself (the run's context: `salon_name`).
    salon_name: str | None = None
    # A returning customer the system prompt names: name, contact, usual service.
    returning: dict[str, str] | None = None

    @property
    def services(self) -> list[str]:
        return list(self.settings.booking_services)

    def respond(self, messages: Sequence[BaseMessage]) -> Reply:
        if any(isinstance(m, SystemMessage) and STOP_TOOLS.search(_text(m)) for m in messages):
            self.tools = ()
        conversation = [m for m in messages if not isinstance(m, SystemMessage)]
        start = _window_start(conversation)
        humans = [_text(m) for m in conversation[start:] if isinstance(m, HumanMessage)]
        system = "\n".join(_text(m) for m in messages if isinstance(m, SystemMessage))
        fixed = LANGUAGE_LINE.search(system)
        salon = SALON_LINE.search(system)
        self.salon_name = salon.group(1) if salon else None
        known = RETURNING_LINE.search(system)
        self.returning = known.groupdict() if known else None
        lang: Lang = (
            fixed.group(1)  # type: ignore[assignment]
            if fixed
            else _language(
                humans or [_text(m) for m in conversation if isinstance(m, HumanMessage)]
            )
        )
        trailing = last_tool_results(conversation)
        if trailing:
            return Reply(" ".join(self.summarize(m, lang) for m in trailing))
        if not humans:
            return Reply(self.help_text(lang))
        last_tool = max(
            (i for i, m in enumerate(conversation) if isinstance(m, ToolMessage)), default=-1
        )
        recent = [
            _text(m)
            for m in conversation[max(start, last_tool + 1) :]
            if isinstance(m, HumanMessage)
        ] or humans[-1:]
        intent = _intent(recent, self.services, self.today, _failed_intent(conversation))
        if intent == "cancel":
            return self.cancel(recent, lang)
        if intent == "my_appointments":
            return self.my_appointments(humans, lang)
        if intent == "services":
            return self.call("list_services", {}) or Reply(self.services_text(lang))
        if intent == "availability":
            return self.availability(humans, lang)
        if intent == "book":
            return self.book(conversation, humans, lang)
        if nlu.is_thanks(humans[-1]):
            return Reply(
                "¡De nada! ¿Algo más en lo que pueda ayudarte?"
                if lang == "es"
                else "You're welcome! Anything else I can help with?"
            )
        return Reply(self.help_text(lang))

    def call(self, name: str, args: dict[str, Any]) -> Reply | None:
        return Reply(tool_name=name, tool_args=args) if name in self.tools else None

    # --- intents ---------------------------------------------------------------------
    def cancel(self, recent: Sequence[str], lang: Lang) -> Reply:
        code = next((c for c in map(nlu.parse_code, reversed(recent)) if c), None)
        if code is None:
            return Reply(
                "Claro. ¿Cuál es el código de confirmación de la cita (6 caracteres)?"
                if lang == "es"
                else "Sure. What is the appointment's 6-character confirmation code?"
            )
        return self.call("cancel_appointment", {"confirmation_code": code}) or self.no_tool(lang)

    def my_appointments(self, humans: Sequence[str], lang: Lang) -> Reply:
        contact = next((c for c in map(nlu.parse_contact, reversed(humans)) if c), None)
        if contact is None:
            return Reply(
                "Claro. ¿Con qué email o teléfono reservaste?"
                if lang == "es"
                else "Sure. Which email address or phone number did you book with?"
            )
        return self.call("list_my_appointments", {"contact": contact}) or self.no_tool(lang)

    def availability(self, humans: Sequence[str], lang: Lang) -> Reply:
        fields = _fields(humans, self.services, self.today)
        if fields.date is None:
            return Reply(
                "¿Qué día quieres consultar?" if lang == "es" else "Which day should I check?"
            )
        args: dict[str, Any] = {"date": fields.date.isoformat()}
        if fields.service:
            args["service"] = fields.service
        return self.call("check_availability", args) or self.no_tool(lang)

    def book(self, conversation: Sequence[BaseMessage], humans: Sequence[str], lang: Lang) -> Reply:
        fields = _fields(humans, self.services, self.today)
        if fields.name is None and _asked_for_name(conversation):
            fields.name = nlu.bare_name(humans[-1])
        if fields.date is not None and fields.date.weekday() not in self.settings.booking_open_days:
            return Reply(self.closed_text(fields.date, lang))
        known = self.returning
        if known and (fields.contact is None or fields.contact == known["contact"]):
            fields.name = fields.name or known["name"]
            fields.contact = known["contact"]
            usual = known["service"] if known["service"] in self.services else None
            if fields.service is None and usual:
                if fields.date is None and fields.time is None:
                    return Reply(self.welcome_back(known["name"], usual, lang))
                fields.service = usual  # the usual service, as the welcome offered
        if fields.service is None or fields.date is None or fields.time is None:
            return Reply(self.ask_slot(fields, lang))
        if fields.name is None or fields.contact is None:
            return Reply(self.ask_customer(fields, lang))
        args = {
            "service": fields.service,
            "date": fields.date.isoformat(),
            "time": fields.time.strftime("%H:%M"),
            "customer_name": fields.name,
            "contact": fields.contact,
        }
        return self.call("book_appointment", args) or self.no_tool(lang)

    # --- phrasing ----------------------------------------------------------------------
    def _known(self, fields: Fields, lang: Lang) -> str:
        parts = []
        if fields.service:
            parts.append(service_label(fields.service, lang))
        if fields.date:
            parts.append(date_label(fields.date, lang))
        if fields.time:
            parts.append(("a las " if lang == "es" else "at ") + fields.time.strftime("%H:%M"))
        return " ".join(parts)

    def ask_slot(self, fields: Fields, lang: Lang) -> str:
        offered = _join([service_label(s, lang) for s in self.services], lang, either=True)
        if lang == "es":
            wanted = []
            if fields.service is None:
                wanted.append(f"qué servicio quieres ({offered})")
            if fields.date is None:
                wanted.append("para qué día")
            if fields.time is None:
                wanted.append("a qué hora")
            known = self._known(fields, lang)
            opener = f"Perfecto: {known}." if known else "¡Claro! Te ayudo a reservar."
            return f"{opener} ¿Me dices {_join(wanted, lang)}?"
        wanted = []
        if fields.service is None:
            wanted.append(f"which service you'd like ({offered})")
        if fields.date is None:
            wanted.append("the day")
        if fields.time is None:
            wanted.append("the time")
        known = self._known(fields, lang)
        opener = f"Got it: {known}." if known else "Sure, I can book that for you."
        return f"{opener} Could you tell me {_join(wanted, lang)}?"

    def ask_customer(self, fields: Fields, lang: Lang) -> str:
        known = self._known(fields, lang)
        if lang == "es":
            if fields.name is None and fields.contact is None:
                question = "¿A nombre de quién la reservo y cuál es tu email o teléfono?"
            elif fields.name is None:
                question = "¿A nombre de quién la reservo?"
            else:
                question = "¿Cuál es tu email o teléfono de contacto?"
            return f"Perfecto: {known}. {question}"
        if fields.name is None and fields.contact is None:
            question = "What name should I book it under, and what's your email or phone number?"
        elif fields.name is None:
            question = "What name should I book it under?"
        else:
            question = "What's your email or phone number?"
        return f"Got it: {known}. {question}"

    def closed_text(self, day: dt.date, lang: Lang) -> str:
        days = days_label(self.settings.booking_open_days, lang)
        if lang == "es":
            hours = self.settings.booking_hours.replace("-", " a ")
            return (
                f"Lo siento, {date_label(day, lang)} estamos cerrados. Abrimos {days}, "
                f"de {hours}. ¿Qué otro día te viene bien?"
            )
        return (
            f"Sorry, we're closed on {date_label(day, lang)}. We're open {days}, "
            f"{self.settings.booking_hours}. Which other day works for you?"
        )

    def services_text(self, lang: Lang) -> str:
        offered = _join([service_label(s, lang) for s in self.services], lang)
        days = days_label(self.settings.booking_open_days, lang)
        hours = self.settings.booking_hours
        if lang == "es":
            return f"Ofrecemos {offered}. Abrimos {days}, de {hours.replace('-', ' a ')}."
        return f"We offer {offered}. We're open {days}, {hours}."

    def welcome_back(self, name: str, service: str, lang: Lang) -> str:
        label = service_label(service, lang)
        if lang == "es":
            return (
                f"¡Hola de nuevo, {name}! ¿Te reservo tu {label} de siempre? "
                "Dime qué día y a qué hora (o qué otro servicio quieres)."
            )
        return (
            f"Welcome back, {name}! Shall I book your usual {label}? "
            "Tell me the day and time (or another service)."
        )

    def help_text(self, lang: Lang) -> str:
        salon = self.salon_name
        if lang == "es":
            hello = f"¡Hola! Te atiende {salon}. " if salon else "¡Hola! "
            return (
                f"{hello}Puedo reservar citas, consultar horas libres o cancelar una cita. "
                f"{self.services_text(lang)} ¿En qué te ayudo?"
            )
        hello = f"Hi, this is {salon}! " if salon else "Hi! "
        return (
            f"{hello}I can book appointments, check free times or cancel a booking. "
            f"{self.services_text(lang)} How can I help?"
        )

    def no_tool(self, lang: Lang) -> Reply:
        return Reply(
            "Lo siento, ahora mismo no puedo completar esa operación. Inténtalo de nuevo más tarde."
            if lang == "es"
            else "Sorry, I can't complete that right now. Please try again later."
        )

    # --- tool results ----------------------------------------------------------------------
    def summarize(self, message: ToolMessage, lang: Lang) -> str:
        payload = _tool_payload(message)
        if message.status == "error" or payload is None:
            return self.explain_error(message, lang)
        name = message.name
        if name == "book_appointment":
            return self.booked_text(payload, lang)
        if name == "cancel_appointment":
            return self.cancelled_text(payload, lang)
        if name == "check_availability":
            return self.availability_text(payload, lang)
        if name == "list_my_appointments":
            return self.my_appointments_text(payload, lang)
        return self.services_text(lang)

    def booked_text(self, payload: dict[str, Any], lang: Lang) -> str:
        if payload.get("status") == "taken":
            return self.taken_text(payload, lang)
        if payload.get("status") == "cancelled":  # a replayed request for a cancelled booking
            return self.cancelled_text(payload, lang)
        if payload.get("status") == "declined":  # a person rejected it (BOOKING_CONFIRMATION)
            return self.declined_text(payload, lang)
        day = date_label(dt.date.fromisoformat(payload["date"]), lang)
        service, code = service_label(payload["service"], lang), payload["confirmation_code"]
        name, time = payload["customer_name"], payload["time"]
        if lang == "es":
            return (
                f"¡Listo! Tu cita de {service} está confirmada para {day} a las {time}, "
                f"a nombre de {name}. Tu código de confirmación es {code}."
            )
        return (
            f"All set! Your {service} is booked for {day} at {time} under the name {name}. "
            f"Your confirmation code is {code}."
        )

    def declined_text(self, payload: dict[str, Any], lang: Lang) -> str:
        reason = str(payload.get("reason") or "").strip()
        if lang == "es":
            text = "De acuerdo, no he reservado nada."
            if reason:
                text += f" Motivo: {reason}."
            return text + " ¿Quieres otro día u otra hora?"
        text = "OK, I have not booked anything."
        if reason:
            text += f" Reason: {reason}."
        return text + " Would you like another day or time?"

    def taken_text(self, payload: dict[str, Any], lang: Lang) -> str:
        day = dt.date.fromisoformat(payload["date"])
        service, time = service_label(payload["service"], lang), payload["time"]
        options = _join([_slot_label(s, lang, day) for s in payload["alternatives"]], lang)
        if lang == "es":
            when = f"las {time} de {date_label(day, lang)}"
            head = f"Lo siento, {when} ya están ocupadas para {service}."
            if not options:
                return f"{head} No quedan horas libres cerca; ¿probamos otro día?"
            return f"{head} Las horas libres más cercanas son: {options}. ¿Te viene bien alguna?"
        head = f"Sorry, {time} on {date_label(day, lang)} is already taken for {service}."
        if not options:
            return f"{head} There is nothing free nearby; shall we try another day?"
        return f"{head} The nearest free times are {options}. Would one of those work?"

    def cancelled_text(self, payload: dict[str, Any], lang: Lang) -> str:
        day = date_label(dt.date.fromisoformat(payload["date"]), lang)
        service, code, time = (
            service_label(payload["service"], lang),
            payload["confirmation_code"],
            payload["time"],
        )
        if lang == "es":
            return f"Hecho: he cancelado tu cita {code} ({service}, {day} a las {time})."
        return f"Done: appointment {code} ({service}, {day} at {time}) is cancelled."

    def availability_text(self, payload: dict[str, Any], lang: Lang) -> str:
        day = dt.date.fromisoformat(payload["date"])
        if not payload.get("open", True):
            return self.closed_text(day, lang)
        slots = payload.get("slots") or []
        service = payload.get("service")
        label = date_label(day, lang)
        if lang == "es":
            what = f" para {service_label(service, lang)}" if service else ""
            if not slots:
                return f"No quedan horas libres{what} {label}. ¿Probamos otro día?"
            return f"Horas libres{what} {label}: {', '.join(slots)}. ¿Cuál prefieres?"
        what = f" for {service}" if service else ""
        if not slots:
            return f"There are no free times{what} on {label}. Shall we try another day?"
        return f"Free times{what} on {label}: {', '.join(slots)}. Which one would you like?"

    def my_appointments_text(self, payload: dict[str, Any], lang: Lang) -> str:
        items = payload.get("appointments") or []
        if not items:
            return (
                "No encuentro citas próximas con ese contacto."
                if lang == "es"
                else "I can't find any upcoming appointments for that contact."
            )
        joiner = " a las " if lang == "es" else " at "
        lines = [
            f"{item['confirmation_code']}: {service_label(item['service'], lang)}, "
            f"{date_label(dt.date.fromisoformat(item['date']), lang)}{joiner}{item['time']}"
            for item in items
        ]
        head = "Tus próximas citas" if lang == "es" else "Your upcoming appointments"
        return f"{head}: " + "; ".join(lines) + "."

    def explain_error(self, message: ToolMessage, lang: Lang) -> str:
        error = error_text(_text(message))
        english, spanish = _ACTIONS.get(message.name or "", ("do that", "hacer eso"))
        retry_hint = message.name == "book_appointment"
        if lang == "es":
            hint = " ¿Quieres probar con otro día u hora?" if retry_hint else ""
            return f"Lo siento, no he podido {spanish}: {self.spanish_error(error)}{hint}"
        hint = " Would you like to try another day or time?" if retry_hint else ""
        return f"Sorry, I couldn't {english}: {error}{hint}"

    def spanish_error(self, error: str) -> str:
        settings = self.settings
        if match := re.search(r"closed on \w+ \((\d{4}-\d{2}-\d{2})\)", error):
            day = dt.date.fromisoformat(match.group(1))
            days = days_label(settings.booking_open_days, "es")
            return f"{date_label(day, 'es')} estamos cerrados; abrimos {days}."
        if "in the past" in error:
            return "esa hora ya ha pasado; elige una hora posterior."
        if "outside opening hours" in error:
            return f"esa hora está fuera de nuestro horario ({settings.booking_hours})."
        if "not a start time" in error:
            return (
                f"las citas empiezan cada {settings.booking_slot_minutes} minutos "
                f"desde las {settings.opening_time:%H:%M}."
            )
        if "too far ahead" in error:
            return f"solo se puede reservar con {settings.booking_horizon_days} días de antelación."
        if "Unknown service" in error:
            offered = _join([service_label(s, "es") for s in self.services], "es")
            return f"no ofrecemos ese servicio. Ofrecemos {offered}."
        if "confirmation code" in error:
            return "no encuentro ninguna cita con ese código."
        if "Invalid date" in error or "Invalid time" in error:
            return "la fecha o la hora no es válida."
        if "busy" in error:
            return "el sistema de reservas está ocupado; inténtalo de nuevo en un momento."
        return error


def error_text(content: str) -> str:
    """The customer-facing message inside ToolNode's "Error: Exc('...')" wrapper."""
    match = re.match(r"Error: \w+\((.*)\)\s*\n", content, re.DOTALL)
    if not match:
        content = re.sub(r"\s*Please fix your mistakes\.?\s*$", "", content)
        return content.removeprefix("Error: ").strip()
    try:
        value = ast.literal_eval(match.group(1))
    except (ValueError, SyntaxError):
        return match.group(1)
    return str(value)


def _asked_for_name(messages: Sequence[BaseMessage]) -> bool:
    for message in reversed(messages[:-1]):
        if isinstance(message, AIMessage):
            return bool(re.search(r"\b(name|nombre)\b", _text(message), re.IGNORECASE))
    return False
