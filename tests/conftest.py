"""Shared fixtures: a real multi-worker server on a temporary database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Two workers, offline model, fresh SQLite files; shared by one test module."""
    with ServerProcess(tmp_path_factory.mktemp("server"), workers=2) as proc:
        yield proc


@pytest.fixture
def fresh_server_dir(tmp_path: Path) -> Path:
    return tmp_path / "server"
