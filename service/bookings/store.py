"""Appointments, shared safely by every worker process (and every host, on PostgreSQL).

The schedule rules live in `Settings`; the database enforces the one rule that
must hold across processes: a partial UNIQUE index lets only one confirmed
appointment exist per (service, start). A booking runs in one exclusive write
transaction (`BookingDatabase.write`: SQLite's `BEGIN IMMEDIATE`, PostgreSQL's
advisory transaction lock), so its read-check-insert is atomic. Appointments live
in their own SQLite file, or in PostgreSQL when CHECKPOINTER=postgres.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from service.bookings.sqlite import (
    SQLITE_SCHEMA,
    BookingBusyError,
    BookingDatabase,
    SqliteBookingDatabase,
)
from service.settings import Settings

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I: read aloud safely
CODE_LENGTH = 6
MAX_ALTERNATIVES = 3
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

SCHEMA = SQLITE_SCHEMA  # the SQLite tables; PostgreSQL's are in bookings.postgres

_COLUMNS = (
    "confirmation_code, service, starts_at, customer_name, contact, status, "
    "created_at, cancelled_at"
)


class BookingError(ValueError):
    """A request the schedule cannot accept; the message is meant for the customer."""


@dataclass(frozen=True)
class Appointment:
    """One row of `appointments`, with `starts_at` in the business time zone."""

    confirmation_code: str
    service: str
    starts_at: dt.datetime
    customer_name: str
    contact: str
    status: Literal["confirmed", "cancelled"]
    created_at: str
    cancelled_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "confirmation_code": self.confirmation_code,
            "service": self.service,
            "date": self.starts_at.date().isoformat(),
            "weekday": WEEKDAYS[self.starts_at.weekday()],
            "time": self.starts_at.strftime("%H:%M"),
            "starts_at": self.starts_at.isoformat(),
            "customer_name": self.customer_name,
            "contact": self.contact,
            "status": self.status,
        }


@dataclass(frozen=True)
class BookingResult:
    """Either a confirmed appointment, or "taken" with nearby free starts."""

    status: Literal["confirmed", "taken"]
    service: str
    starts_at: dt.datetime
    appointment: Appointment | None = None
    alternatives: list[dt.datetime] = field(default_factory=list)
    replayed: bool = False

    @property
    def confirmation_code(self) -> str | None:
        return self.appointment.confirmation_code if self.appointment else None

    def to_dict(self) -> dict[str, Any]:
        if self.appointment is not None:
            return {"status": "confirmed", "replayed": self.replayed, **self.appointment.to_dict()}
        return {
            "status": "taken",
            "service": self.service,
            "date": self.starts_at.date().isoformat(),
            "time": self.starts_at.strftime("%H:%M"),
            "alternatives": [slot_dict(slot) for slot in self.alternatives],
        }


def slot_dict(slot: dt.datetime) -> dict[str, str]:
    return {
        "date": slot.date().isoformat(),
        "weekday": WEEKDAYS[slot.weekday()],
        "time": slot.strftime("%H:%M"),
    }


def normalize_contact(contact: str) -> str:
    """One spelling per contact, so lookups match however it was typed."""
    text = contact.strip()
    if "@" in text:
        return text.lower()
    return "".join(ch for ch in text if ch.isdigit() or ch == "+")


def new_code() -> str:
    """A code with a letter and a digit: told apart from a number or a word, in any case."""
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if any(ch.isdigit() for ch in code) and any(ch.isalpha() for ch in code):
            return code


class BookingStore:
    """Appointments and the schedule rules; `database` supplies connections (SQLite by default)."""

    def __init__(
        self,
        path: Path | str | None,
        settings: Settings,
        *,
        now: Callable[[], dt.datetime] | None = None,
        database: BookingDatabase | None = None,
    ) -> None:
        if database is None:
            if path is None:
                raise ValueError("BookingStore needs a SQLite path or a database")
            database = SqliteBookingDatabase(path, settings)
        self.path = Path(path) if path is not None else None
        self.db = database
        self.settings = settings
        self.tz = settings.tz
        self._now = now or (lambda: dt.datetime.now(self.tz))

    # --- connection and transactions ---------------------------------------------
    def _write(self) -> Any:
        """One exclusive write transaction; rolled back on any exception."""
        return self.db.write()

    def _read(self) -> Any:
        return self.db.read()

    def init_schema(self) -> None:
        """Create the tables; idempotent, and leaves no connection open (fork-safe)."""
        self.db.init_schema()

    def close(self) -> None:
        self.db.close()

    # --- schedule rules ----------------------------------------------------------
    def now(self) -> dt.datetime:
        return self._now().astimezone(self.tz)

    def today(self) -> dt.date:
        return self.now().date()

    def services(self) -> list[str]:
        return list(self.settings.booking_services)

    def resolve_service(self, service: str) -> str:
        name = " ".join(service.lower().split())
        if name not in self.settings.booking_services:
            offered = ", ".join(self.settings.booking_services)
            raise BookingError(f"Unknown service {service!r}. We offer: {offered}.")
        return name

    def is_open_day(self, day: dt.date) -> bool:
        return day.weekday() in self.settings.booking_open_days

    def open_days_text(self) -> str:
        return ", ".join(WEEKDAYS[day] for day in self.settings.booking_open_days)

    def last_bookable_day(self) -> dt.date:
        return self.today() + dt.timedelta(days=self.settings.booking_horizon_days)

    def day_slots(self, day: dt.date) -> list[dt.datetime]:
        """Every start on an open day, ignoring bookings and the clock."""
        if not self.is_open_day(day):
            return []
        step = dt.timedelta(minutes=self.settings.booking_slot_minutes)
        start = dt.datetime.combine(day, self.settings.opening_time)
        close = dt.datetime.combine(day, self.settings.closing_time)
        slots = []
        while start + step <= close:
            slots.append(start.replace(tzinfo=self.tz))
            start += step
        return slots

    def localize(self, starts_at: dt.datetime) -> dt.datetime:
        """Naive datetimes are business-local; aware ones are converted to it."""
        if starts_at.tzinfo is None:
            return starts_at.replace(tzinfo=self.tz, second=0, microsecond=0)
        return starts_at.astimezone(self.tz)

    def validate_slot(self, starts_at: dt.datetime) -> dt.datetime:
        """Return the local start, or raise `BookingError` saying what is wrong."""
        start = self.localize(starts_at)
        day = start.date()
        when = f"{WEEKDAYS[day.weekday()]} {day.isoformat()} at {start:%H:%M}"
        hours = self.settings.booking_hours
        if not self.is_open_day(day):
            raise BookingError(
                f"We are closed on {WEEKDAYS[day.weekday()]}s ({day.isoformat()}). "
                f"Open days: {self.open_days_text()}."
            )
        if start <= self.now():
            raise BookingError(f"{when} is in the past; please choose a later time.")
        if day > self.last_bookable_day():
            raise BookingError(
                f"{day.isoformat()} is too far ahead; bookings open "
                f"{self.settings.booking_horizon_days} days in advance "
                f"(until {self.last_bookable_day().isoformat()})."
            )
        step = dt.timedelta(minutes=self.settings.booking_slot_minutes)
        opening = dt.datetime.combine(day, self.settings.opening_time, tzinfo=self.tz)
        closing = dt.datetime.combine(day, self.settings.closing_time, tzinfo=self.tz)
        if start < opening or start + step > closing:
            last = (closing - step).strftime("%H:%M")
            raise BookingError(
                f"{start:%H:%M} is outside opening hours ({hours}); "
                f"the last appointment starts at {last}."
            )
        if start.second or start.microsecond or (start - opening) % step:
            raise BookingError(
                f"Appointments start every {self.settings.booking_slot_minutes} minutes "
                f"from {self.settings.opening_time:%H:%M}; {start:%H:%M} is not a start time."
            )
        return start

    # --- queries -----------------------------------------------------------------
    @staticmethod
    def _key(start: dt.datetime) -> str:
        return start.isoformat(timespec="seconds")

    def _booked(self, conn: Any, day: dt.date, service: str | None) -> dict[str, set[str]]:
        """Confirmed starts on `day`, as {start key: services}."""
        low, high = day.isoformat(), (day + dt.timedelta(days=1)).isoformat()
        sql = (
            "SELECT starts_at, service FROM appointments "
            "WHERE status = 'confirmed' AND starts_at >= ? AND starts_at < ?"
        )
        params: tuple[str, ...] = (low, high)
        if service is not None:
            sql += " AND service = ?"
            params += (service,)
        booked: dict[str, set[str]] = {}
        for starts_at, booked_service in conn.execute(sql, params):
            booked.setdefault(starts_at, set()).add(booked_service)
        return booked

    def _free(self, conn: Any, day: dt.date, service: str | None) -> list[dt.datetime]:
        if day > self.last_bookable_day():
            return []
        now = self.now()
        booked = self._booked(conn, day, service)
        wanted = {service} if service else set(self.settings.booking_services)
        return [
            slot
            for slot in self.day_slots(day)
            if slot > now and not wanted <= booked.get(self._key(slot), set())
        ]

    def available_slots(self, date: dt.date, service: str | None = None) -> list[dt.datetime]:
        """Free starts on `date`; without a service, starts free for at least one."""
        name = self.resolve_service(service) if service else None
        with self._read() as conn:
            return self._free(conn, date, name)

    def _next_open_day(self, day: dt.date) -> dt.date | None:
        for offset in range(1, 8):
            candidate = day + dt.timedelta(days=offset)
            if self.is_open_day(candidate):
                return candidate if candidate <= self.last_bookable_day() else None
        return None

    def _alternatives(self, conn: Any, service: str, start: dt.datetime) -> list[dt.datetime]:
        candidates = [slot for slot in self._free(conn, start.date(), service) if slot != start]
        next_day = self._next_open_day(start.date())
        if next_day is not None:
            candidates += self._free(conn, next_day, service)
        nearest = sorted(candidates, key=lambda slot: (abs(slot - start), slot))
        return sorted(nearest[:MAX_ALTERNATIVES])

    def _row(self, row: tuple[Any, ...]) -> Appointment:
        code, service, starts_at, name, contact, status, created_at, cancelled_at = row
        return Appointment(
            confirmation_code=code,
            service=service,
            starts_at=dt.datetime.fromisoformat(starts_at).astimezone(self.tz),
            customer_name=name,
            contact=contact,
            status=status,
            created_at=created_at,
            cancelled_at=cancelled_at,
        )

    def _find(self, conn: Any, where: str, value: str) -> Appointment | None:
        row = conn.execute(f"SELECT {_COLUMNS} FROM appointments WHERE {where} = ?", (value,))
        found = row.fetchone()
        return self._row(found) if found else None

    # --- writes ------------------------------------------------------------------
    def book(
        self,
        service: str,
        starts_at: dt.datetime,
        customer_name: str,
        contact: str,
        idempotency_key: str | None = None,
    ) -> BookingResult:
        """Book one slot. Replaying `idempotency_key` returns the first result's booking."""
        name = " ".join(customer_name.split())
        who = normalize_contact(contact)
        with self._write() as conn:
            if idempotency_key:
                previous = self._find(conn, "idempotency_key", idempotency_key)
                if previous is not None:
                    return BookingResult(
                        "confirmed",
                        previous.service,
                        previous.starts_at,
                        appointment=previous,
                        replayed=True,
                    )
            service_name = self.resolve_service(service)
            start = self.validate_slot(starts_at)
            if not name:
                raise BookingError("A customer name is required.")
            if not who:
                raise BookingError("A contact (email or phone number) is required.")
            taken = conn.execute(
                "SELECT 1 FROM appointments "
                "WHERE service = ? AND starts_at = ? AND status = 'confirmed'",
                (service_name, self._key(start)),
            ).fetchone()
            if taken:
                alternatives = self._alternatives(conn, service_name, start)
                return BookingResult("taken", service_name, start, alternatives=alternatives)
            appointment = self._insert(conn, service_name, start, name, who, idempotency_key)
            return BookingResult("confirmed", service_name, start, appointment=appointment)

    def _insert(
        self,
        conn: Any,
        service: str,
        start: dt.datetime,
        name: str,
        contact: str,
        idempotency_key: str | None,
    ) -> Appointment:
        created_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        for _ in range(20):
            code = new_code()
            inserted = self.db.insert_unless_code_taken(
                conn,
                "INSERT INTO appointments (confirmation_code, service, starts_at, "
                "customer_name, contact, status, idempotency_key, created_at) "
                "VALUES (?, ?, ?, ?, ?, 'confirmed', ?, ?)",
                (code, service, self._key(start), name, contact, idempotency_key, created_at),
            )
            if inserted:
                return Appointment(code, service, start, name, contact, "confirmed", created_at)
            # A one-in-a-billion collision of confirmation codes: draw again.
        raise RuntimeError("could not draw a unique confirmation code")

    def cancel(self, code: str) -> Appointment:
        """Cancel by confirmation code; cancelling twice returns the cancelled row."""
        wanted = code.strip().upper()
        with self._write() as conn:
            appointment = self._find(conn, "confirmation_code", wanted)
            if appointment is None:
                raise BookingError(f"No appointment has the confirmation code {wanted!r}.")
            if appointment.status == "cancelled":
                return appointment
            cancelled_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            conn.execute(
                "UPDATE appointments SET status = 'cancelled', cancelled_at = ? "
                "WHERE confirmation_code = ?",
                (cancelled_at, wanted),
            )
            return Appointment(
                appointment.confirmation_code,
                appointment.service,
                appointment.starts_at,
                appointment.customer_name,
                appointment.contact,
                "cancelled",
                appointment.created_at,
                cancelled_at,
            )

    def appointments_for(
        self, contact: str, *, include_past: bool = False, include_cancelled: bool = False
    ) -> list[Appointment]:
        """A customer's appointments, soonest first (upcoming and confirmed by default)."""
        who = normalize_contact(contact)
        if not who:
            raise BookingError("A contact (email or phone number) is required.")
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM appointments WHERE contact = ? ORDER BY starts_at",
                (who,),
            ).fetchall()
        now = self.now()
        found = [self._row(row) for row in rows]
        return [
            item
            for item in found
            if (include_cancelled or item.status == "confirmed")
            and (include_past or item.starts_at > now)
        ]

    def get(self, code: str) -> Appointment | None:
        with self._read() as conn:
            return self._find(conn, "confirmation_code", code.strip().upper())


def open_booking_store(
    settings: Settings, *, now: Callable[[], dt.datetime] | None = None
) -> BookingStore:
    """The store for the configured backend: PostgreSQL with CHECKPOINTER=postgres, else SQLite."""
    if settings.checkpointer == "postgres":
        from service.bookings.postgres import PostgresBookingDatabase

        database = PostgresBookingDatabase(settings.database_url, settings)
        return BookingStore(None, settings, now=now, database=database)
    return BookingStore(settings.appointments_db_path, settings, now=now)


__all__ = [
    "SCHEMA",
    "Appointment",
    "BookingBusyError",
    "BookingError",
    "BookingResult",
    "BookingStore",
    "open_booking_store",
]
