"""Rule-based reading of customer messages (Spanish and English) for the offline model.

Pure functions over one message: language, intent, and the booking fields a
message mentions (service, day, time, name, contact, confirmation code). The
dialogue layer combines them over the conversation.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterable
from typing import Literal

Lang = Literal["en", "es"]
Intent = Literal["cancel", "my_appointments", "services", "availability", "book"]

_WORD = re.compile(r"[a-záéíóúüñ']+")


def _wordset(text: str) -> frozenset[str]:
    """Word lists read better as running text than as one-per-line literals."""
    return frozenset(text.split())


SPANISH_CUES = _wordset(
    "quiero quisiera cita citas agendar reservar reserva mañana manana hoy para las los "
    "cancelar cancela anular me llamo hola gracias buenas buenos días dias tarde noche "
    "qué que hay horas hora soy mi mis una el del por favor corte pelo barba tinte manicura "
    "lunes martes miércoles miercoles jueves viernes sábado sabado domingo pasado tengo "
    "puedo podría gustaría cuándo cuando servicios ofrecen libre libres huecos nombre "
    "correo teléfono telefono es con sí vale perfecto"
)
ENGLISH_CUES = _wordset(
    "i i'd i'm id im want would like book booking appointment appointments tomorrow today "
    "the my name is at for on cancel hi hello hey thanks thank you please what what's "
    "free available availability haircut beard trim coloring manicure monday tuesday "
    "wednesday thursday friday saturday sunday next have can do any times time services "
    "offer email phone and it's ok okay yes sure great"
)

_MONTHS_EN = [m.lower() for m in calendar.month_name[1:]]
MONTHS_ES = [
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
]
_WEEKDAYS_EN = [d.lower() for d in calendar.day_name]
_WEEKDAYS_ES = [
    "lunes",
    "martes",
    "mi[eé]rcoles",
    "jueves",
    "viernes",
    "s[aá]bado",
    "domingo",
]

SERVICE_ALIASES: dict[str, tuple[str, ...]] = {
    "haircut": ("corte de pelo", "corte de cabello", "cortarme el pelo", "corte", "hair cut"),
    "beard trim": ("arreglo de barba", "recorte de barba", "barba", "beard"),
    "hair coloring": (
        "coloración",
        "coloracion",
        "tinte",
        "color",
        "colour",
        "hair colouring",
        "hair color",
        "dye",
    ),
    "manicure": ("manicura", "manicur", "uñas"),
}

_NAME_STOP = _wordset(
    "and y my mi email e-mail mail correo phone tel teléfono telefono contact contacto at "
    "is es para for tomorrow today mañana hoy on el la the a an with con please por "
    "favor i'd i'm want quiero book number número numero"
)
_CALENDAR_WORDS = frozenset(_MONTHS_EN + MONTHS_ES + _WEEKDAYS_EN) | _wordset(
    "lunes martes miércoles miercoles jueves viernes sábado sabado domingo"
)
_SOFT_NAME_STOP = (
    _NAME_STOP
    | _CALENDAR_WORDS
    | _wordset(
        "looking free available here calling interested trying going not sorry fine good "
        "ok okay new nuevo nueva cliente"
    )
)

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w@])\+?\d(?:[\s.\-()]{0,2}\d){6,14}(?![\w@])")
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def detect_language(text: str) -> Lang | None:
    """Spanish or English by cue words and marks; None when a message gives no hint."""
    tokens = words(text)
    spanish = sum(token in SPANISH_CUES for token in tokens)
    english = sum(token in ENGLISH_CUES for token in tokens)
    if re.search(r"[¿¡ñ]", text.lower()):
        spanish += 2
    if re.search(r"[áéíóú]", text.lower()):
        spanish += 1
    if spanish == english == 0:
        return None
    return "es" if spanish > english else "en"


_INTENTS: tuple[tuple[Intent, re.Pattern[str]], ...] = (
    ("cancel", re.compile(r"\b(cancel\w*|cancela\w*|anula\w*)\b")),
    (
        "my_appointments",
        re.compile(
            r"\bmy (appointments?|bookings?|reservations?)\b|\bmis (citas|reservas)\b"
            r"|\bdo i have\b|\btengo (alguna |una )?cita|\bwhen is my\b|\bcu[aá]ndo es mi\b"
        ),
    ),
    (
        "services",
        re.compile(
            r"\bservices?\b|\bwhat do you (offer|do)\b|\bservicios?\b|\bqu[eé] (ofrecen|hacen)\b"
            r"|\bprices?\b|\bprecios?\b"
        ),
    ),
    (
        "availability",
        re.compile(
            r"\b(free|available|availability|openings?|slots?|disponibles?|disponibilidad"
            r"|huecos?|libres?|horarios?)\b|\bqu[eé] horas?\b|\bwhat times?\b|\bwhen can\b"
        ),
    ),
    (
        "book",
        re.compile(
            r"\b(book\w*|appointment|reserve|reservation|schedule|agendar|agenda|cita"
            r"|reservar|reserva|pedir|quiero|quisiera|gustar[ií]a|i'?d like|i want"
            r"|i would like|i need|necesito)\b"
        ),
    ),
)


def detect_intent(text: str) -> Intent | None:
    lowered = text.lower()
    for intent, pattern in _INTENTS:
        if pattern.search(lowered):
            return intent
    return None


def is_greeting(text: str) -> bool:
    return bool(
        re.search(r"\b(hola|hello|hi|hey|buenas|buenos d[ií]as|good morning)\b", text.lower())
    )


def is_thanks(text: str) -> bool:
    return bool(re.search(r"\b(gracias|thanks|thank you|thx|cheers)\b", text.lower()))


# --- contact -------------------------------------------------------------------------
def parse_contact(text: str) -> str | None:
    """The first email address, else the first phone number (7+ digits)."""
    email = _EMAIL.search(text)
    if email:
        return email.group(0).rstrip(".")
    cleaned = _ISO_DATE.sub(" ", text)
    for match in _PHONE.finditer(cleaned):
        digits = re.sub(r"\D", "", match.group(0))
        if len(digits) >= 7:
            return match.group(0).strip()
    return None


def strip_contact(text: str) -> str:
    text = _EMAIL.sub(" ", text)
    return _PHONE.sub(" ", _ISO_DATE.sub(" ", text))


# --- confirmation code -----------------------------------------------------------------
def parse_code(text: str) -> str | None:
    """A 6-character code: with a digit, or written in capitals (not a shouted word).

    Six digits alone count only when nothing else does: codes issued before every
    code carried a letter can be all digits.
    """
    digits_only = None
    for token in re.findall(r"\b[A-Za-z0-9]{6}\b", strip_contact(text)):
        if token.isdigit():
            digits_only = digits_only or token
            continue
        has_digit = any(ch.isdigit() for ch in token)
        if has_digit or (token.isupper() and token.lower() not in {"cancel", "thanks"}):
            return token.upper()
    return digits_only


# --- service -------------------------------------------------------------------------
def parse_service(text: str, services: Iterable[str]) -> str | None:
    """The service a message names, by its own name, plural or an alias."""
    offered = list(services)
    names: list[tuple[str, str]] = []
    for service in offered:
        names.append((service, service))
        names.append((service + "s", service))
        names.extend((alias, service) for alias in SERVICE_ALIASES.get(service, ()))
    lowered = text.lower()
    found: list[tuple[int, int, str]] = []
    for alias, service in names:
        match = re.search(rf"\b{re.escape(alias)}", lowered)
        if match:
            found.append((match.start(), -len(alias), service))
    return min(found)[2] if found else None


# --- name ----------------------------------------------------------------------------
_EXPLICIT_NAME = re.compile(
    r"\b(?:my name is|my name's|name is|me llamo|mi nombre es|a nombre de|under the name"
    r"|nombre:|name:)\s+(.+)",
    re.IGNORECASE,
)
_SOFT_NAME = re.compile(r"\b(?:i'm|i am|this is|soy)\s+(.+)", re.IGNORECASE)


def _name_tokens(rest: str, stop: frozenset[str], *, capitalized: bool) -> str | None:
    tokens: list[str] = []
    for raw in re.split(r"\s+", strip_contact(rest).strip()):
        token = raw.strip('.,;:!?¡¿()"')
        if not token or (raw[:1] in ",;:.!?" and tokens):
            break
        if not re.fullmatch(r"[^\W\d_][\w'\-]*", token) or token.lower() in stop:
            break
        if capitalized and not token[0].isupper():
            break
        tokens.append(token if not token.islower() else token.capitalize())
        if raw[-1:] in ",;:.!?" or len(tokens) == 3:
            break
    return " ".join(tokens) or None


def parse_name(text: str) -> str | None:
    """A name introduced as such ("my name is", "me llamo", or "I'm"/"soy" + a capital)."""
    explicit = _EXPLICIT_NAME.search(text)
    if explicit:
        name = _name_tokens(explicit.group(1), _NAME_STOP, capitalized=False)
        if name:
            return name
    for soft in _SOFT_NAME.finditer(text):
        name = _name_tokens(soft.group(1), _SOFT_NAME_STOP, capitalized=True)
        if name:
            return name
    return None


def bare_name(text: str) -> str | None:
    """A reply that is just a name ("Ana", "Ana López, ana@x.com")."""
    rest = strip_contact(text)
    rest = re.sub(r"[,;.!?¡¿]", " ", rest).strip()
    tokens = rest.split()
    if not 1 <= len(tokens) <= 3:
        return None
    if any(not re.fullmatch(r"[^\W\d_][\w'\-]*", t) for t in tokens):
        return None
    lowered = [t.lower() for t in tokens]
    if any(t in SPANISH_CUES or t in ENGLISH_CUES or t in _SOFT_NAME_STOP for t in lowered):
        return None
    return " ".join(t if not t.islower() else t.capitalize() for t in tokens)


# --- dates ---------------------------------------------------------------------------
def _next_day_numbered(day: int, today: dt.date) -> dt.date | None:
    year, month = today.year, today.month
    for _ in range(13):
        if day <= calendar.monthrange(year, month)[1]:
            candidate = dt.date(year, month, day)
            if candidate >= today:
                return candidate
        month += 1
        if month == 13:
            year, month = year + 1, 1
    return None


def _month_day(month: int, day: int, today: dt.date) -> dt.date | None:
    for year in (today.year, today.year + 1):
        try:
            candidate = dt.date(year, month, day)
        except ValueError:
            return None
        if candidate >= today:
            return candidate
    return None


def _month_number(name: str) -> int:
    name = name.lower()
    if name in MONTHS_ES:
        return MONTHS_ES.index(name) + 1
    return _MONTHS_EN.index(name) + 1


_MONTH_ALT = "|".join(_MONTHS_EN + MONTHS_ES)
_DAY_MONTH = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:de\s+|of\s+)?({_MONTH_ALT})\b")
_MONTH_DAY = re.compile(rf"\b({_MONTH_ALT})\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?![:.]\d)")
_ORDINAL = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)\b")
_THE_DAY = re.compile(r"\bthe\s+(\d{1,2})\b(?![:.]\d|\s*(?:am|pm|a\.m|p\.m))")
_EL_DAY = re.compile(
    r"\b(?:el|d[ií]a)\s+(?:d[ií]a\s+)?(\d{1,2})\b(?![:.h]\d|\s*(?:am|pm|a\.m|p\.m|de la))"
)


def parse_date(text: str, today: dt.date) -> dt.date | None:
    """The day a message means, relative to `today` in the business time zone."""
    lowered = text.lower()
    iso = _ISO_DATE.search(lowered)
    if iso:
        try:
            return dt.date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
        except ValueError:
            return None
    # "por la mañana" is "in the morning", not "tomorrow".
    lowered = re.sub(r"\b(?:(?:por|de|en)\s+la|esta)\s+ma[nñ]ana\b", " ", lowered)
    if match := _DAY_MONTH.search(lowered):
        return _month_day(_month_number(match.group(2)), int(match.group(1)), today)
    if match := _MONTH_DAY.search(lowered):
        return _month_day(_month_number(match.group(1)), int(match.group(2)), today)
    if re.search(r"\bpasado\s+ma[nñ]ana\b|\bday after tomorrow\b", lowered):
        return today + dt.timedelta(days=2)
    if re.search(r"\b(tomorrow|ma[nñ]ana)\b", lowered):
        return today + dt.timedelta(days=1)
    if re.search(r"\b(today|hoy|tonight|this (afternoon|evening|morning))\b", lowered):
        return today
    for index, (english, spanish) in enumerate(zip(_WEEKDAYS_EN, _WEEKDAYS_ES, strict=True)):
        if re.search(rf"\b({english}|{spanish})\b", lowered):
            ahead = (index - today.weekday()) % 7 or 7
            return today + dt.timedelta(days=ahead)
    for pattern in (_ORDINAL, _THE_DAY, _EL_DAY):
        if match := pattern.search(lowered):
            day = int(match.group(1))
            return _next_day_numbered(day, today) if 1 <= day <= 31 else None
    return None


# --- times ---------------------------------------------------------------------------
_AMPM = re.compile(r"\b(\d{1,2})(?:[:.h](\d{2}))?\s*([ap])\.?\s?m\b\.?")
_CLOCK = re.compile(r"\b([01]?\d|2[0-3])(?::|h)([0-5]\d)\b")
_CUED_HOUR = re.compile(
    r"\b(?:at|a\s+las|a\s+la|sobre\s+las|hacia\s+las|las|around|about|@)\s*(\d{1,2})"
    r"(?:\s+y\s+(media|cuarto))?(?!\s*(?:st|nd|rd|th|de\s+(?!la\b)))\b"
)
_PM = re.compile(
    r"\bde la (tarde|noche)\b|\bin the (afternoon|evening)\b|\bpor la (tarde|noche)\b|\btonight\b"
)
_AM = re.compile(r"\bde la ma[nñ]ana\b|\bin the morning\b|\bpor la ma[nñ]ana\b")


def _with_period(hour: int, minute: int, lowered: str) -> dt.time | None:
    if _PM.search(lowered) and hour < 12:
        hour += 12
    elif not _AM.search(lowered) and 1 <= hour <= 7:
        hour += 12  # nobody books a haircut at 3 in the morning
    return dt.time(hour, minute) if hour < 24 and minute < 60 else None


def parse_time(text: str) -> dt.time | None:
    """The start time a message means ("3pm", "at 10", "15:00", "a las 3 de la tarde")."""
    lowered = strip_contact(text.lower())
    if match := _AMPM.search(lowered):
        hour, minute = int(match.group(1)), int(match.group(2) or 0)
        if not 1 <= hour <= 12 or minute >= 60:
            return None
        hour = hour % 12 + (12 if match.group(3) == "p" else 0)
        return dt.time(hour, minute)
    if match := _CLOCK.search(lowered):
        return _with_period(int(match.group(1)), int(match.group(2)), lowered)
    if match := _CUED_HOUR.search(lowered):
        minute = {"media": 30, "cuarto": 15}.get(match.group(2) or "", 0)
        return _with_period(int(match.group(1)), minute, lowered)
    if re.search(r"\b(noon|midday|mediod[ií]a|medio d[ií]a)\b", lowered):
        return dt.time(12, 0)
    return None
