"""The error table: each of the service's errors answers its status with a JSON detail;
anything else is a 500 (a bug of ours, never dressed up as a client error)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from service.api.errors import ERROR_TABLE, install_error_handlers
from service.runs.errors import RunInputError, RunTooLargeError
from service.storage.errors import StorageUnavailableError, ThreadNotFoundError
from service.storage.locks import ThreadBusyError, ThreadWaitTimeoutError


def app_raising(exc: BaseException) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    return app


async def answer(exc: BaseException) -> httpx.Response:
    transport = httpx.ASGITransport(app=app_raising(exc), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get("/boom")


@pytest.mark.parametrize(
    ("exc", "status", "text"),
    [
        (ThreadNotFoundError("t" * 500), 404, "not found"),
        (ThreadBusyError("t1"), 409, "busy"),
        (ThreadWaitTimeoutError("t1"), 409, "enqueue timeout"),
        (RunTooLargeError("too big"), 413, "too big"),
        (RunInputError("bad input"), 422, "bad input"),
        (StorageUnavailableError("locked", retry_after_s=3), 503, "locked"),
    ],
)
async def test_each_error_answers_its_status(exc: BaseException, status: int, text: str) -> None:
    response = await answer(exc)
    assert response.status_code == status
    assert text in response.json()["detail"]
    assert len(response.text) < 300, "a thread id is quoted short"


async def test_storage_trouble_says_when_to_retry() -> None:
    response = await answer(StorageUnavailableError("locked", retry_after_s=3))
    assert response.headers["Retry-After"] == "3"


@pytest.mark.parametrize("exc", [ValueError("internal"), KeyError("x"), RuntimeError("y")])
async def test_anything_else_is_a_500(exc: BaseException) -> None:
    response = await answer(exc)
    assert response.status_code == 500
    assert response.json()["detail"] == "internal error; see the server log"


def test_the_table_names_each_type_once() -> None:
    types = [row[0] for row in ERROR_TABLE]
    assert len(types) == len(set(types))
    assert all(400 <= row[1] < 600 for row in ERROR_TABLE)
