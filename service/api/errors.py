"""Every error a client can cause becomes a 4xx JSON `{"detail": ...}`; storage trouble a 503.

One table: the service's own error types and what each answers. Anything else, a
plain `ValueError` included, is a bug of ours: a 500 with its traceback in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from service.runs.commands import CommandError, CommandTooLargeError, NotInterruptedError
from service.runs.errors import (
    ClientGoneError,
    RunInputError,
    RunTimeoutError,
    RunTooLargeError,
)
from service.schemas.validation import quote, safe_text
from service.storage.errors import (
    AssistantExistsError,
    AssistantNotFoundError,
    AssistantVersionNotFoundError,
    BuiltInAssistantError,
    CheckpointNotFoundError,
    CronNotFoundError,
    RunActiveError,
    RunEndedError,
    RunNotFoundError,
    StorageUnavailableError,
    ThreadExistsError,
    ThreadNotFoundError,
    UnsupportedByBackendError,
)
from service.storage.locks import ThreadBusyError, ThreadWaitTimeoutError

log = logging.getLogger(__name__)

Detail = Callable[[Any], object]


def _thread(text: str) -> Detail:
    return lambda exc: f"Thread {quote(exc.args[0])} {text}"


def _message(exc: BaseException) -> str:
    return str(exc)


def _retry_after(exc: StorageUnavailableError) -> dict[str, str]:
    return {"Retry-After": str(exc.retry_after_s)}


# (error type, status, detail, headers). Starlette answers with the entry of the most
# specific type along the error's MRO (a timeout in the queue is not a plain busy).
ERROR_TABLE: list[tuple[type[BaseException], int, Detail, Callable[[Any], dict] | None]] = [
    (ThreadNotFoundError, 404, _thread("not found"), None),
    (
        CheckpointNotFoundError,
        404,
        lambda exc: f"Checkpoint {quote(exc.args[1])} not found in thread {quote(exc.args[0])}",
        None,
    ),
    (
        RunNotFoundError,
        404,
        lambda exc: f"Run {quote(exc.args[1])} not found in thread {quote(exc.args[0])}",
        None,
    ),
    (ThreadExistsError, 409, _thread("already exists"), None),
    (CronNotFoundError, 404, lambda exc: f"Cron {quote(exc.args[0])} not found", None),
    (
        AssistantNotFoundError,
        404,
        lambda exc: f"Assistant {quote(exc.args[0])} not found",
        None,
    ),
    (
        AssistantVersionNotFoundError,
        404,
        lambda exc: f"Assistant {quote(exc.args[0])} has no version {exc.args[1]}",
        None,
    ),
    (
        AssistantExistsError,
        409,
        lambda exc: f"Assistant {quote(exc.args[0])} already exists",
        None,
    ),
    (
        BuiltInAssistantError,
        409,
        lambda exc: (
            f"Assistant {quote(exc.args[0])} is the graph's own: it cannot be changed or "
            "deleted; create an assistant of the graph instead"
        ),
        None,
    ),
    (
        RunEndedError,
        409,
        lambda exc: (
            f"Run {quote(exc.args[0])} has already ended ({exc.args[1]}); nothing to cancel"
        ),
        None,
    ),
    (
        RunActiveError,
        409,
        lambda exc: f"Run {quote(exc.args[0])} has not ended; only a finished run is deleted",
        None,
    ),
    (
        ThreadWaitTimeoutError,
        409,
        _thread("stayed busy longer than the enqueue timeout; nothing was written, retry later"),
        None,
    ),
    (
        ThreadBusyError,
        409,
        _thread("is busy with another run (multitask_strategy=reject); nothing was written"),
        None,
    ),
    (NotInterruptedError, 409, _message, None),
    (RunTooLargeError, 413, _message, None),
    (CommandTooLargeError, 413, _message, None),
    (CommandError, 422, _message, None),
    (UnsupportedByBackendError, 422, lambda exc: f"not supported by this backend: {exc}", None),
    (RunInputError, 422, _message, None),
    # Nobody reads this; 499 (nginx's "client closed request") keeps it apart in metrics.
    (ClientGoneError, 499, _message, None),
    (RunTimeoutError, 504, _message, None),
    (StorageUnavailableError, 503, _message, _retry_after),
]


def _error(status: int, detail: object, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _handler(status: int, detail: Detail, headers: Callable[[Any], dict] | None):
    async def handle(_: Request, exc: Exception) -> JSONResponse:
        return _error(status, detail(exc), headers(exc) if headers else None)

    return handle


async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    # Keys in `loc` are the client's own (metadata keys): shortened and made UTF-8.
    errors = [
        {
            "loc": [
                part if isinstance(part, int) else safe_text(str(part))
                for part in err.get("loc", ())
            ],
            "msg": safe_text(str(err.get("msg")), 300),
            "type": err.get("type"),
        }
        for err in exc.errors()
    ]
    return _error(422, errors)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _error(500, "internal error; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    for error_type, status, detail, headers in ERROR_TABLE:
        app.add_exception_handler(error_type, _handler(status, detail, headers))
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(Exception, _unexpected)
