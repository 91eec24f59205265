"""PostgreSQL fixtures for the storage tests; each module defines its own `settings`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest

from service.settings import Settings
from service.storage.postgres.pool import new_pool


@pytest.fixture
def sql(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[Any]:
    pool = new_pool(settings, "test")
    await pool.open(wait=True)
    yield pool
    await pool.close()
