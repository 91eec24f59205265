"""Locust profile: customers hold real booking conversations at 10 → 100 users.

    python -m locust -f loadtest/locust_profile/locustfile.py --headless \
        --host http://127.0.0.1:8000 --csv reports/loadtest/loadtest \
        --html reports/loadtest/report.html

`python loadtest/run.py` (make loadtest) starts a server, runs this, and applies
the gates. Settings come from the environment: see `loadtest/locust_profile/shape.py`.
"""

from __future__ import annotations

import itertools
import os
import random
from pathlib import Path
from typing import Any

from locust import FastHttpUser, LoadTestShape, between, events, task
from locust.env import Environment

from loadtest.common import dialogue
from loadtest.locust_profile.conversation import Conversation
from loadtest.locust_profile.shape import load_profile
from loadtest.locust_profile.steps import StepRecorder
from service.settings import load_settings

PROFILE = load_profile()
API_KEY = os.environ.get("LOADTEST_API_KEY", "")
RECORDER = StepRecorder()
ALLOCATOR = dialogue.SlotAllocator(load_settings())
# A random start keeps repeated runs against one long-lived server off each other's slots.
_slots = itertools.count(random.randrange(ALLOCATOR.size))
_uids = itertools.count(random.randrange(1_000_000))


class BookingCustomer(FastHttpUser):
    """A customer who books (and sometimes cancels), one conversation per thread."""

    wait_time = between(0.5, 2.0)
    # For a service with AUTH_ENABLED=true: any valid key (all users share its owner).
    default_headers = {"x-api-key": API_KEY} if API_KEY else None

    def on_start(self) -> None:
        self.rng = random.Random()

    @task
    def conversation(self) -> None:
        uid = next(_uids)
        customer = dialogue.make_customer(uid, ALLOCATOR.slot(next(_slots)), self.rng)
        Conversation(self.client, self.environment, RECORDER, PROFILE, customer, self.rng).run()


class SteppedLoad(LoadTestShape):
    """10, 25, 50, 75, 100 users (LOADTEST_STEPS), LOADTEST_STEP_SECONDS each, then stop."""

    def tick(self) -> tuple[int, float] | None:
        index = int(self.get_run_time() // PROFILE.step_seconds)
        if index >= len(PROFILE.steps):
            return None
        users = PROFILE.steps[index]
        RECORDER.begin_step(users)
        return users, PROFILE.spawn_rate


@events.request.add_listener
def _record(
    request_type: str,
    name: str,
    response_time: float,
    response: Any = None,
    exception: BaseException | None = None,
    **_: Any,
) -> None:
    status = int(getattr(response, "status_code", 0) or 0)
    RECORDER.record(
        request_type,
        name,
        response_time,
        status,
        failed=exception is not None,
        expected_409=status == 409 and exception is None,
    )


def _prefix(environment: Environment) -> Path:
    options = environment.parsed_options
    prefix = getattr(options, "csv_prefix", None) if options else None
    return Path(prefix or os.environ.get("LOADTEST_REPORT_PREFIX", "reports/loadtest/loadtest"))


@events.test_stop.add_listener
def _write_steps(environment: Environment, **_: Any) -> None:
    prefix = _prefix(environment)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    RECORDER.write(prefix)
