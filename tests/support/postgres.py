"""PostgreSQL for the test suite: a throwaway cluster in a temporary directory.

`TEST_DATABASE_URL` names an existing server instead (a superuser URL: each test
module gets its own database, created and dropped through it). Otherwise the
server binaries are looked up (`TEST_PG_BINDIR`, `pg_config --bindir`,
`/usr/lib/postgresql/*/bin`) and a cluster is started with `initdb` + `pg_ctl`.
PostgreSQL refuses to run as root, so under root the cluster belongs to the
`postgres` system user (or `nobody`), which owns its directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from tests.support.server import free_port

_REQUIRED = ("initdb", "pg_ctl", "postgres")
# Durability is pointless for throwaway data; these make every test faster.
_TEST_CONFIG = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "64MB",
    "log_min_messages": "warning",
}


def find_bindir() -> Path | None:
    """A directory with initdb, pg_ctl and postgres, or None."""
    candidates: list[Path] = []
    if os.environ.get("TEST_PG_BINDIR"):
        candidates.append(Path(os.environ["TEST_PG_BINDIR"]))
    if shutil.which("pg_config"):
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            out = subprocess.run(
                ["pg_config", "--bindir"], capture_output=True, text=True, timeout=10
            )
            candidates.append(Path(out.stdout.strip()))
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(versions)
    for bindir in candidates:
        if all((bindir / name).is_file() for name in _REQUIRED):
            return bindir
    return None


def cluster_owner() -> pwd.struct_passwd | None:
    """The unprivileged account that runs the server under root; None: the current user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and no `postgres` or `nobody` user to run PostgreSQL")


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@dataclass
class Postgres:
    """A server the tests may create databases on, through `admin_url`."""

    admin_url: str
    cluster: TempCluster | None = None

    def create_database(self, hint: str) -> str:
        name = "t_" + re.sub(r"[^a-z0-9_]", "_", hint.lower())[-40:] + "_" + os.urandom(3).hex()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return with_database(self.admin_url, name)

    def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()


class TempCluster:
    """initdb + pg_ctl in a fresh directory, listening on 127.0.0.1 only, trust auth."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.owner = cluster_owner()
        self.root = Path(tempfile.mkdtemp(prefix="booking-agent-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        if self.owner is not None:
            os.chown(self.root, self.owner.pw_uid, self.owner.pw_gid)

    def _run(self, *args: str, timeout: float = 120) -> None:
        kwargs: dict = {}
        if self.owner is not None:
            kwargs.update(user=self.owner.pw_uid, group=self.owner.pw_gid, extra_groups=[])
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "TZ": "UTC"}
        result = subprocess.run(
            list(args), capture_output=True, text=True, timeout=timeout, env=env, **kwargs
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n"
                f"{result.stderr}\n{self.server_log()}"
            )

    def server_log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-4000:]
        return ""

    def start(self) -> Postgres:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
        )
        settings = {
            **_TEST_CONFIG,
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "start"
        )
        return Postgres(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", self)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> tuple[Postgres | None, str]:
    """A server to test against, or None with the reason there is none."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return Postgres(url), ""
    bindir = find_bindir()
    if bindir is None:
        return None, (
            "no PostgreSQL: set TEST_DATABASE_URL, or install the server "
            "(Debian: apt-get install postgresql) so initdb/pg_ctl are found"
        )
    return TempCluster(bindir).start(), ""


@contextlib.contextmanager
def database(server: Postgres, hint: str) -> Iterator[str]:
    url = server.create_database(hint)
    try:
        yield url
    finally:
        with contextlib.suppress(psycopg.Error):
            server.drop_database(url)
