"""Every error a client can cause becomes a 4xx JSON `{"detail": ...}`; storage trouble a 503."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from service.persistence.errors import (
    StorageUnavailableError,
    ThreadExistsError,
    ThreadNotFoundError,
)
from service.persistence.locks import ThreadBusyError, ThreadWaitTimeoutError
from service.runs.service import (
    ClientGoneError,
    RunInputError,
    RunTimeoutError,
    RunTooLargeError,
)
from service.schemas.validation import quote, safe_text

log = logging.getLogger(__name__)


def _error(status: int, detail: object, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ThreadNotFoundError)
    async def _not_found(_: Request, exc: ThreadNotFoundError) -> JSONResponse:
        return _error(404, f"Thread {quote(exc.args[0])} not found")

    @app.exception_handler(ThreadExistsError)
    async def _exists(_: Request, exc: ThreadExistsError) -> JSONResponse:
        return _error(409, f"Thread {quote(exc.args[0])} already exists")

    @app.exception_handler(ThreadWaitTimeoutError)
    async def _wait_timeout(_: Request, exc: ThreadWaitTimeoutError) -> JSONResponse:
        return _error(
            409,
            f"Thread {quote(exc.args[0])} stayed busy longer than the enqueue timeout; "
            "nothing was written, retry later",
        )

    @app.exception_handler(ThreadBusyError)
    async def _busy(_: Request, exc: ThreadBusyError) -> JSONResponse:
        return _error(
            409,
            f"Thread {quote(exc.args[0])} is busy with another run (multitask_strategy=reject); "
            "nothing was written",
        )

    @app.exception_handler(RunTooLargeError)
    async def _too_large(_: Request, exc: RunTooLargeError) -> JSONResponse:
        return _error(413, str(exc))

    @app.exception_handler(RunInputError)
    async def _bad_run(_: Request, exc: RunInputError) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(ValueError)
    async def _bad_value(_: Request, exc: ValueError) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(RunTimeoutError)
    async def _run_timeout(_: Request, exc: RunTimeoutError) -> JSONResponse:
        return _error(504, str(exc))

    @app.exception_handler(ClientGoneError)
    async def _client_gone(_: Request, exc: ClientGoneError) -> JSONResponse:
        # Nobody reads this; 499 (nginx's "client closed request") keeps it apart in metrics.
        return _error(499, str(exc))

    @app.exception_handler(StorageUnavailableError)
    async def _unavailable(_: Request, exc: StorageUnavailableError) -> JSONResponse:
        return _error(503, str(exc), {"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(RequestValidationError)
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

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "internal error; see the server log")
