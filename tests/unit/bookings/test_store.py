"""BookingStore: schedule rules, idempotency, and one booking per slot across processes."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import re
from pathlib import Path
from typing import Any

import pytest

from service.agent.offline.nlu import parse_code
from service.bookings.store import BookingError, BookingStore, new_code
from service.storage.sqlite import driver as sqlite_driver
from tests.unit.conftest import MADRID, MONDAY_10AM, fixed_clock, make_settings

TUESDAY_3PM = dt.datetime(2025, 6, 3, 15, 0, tzinfo=MADRID)


def rows(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite_driver.sqlite3.connect(str(path))
    try:
        return conn.execute(
            "SELECT confirmation_code, service, starts_at, status FROM appointments"
        ).fetchall()
    finally:
        conn.close()


def test_book_returns_a_six_character_code(store: BookingStore, db_path: Path) -> None:
    result = store.book("haircut", TUESDAY_3PM, "Ana", "ana@example.com", "key-1")
    assert result.status == "confirmed" and not result.replayed
    assert re.fullmatch(r"[A-Z0-9]{6}", result.confirmation_code or "")
    assert rows(db_path) == [
        (result.confirmation_code, "haircut", "2025-06-03T15:00:00+02:00", "confirmed")
    ]


def test_replayed_idempotency_key_returns_the_same_booking(
    store: BookingStore, db_path: Path
) -> None:
    first = store.book("haircut", TUESDAY_3PM, "Ana", "ana@example.com", "key-1")
    again = store.book("haircut", TUESDAY_3PM, "Ana", "ana@example.com", "key-1")
    assert again.status == "confirmed" and again.replayed
    assert again.confirmation_code == first.confirmation_code
    assert len(rows(db_path)) == 1


def test_naive_and_aware_starts_mean_the_same_local_slot(store: BookingStore) -> None:
    store.book("haircut", dt.datetime(2025, 6, 3, 15, 0), "Ana", "ana@example.com", "a")
    utc = TUESDAY_3PM.astimezone(dt.UTC)
    assert store.book("haircut", utc, "Bob", "bob@example.com", "b").status == "taken"


def test_taken_slot_offers_the_nearest_free_alternatives(store: BookingStore) -> None:
    store.book("haircut", TUESDAY_3PM, "Ana", "ana@example.com", "key-1")
    result = store.book("haircut", TUESDAY_3PM, "Bob", "bob@example.com", "key-2")
    assert result.status == "taken" and result.confirmation_code is None
    times = [slot.strftime("%H:%M") for slot in result.alternatives]
    assert len(times) == 3 and "15:00" not in times
    assert {"14:30", "15:30"} <= set(times)
    payload = result.to_dict()
    assert payload["status"] == "taken" and len(payload["alternatives"]) == 3


def test_another_service_can_share_the_start(store: BookingStore) -> None:
    store.book("haircut", TUESDAY_3PM, "Ana", "ana@example.com", "key-1")
    other = store.book("manicure", TUESDAY_3PM, "Bob", "bob@example.com", "key-2")
    assert other.status == "confirmed"


def test_alternatives_skip_closed_days(tmp_path: Path) -> None:
    saturday_8am = dt.datetime(2025, 6, 7, 8, 0, tzinfo=MADRID)
    settings = make_settings(booking_hours="09:00-10:00")
    store = BookingStore(tmp_path / "a.db", settings, now=fixed_clock(saturday_8am))
    store.init_schema()
    store.book("haircut", dt.datetime(2025, 6, 7, 9, 0), "Ana", "a@example.com", "1")
    store.book("haircut", dt.datetime(2025, 6, 7, 9, 30), "Bob", "b@example.com", "2")
    result = store.book("haircut", dt.datetime(2025, 6, 7, 9, 30), "Cy", "c@example.com", "3")
    monday = dt.date(2025, 6, 9)
    assert result.status == "taken"
    assert [(s.date(), s.strftime("%H:%M")) for s in result.alternatives] == [
        (monday, "09:00"),
        (monday, "09:30"),
    ]
    store.close()


@pytest.mark.parametrize(
    ("service", "start", "message"),
    [
        ("massage", dt.datetime(2025, 6, 3, 15, 0), "Unknown service"),
        ("haircut", dt.datetime(2025, 6, 8, 11, 0), "closed on Sundays"),
        ("haircut", dt.datetime(2025, 6, 2, 9, 30), "in the past"),
        ("haircut", dt.datetime(2025, 6, 3, 15, 10), "not a start time"),
        ("haircut", dt.datetime(2025, 6, 3, 8, 30), "outside opening hours"),
        ("haircut", dt.datetime(2025, 6, 3, 18, 0), "outside opening hours"),
        ("haircut", dt.datetime(2025, 8, 30, 10, 0), "too far ahead"),
    ],
)
def test_invalid_requests_raise_a_clear_booking_error(
    store: BookingStore, service: str, start: dt.datetime, message: str, db_path: Path
) -> None:
    with pytest.raises(BookingError, match=message):
        store.book(service, start, "Ana", "ana@example.com", "key-1")
    assert rows(db_path) == []


def test_last_slot_of_the_day_is_bookable(store: BookingStore) -> None:
    last = dt.datetime(2025, 6, 3, 17, 30)
    assert store.book("Haircut", last, "Ana", "ana@example.com", "k").status == "confirmed"


def test_name_and_contact_are_required(store: BookingStore) -> None:
    with pytest.raises(BookingError, match="name"):
        store.book("haircut", TUESDAY_3PM, "  ", "ana@example.com", "k1")
    with pytest.raises(BookingError, match="contact"):
        store.book("haircut", TUESDAY_3PM, "Ana", " ", "k2")


def test_available_slots_skip_past_and_booked_starts(store: BookingStore) -> None:
    today = store.available_slots(MONDAY_10AM.date(), "haircut")
    assert today[0].strftime("%H:%M") == "10:30" and today[-1].strftime("%H:%M") == "17:30"
    store.book("haircut", TUESDAY_3PM, "Ana", "ana@example.com", "k")
    tuesday = [s.strftime("%H:%M") for s in store.available_slots(TUESDAY_3PM.date(), "haircut")]
    assert len(tuesday) == 17 and "15:00" not in tuesday
    # Without a service, a start stays listed while any service is free then.
    any_service = store.available_slots(TUESDAY_3PM.date())
    assert "15:00" in [s.strftime("%H:%M") for s in any_service]
    assert store.available_slots(dt.date(2025, 6, 8)) == []


def test_cancel_frees_the_slot(store: BookingStore) -> None:
    booked = store.book("haircut", TUESDAY_3PM, "Ana", "ana@example.com", "k1")
    code = booked.confirmation_code or ""
    cancelled = store.cancel(code.lower())
    assert cancelled.status == "cancelled" and cancelled.confirmation_code == code
    assert store.cancel(code).status == "cancelled"  # cancelling twice is harmless
    assert TUESDAY_3PM in store.available_slots(TUESDAY_3PM.date(), "haircut")
    rebooked = store.book("haircut", TUESDAY_3PM, "Bob", "bob@example.com", "k2")
    assert rebooked.status == "confirmed" and rebooked.confirmation_code != code


def test_cancel_unknown_code_is_a_booking_error(store: BookingStore) -> None:
    with pytest.raises(BookingError, match="ZZZ999"):
        store.cancel("ZZZ999")


def test_appointments_for_matches_contact_however_typed(store: BookingStore) -> None:
    store.book("haircut", TUESDAY_3PM, "Ana", "+34 600 123 456", "k1")
    store.book("manicure", dt.datetime(2025, 6, 4, 10, 0), "Ana", "+34600123456", "k2")
    found = store.appointments_for("+34 600-123-456")
    assert [a.service for a in found] == ["haircut", "manicure"]
    store.cancel(found[0].confirmation_code)
    assert [a.service for a in store.appointments_for("+34600123456")] == ["manicure"]


def test_schema_is_idempotent_and_the_database_enforces_one_booking_per_slot(
    store: BookingStore, db_path: Path
) -> None:
    store.init_schema()
    store.init_schema()
    conn = sqlite_driver.sqlite3.connect(str(db_path))
    insert = (
        "INSERT INTO appointments (confirmation_code, service, starts_at, customer_name, "
        "contact, status, created_at) VALUES (?, 'haircut', '2025-06-03T15:00:00+02:00', "
        "'X', 'x@example.com', ?, 'now')"
    )
    try:
        conn.execute(insert, ("AAAAA1", "confirmed"))
        conn.execute(insert, ("AAAAA2", "cancelled"))  # cancelled rows do not count
        with pytest.raises(sqlite_driver.sqlite3.IntegrityError):
            conn.execute(insert, ("AAAAA3", "confirmed"))
    finally:
        conn.close()


def _race(path: str, key: str, barrier: Any, results: Any) -> None:
    """One process trying to book the contested slot (runs under spawn)."""
    store = BookingStore(path, make_settings(), now=fixed_clock(MONDAY_10AM))
    try:
        barrier.wait(timeout=60)
        result = store.book("haircut", TUESDAY_3PM, "Racer", f"{key}@example.com", key)
        results.put((key, result.status, result.confirmation_code))
    except Exception as exc:  # report, so the parent fails with the reason
        results.put((key, "error", repr(exc)))
    finally:
        store.close()


def test_processes_racing_for_one_slot_get_exactly_one_booking(
    store: BookingStore, db_path: Path
) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers = 8
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [
        ctx.Process(target=_race, args=(str(db_path), f"racer-{i}", barrier, results))
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=90) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    statuses = sorted(status for _, status, _ in outcomes)
    assert statuses == ["confirmed"] + ["taken"] * (workers - 1), outcomes
    confirmed = [row for row in rows(db_path) if row[3] == "confirmed"]
    assert len(confirmed) == 1
    winner = next(code for _, status, code in outcomes if status == "confirmed")
    assert confirmed[0][0] == winner


def test_every_issued_code_is_read_back_from_a_cancel_request() -> None:
    """A code always carries a letter and a digit, so no phrasing of it reads as a number."""
    phrasings = ("cancel {}", "Quiero cancelar la cita {}", "cancel {} please", "anula {}")
    for _ in range(5000):
        code = new_code()
        assert any(ch.isdigit() for ch in code) and any(ch.isalpha() for ch in code)
        for phrasing in phrasings:
            assert parse_code(phrasing.format(code)) == code
            assert parse_code(phrasing.format(code.lower())) == code


def test_a_booking_write_behind_a_held_lock_is_busy_and_leaves_the_database_usable(
    tmp_path: Path,
) -> None:
    from service.bookings.sqlite import BookingBusyError, SqliteBookingDatabase

    settings = make_settings(sqlite_busy_timeout_ms=50)
    database = SqliteBookingDatabase(tmp_path / "appointments.db", settings)
    database.init_schema()
    holder = sqlite_driver.connect(tmp_path / "appointments.db", settings)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(BookingBusyError), database.write():
        pytest.fail("the write must not start while another connection holds the lock")
    holder.execute("ROLLBACK")
    holder.close()
    with database.write() as conn:
        conn.execute("DELETE FROM appointments")
    database.close()
