"""Side effects outside the conversation (a booking made or cancelled) and the run behind them.

A tool with such an effect calls `begin()` just before it acts. From then on the run
that executes it must finish and be persisted whatever happens to its client, or the
effect would exist without the turn that explains it: a run asks `try_stop()` before
it cancels itself, and an effect whose run was already stopped is never begun.

The ledger reaches the tool through a context variable: LangGraph and LangChain copy
the context into the tasks and threads that run a node, so the tool sees the ledger of
the run that called it, and nothing else.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar


class RunStopped(RuntimeError):
    """The run was stopped before this side effect began; it was not carried out."""


class EffectLedger:
    """Whether a run has begun a side effect, or has been stopped; never both."""

    __slots__ = ("_lock", "begun", "stopped")

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the tool runs in a worker thread, the stop on the loop
        self.begun = 0
        self.stopped = False

    def begin(self) -> None:
        with self._lock:
            if self.stopped:
                raise RunStopped("the run was cancelled before this action")
            self.begun += 1

    def try_stop(self) -> bool:
        """Mark the run stopped, unless a side effect has begun (then it must run on)."""
        with self._lock:
            if self.begun:
                return False
            self.stopped = True
            return True


_ledger: ContextVar[EffectLedger | None] = ContextVar("side_effect_ledger", default=None)


def track(ledger: EffectLedger) -> None:
    """Attach `ledger` to the current task: call it at the start of the run's own task."""
    _ledger.set(ledger)


def begin() -> None:
    """Announce a side effect of the current run (no-op outside a tracked run)."""
    ledger = _ledger.get()
    if ledger is not None:
        ledger.begin()
