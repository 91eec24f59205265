"""Cron schedules and the leader's firing pass, on the in-memory store."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from service.observability import metrics
from service.runs.crons import CronService, check_schedule, next_firing
from service.runs.errors import RunInputError
from service.runs.lifecycle import RunService
from service.schemas.models import CronCreate
from service.settings import Settings
from service.storage import open_persistence
from service.storage.records import iso_utc

HELLO = {"messages": [{"role": "user", "content": "hi"}]}


def test_next_firing_follows_the_timezone() -> None:
    winter = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
    assert next_firing("0 9 * * *", "Europe/Paris", winter) == dt.datetime(
        2026, 12, 4, 8, 0, tzinfo=dt.UTC
    )
    summer = dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC)
    assert next_firing("0 9 * * *", "Europe/Paris", summer).hour == 7
    assert next_firing("*/15 * * * *", None, winter) == winter + dt.timedelta(minutes=15)


@pytest.mark.parametrize(
    ("schedule", "timezone"),
    [("daily", None), ("61 * * * *", None), ("0 9 * * *", "Nowhere/Land"), ("* * * * *", "..")],
)
def test_bad_schedules_are_refused(schedule: str, timezone: str | None) -> None:
    with pytest.raises(RunInputError):
        check_schedule(schedule, timezone)


@pytest.fixture
async def crons(tmp_path: Path):
    settings = Settings(_env_file=None, checkpointer="memory", checkpoints_db_path=tmp_path / "c")
    persistence = open_persistence(settings)
    await persistence.start()
    yield CronService(RunService(None, persistence, settings))  # type: ignore[arg-type]
    await persistence.aclose()


async def test_a_firing_missed_while_nobody_led_is_reported_not_replayed(crons) -> None:
    cron = await crons.create(
        CronCreate(assistant_id="agent", schedule="*/10 * * * *", input=HELLO), None, None
    )
    # The service was down for two hours: the firing it was waiting for is long past.
    two_hours_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    cron.next_run_date = iso_utc(next_firing(cron.schedule, None, two_hours_ago))
    await crons.persistence.save_cron(cron)
    missed = metrics.CRON_FIRINGS.labels(result="missed")
    before = missed._value.get()
    assert await crons.fire_due() == 0  # no run started for the missed firings
    assert 11 <= missed._value.get() - before <= 13  # every 10 minutes for two hours
    after = await crons.persistence.get_cron(cron.cron_id)
    assert after.next_run_date > iso_utc(dt.datetime.now(dt.UTC))  # from now on
    assert await crons.persistence.active_runs(None) == []


async def test_a_cron_past_its_end_time_stops(crons) -> None:
    ended = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    body = CronCreate(assistant_id="agent", schedule="0 9 1 1 *", input=HELLO, end_time=ended)
    cron = await crons.create(body, None, None)
    assert cron.enabled is False and cron.next_run_date is None
