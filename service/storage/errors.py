"""Storage errors that the HTTP layer maps to clean responses."""

from __future__ import annotations


class StorageUnavailableError(RuntimeError):
    """The store cannot serve the request right now; the client should retry (503)."""

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StorageBusyError(StorageUnavailableError):
    """The write lock stayed taken past busy_timeout. Nothing was written."""


class ThreadNotFoundError(LookupError):
    """No thread with this id exists."""


class CheckpointNotFoundError(LookupError):
    """The thread has no checkpoint with this id (`args`: thread id, checkpoint id)."""


class ThreadExistsError(ValueError):
    """A thread with this id already exists (POST /threads with if_exists=raise)."""


class UnsupportedByBackendError(Exception):
    """This backend (a benchmark one) does not offer the operation (422)."""


class RunNotFoundError(LookupError):
    """The thread has no run with this id (`args`: thread id, run id)."""


class RunActiveError(Exception):
    """The run has not ended, so its record stays (409)."""


class RunEndedError(Exception):
    """The run has already ended, so there is nothing to cancel (`args`: run id, status)."""


class CronNotFoundError(LookupError):
    """No cron with this id (or another owner's)."""


class AssistantNotFoundError(LookupError):
    """No assistant with this id (or another owner's)."""


class AssistantExistsError(ValueError):
    """An assistant with this id exists (`if_exists=raise`)."""


class AssistantVersionNotFoundError(LookupError):
    """The assistant has no version by that number (`args`: assistant id, version)."""


class BuiltInAssistantError(Exception):
    """The graph's own assistant is not stored: it cannot be edited or deleted."""
