"""Shared fixtures: a real multi-worker server on a temporary database, SQLite or PostgreSQL.

A test that uses `backend` (directly or through `backend_env` / `server`) runs once
per backend; `@pytest.mark.backends("sqlite")` keeps a SQLite-specific test to one.
PostgreSQL comes from `tests/support/postgres.py`: a throwaway cluster, or the
server TEST_DATABASE_URL names. Without either its tests skip, except under CI,
where they fail.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from service.settings import Settings
from service.storage import open_persistence, prepare_checkpoint_storage
from service.storage.base import Persistence
from tests.support.postgres import Postgres, database, start_postgres
from tests.support.server import ServerProcess

BACKENDS = ("sqlite", "postgres")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "backends(*names): storage backends a test runs against (default: sqlite, postgres)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        names = marker.args if marker else BACKENDS
        metafunc.parametrize("backend", names, indirect=True, scope="module")


@pytest.fixture(scope="module")
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """One PostgreSQL for the whole run, started on first use."""
    server, reason = start_postgres()
    if server is None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI is set, so this is an error, not a skip", pytrace=False)
        pytest.skip(reason)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pg_url(postgres_server: Postgres, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database for this test module, dropped after it."""
    with database(postgres_server, request.module.__name__.rsplit(".", 1)[-1]) as url:
        yield url


@pytest.fixture(scope="module")
def backend_env(backend: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """The server environment that selects `backend`."""
    if backend == "postgres":
        url = request.getfixturevalue("pg_url")
        return {"CHECKPOINTER": "postgres", "DATABASE_URL": url}
    return {}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, backend_env: dict[str, str]
) -> Iterator[ServerProcess]:
    """Two workers, offline model, fresh storage; shared by one test module and backend."""
    with ServerProcess(tmp_path_factory.mktemp("server"), workers=2, env=backend_env) as proc:
        yield proc


@pytest.fixture
def fresh_server_dir(tmp_path: Path) -> Path:
    return tmp_path / "server"


@pytest.fixture
async def sqlite_persistence(tmp_path: Path) -> AsyncIterator[Persistence]:
    """This worker's storage on a fresh SQLite file (`c.db` under tmp_path), started."""
    settings = Settings(_env_file=None, checkpoints_db_path=tmp_path / "c.db")
    prepare_checkpoint_storage(settings)
    opened = open_persistence(settings)
    await opened.start()
    yield opened
    await opened.aclose()
