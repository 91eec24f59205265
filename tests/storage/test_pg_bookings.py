"""Bookings in PostgreSQL: the same rules, one booking per slot across hosts, idempotency."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import psycopg
import pytest

from service.bookings.postgres import PostgresBookingDatabase
from service.bookings.store import BookingError, BookingStore, open_booking_store
from service.settings import Settings
from tests.unit.conftest import MADRID, MONDAY_10AM, fixed_clock

TUESDAY_3PM = dt.datetime(2025, 6, 3, 15, 0, tzinfo=MADRID)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def settings(pg_url: str) -> Settings:
    settings = Settings(
        _env_file=None, llm_provider="offline", checkpointer="postgres", database_url=pg_url
    )
    store = open_booking_store(settings)
    store.init_schema()
    store.init_schema()  # idempotent
    store.close()
    return settings


def new_store(settings: Settings) -> BookingStore:
    """A store with its own pool: another worker, or another host."""
    database = PostgresBookingDatabase(settings.database_url, settings)
    return BookingStore(None, settings, now=fixed_clock(MONDAY_10AM), database=database)


@pytest.fixture
def store(settings: Settings, pg_url: str) -> Iterator[BookingStore]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("TRUNCATE appointments")
    store = new_store(settings)
    yield store
    store.close()


def confirmed(pg_url: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(
            "SELECT confirmation_code, service, starts_at FROM appointments "
            "WHERE status = 'confirmed' ORDER BY starts_at"
        ).fetchall()


def test_open_booking_store_follows_the_backend(settings: Settings) -> None:
    store = open_booking_store(settings)
    assert isinstance(store.db, PostgresBookingDatabase)
    store.close()


def test_book_replay_taken_and_alternatives(store: BookingStore, pg_url: str) -> None:
    first = store.book("haircut", TUESDAY_3PM, "Ana", "ana@example.com", "key-1")
    assert first.status == "confirmed" and not first.replayed
    again = store.book("haircut", TUESDAY_3PM, "Ana", "ana@example.com", "key-1")
    assert again.replayed and again.confirmation_code == first.confirmation_code
    taken = store.book("haircut", TUESDAY_3PM, "Bob", "bob@example.com", "key-2")
    assert taken.status == "taken"
    assert {"14:30", "15:30"} <= {slot.strftime("%H:%M") for slot in taken.alternatives}
    assert store.book("manicure", TUESDAY_3PM, "Bob", "b@example.com", "k3").status == "confirmed"
    assert confirmed(pg_url)[0][2] == "2025-06-03T15:00:00+02:00"
    with pytest.raises(BookingError, match="closed on Sundays"):
        store.book("haircut", dt.datetime(2025, 6, 8, 11, 0), "Ana", "a@example.com", "k4")


def test_available_slots_and_cancel(store: BookingStore) -> None:
    booked = store.book("haircut", TUESDAY_3PM, "Ana", "+34 600 123 456", "k1")
    tuesday = store.available_slots(TUESDAY_3PM.date(), "haircut")
    assert len(tuesday) == 17 and TUESDAY_3PM not in tuesday
    assert [a.service for a in store.appointments_for("+34600123456")] == ["haircut"]
    code = booked.confirmation_code or ""
    assert store.cancel(code.lower()).status == "cancelled"
    assert store.cancel(code).status == "cancelled"
    assert TUESDAY_3PM in store.available_slots(TUESDAY_3PM.date(), "haircut")
    assert store.get(code) is not None and store.appointments_for("+34600123456") == []


def test_the_database_enforces_one_booking_per_slot(store: BookingStore, pg_url: str) -> None:
    insert = (
        "INSERT INTO appointments (confirmation_code, service, starts_at, customer_name, "
        "contact, status, created_at) VALUES (%s, 'haircut', '2025-06-03T15:00:00+02:00', "
        "'X', 'x@example.com', %s, 'now')"
    )
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(insert, ("AAAAA1", "confirmed"))
        conn.execute(insert, ("AAAAA2", "cancelled"))  # cancelled rows do not count
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(insert, ("AAAAA3", "confirmed"))


@pytest.mark.parametrize("same_key", [False, True], ids=["racers", "replays"])
def test_hosts_racing_for_one_slot_get_exactly_one_booking(
    store: BookingStore, settings: Settings, pg_url: str, same_key: bool
) -> None:
    racers = 8
    stores = [new_store(settings) for _ in range(racers)]
    barrier = Barrier(racers)

    def race(index: int) -> tuple[str, str | None]:
        barrier.wait(timeout=30)
        key = "one-tool-call" if same_key else f"racer-{index}"
        result = stores[index].book("haircut", TUESDAY_3PM, "R", f"r{index}@example.com", key)
        return result.status, result.confirmation_code

    try:
        with ThreadPoolExecutor(racers) as pool:
            outcomes = list(pool.map(race, range(racers)))
    finally:
        for each in stores:
            each.close()
    rows = confirmed(pg_url)
    assert len(rows) == 1
    if same_key:  # a replayed tool call returns the first booking, never a second one
        assert outcomes == [("confirmed", rows[0][0])] * racers
    else:
        assert sorted(status for status, _ in outcomes) == ["confirmed"] + ["taken"] * 7
