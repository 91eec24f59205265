"""What can stop a run before or while it runs, as the API reports it (api/errors.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable


class RunInputError(Exception):
    """The run request cannot be run as sent (422)."""


class RunTooLargeError(Exception):
    """The input breaks a size limit (413)."""


class RunTimeoutError(RuntimeError):
    """The run took longer than RUN_TIMEOUT_S (504)."""


class RunLimitError(RunInputError):
    """The run reached its `recursion_limit` before it finished (422)."""


class ClientGoneError(Exception):
    """The client left: before its run started, or with `on_disconnect="cancel"`."""


# Resolves once the client has disconnected.
ClientGone = Callable[[], Awaitable[None]]
