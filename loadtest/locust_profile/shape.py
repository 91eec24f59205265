"""Load profile settings from the environment, shared by the Locust file and the runner.

LOADTEST_PROFILE       short (CI, ~15 s steps) | full (60 s steps)
LOADTEST_STEPS         user counts per step, default 10,25,50,75,100
LOADTEST_MAX_USERS     drop steps above this count (e.g. 25 for a smoke run)
LOADTEST_STEP_SECONDS  length of each step (default: 15 short, 60 full)
LOADTEST_SPAWN_RATE    users started per second (default: 20 short, 10 full)
LOADTEST_P95_MS        gate on the p95 of conversation turns (default 2000 short, 3000 full)
LOADTEST_THINK_MS      pause between a user's turns, "min-max" ms (default 100-600)
LOADTEST_DOUBLE_TEXT   share of conversations that double-text (default 0.1)
LOADTEST_READ_SHARE    share of conversations that also read history (default 0.3); half
                       of those also read an older checkpoint (time travel)
LOADTEST_APPROVAL      share of conversations whose booking waits for approval, then is
                       approved (mostly) or rejected (default 0.2)
LOADTEST_BACKGROUND    share of conversations whose turns are background runs, created
                       and then joined, often on another worker (default 0.2)
LOADTEST_CHECK_HISTORY 0 turns off the per-turn state check (CHECKPOINTER=memory)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_STEPS = (10, 25, 50, 75, 100)
_PROFILES = {
    "short": {"step_seconds": 15.0, "spawn_rate": 20.0, "p95_ms": 2000.0},
    "full": {"step_seconds": 60.0, "spawn_rate": 10.0, "p95_ms": 3000.0},
}


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


@dataclass(frozen=True)
class Profile:
    name: str
    steps: tuple[int, ...]
    step_seconds: float
    spawn_rate: float
    p95_ms: float
    think_ms: tuple[float, float]
    double_text_share: float
    read_share: float
    check_history: bool
    approval_share: float = 0.0
    background_share: float = 0.0

    @property
    def duration_s(self) -> float:
        return self.step_seconds * len(self.steps)


def load_profile() -> Profile:
    """The profile named by LOADTEST_PROFILE, with any per-setting overrides applied."""
    name = os.environ.get("LOADTEST_PROFILE", "short").strip() or "short"
    if name not in _PROFILES:
        raise SystemExit(f"LOADTEST_PROFILE must be one of {sorted(_PROFILES)}; got {name!r}")
    base = _PROFILES[name]
    raw_steps = os.environ.get("LOADTEST_STEPS", "").strip()
    steps = tuple(int(x) for x in raw_steps.split(",") if x.strip()) if raw_steps else DEFAULT_STEPS
    cap = os.environ.get("LOADTEST_MAX_USERS", "").strip()
    if cap:
        steps = tuple(s for s in steps if s <= int(cap)) or (int(cap),)
    think = os.environ.get("LOADTEST_THINK_MS", "100-600").split("-")
    low = float(think[0])
    return Profile(
        name=name,
        steps=steps,
        step_seconds=_env_float("LOADTEST_STEP_SECONDS", base["step_seconds"]),
        spawn_rate=_env_float("LOADTEST_SPAWN_RATE", base["spawn_rate"]),
        p95_ms=_env_float("LOADTEST_P95_MS", base["p95_ms"]),
        think_ms=(low, float(think[1]) if len(think) > 1 else low),
        double_text_share=_env_float("LOADTEST_DOUBLE_TEXT", 0.1),
        read_share=_env_float("LOADTEST_READ_SHARE", 0.3),
        check_history=os.environ.get("LOADTEST_CHECK_HISTORY", "1").strip() not in ("0", "false"),
        approval_share=_env_float("LOADTEST_APPROVAL", 0.2),
        background_share=_env_float("LOADTEST_BACKGROUND", 0.2),
    )
