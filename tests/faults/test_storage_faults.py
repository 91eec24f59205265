"""Storage faults with real processes: disk full, read-only, corrupt files."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.storage.sqlite.driver import sqlite3
from tests.support.server import ROOT, ServerProcess

pytestmark = pytest.mark.timeout(180)


def _mount(target: Path, options: str) -> bool:
    target.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
        capture_output=True,
        text=True,
    )
    return result.returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs that holds the databases; needs permission to mount."""
    target = tmp_path / "disk"
    if not _mount(target, "size=8m"):
        pytest.skip("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def turn(base: str, thread_id: str, text: str) -> httpx.Response:
    return httpx.post(
        f"{base}/threads/{thread_id}/runs/wait",
        json={
            "assistant_id": "agent",
            "input": {"messages": [{"role": "user", "content": text}]},
            "if_not_exists": "create",
        },
        timeout=60,
    )


def readiness(base: str, tries: int = 6) -> set[int]:
    """Ask several times on fresh connections, so more than one worker answers."""
    codes = set()
    for _ in range(tries):
        with httpx.Client() as fresh:
            codes.add(fresh.get(f"{base}/readyz").status_code)
    return codes


def humans(base: str, thread_id: str) -> list[str]:
    state = httpx.get(f"{base}/threads/{thread_id}/state").json()
    return [m["content"] for m in state["values"]["messages"] if m["type"] == "human"]


def integrity(db: Path) -> str:
    conn = sqlite3.connect(str(db))
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def test_disk_full_gives_503_and_recovers(small_disk: Path) -> None:
    with ServerProcess(small_disk, workers=2, run_dir=small_disk.parent / "run") as srv:
        tid = str(uuid.uuid4())
        assert turn(srv.base_url, tid, "before").status_code == 200
        filler = small_disk / "filler"
        with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * 65536)
        # A turn may still fit in WAL space the file already has (the background
        # checkpoint lets the WAL start over); sooner or later one needs a new block.
        accepted, failed = [], []
        for i in range(20):
            answer = turn(srv.base_url, tid, f"while full {i}")
            assert answer.status_code in (200, 503), answer.text
            (accepted if answer.status_code == 200 else failed).append((i, answer))
            if len(failed) == 3:
                break
        assert len(failed) == 3, "writes kept succeeding on a full disk"
        first_failure = failed[0][1]
        assert "full" in first_failure.json()["detail"]
        assert "Retry-After" in first_failure.headers
        assert readiness(srv.base_url) == {503}

        filler.unlink()
        assert readiness(srv.base_url) == {200}
        assert turn(srv.base_url, tid, "after").status_code == 200
        # Every acknowledged turn is there, and nothing that was refused.
        assert humans(srv.base_url, tid) == (
            ["before"] + [f"while full {i}" for i, _ in accepted] + ["after"]
        )
    assert integrity(srv.db_path) == "ok"


def test_read_only_database_gives_503_and_recovers(tmp_path: Path) -> None:
    """The database file is not writable (a read-only volume, wrong permissions after a
    restore). The server runs without CAP_DAC_OVERRIDE, so file permissions apply to it."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run the server without DAC override")
    first = ServerProcess(tmp_path, workers=2).start()
    tid = str(uuid.uuid4())
    try:
        assert turn(first.base_url, tid, "before").status_code == 200
    finally:
        first.stop()
    os.chmod(first.db_path, 0o444)
    drop_caps = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]
    srv = ServerProcess(tmp_path, workers=2, port=first.port, prefix=drop_caps)
    srv.start(ready_path="/ok")
    try:
        assert humans(srv.base_url, tid) == ["before"]  # reads still work
        failed = [turn(srv.base_url, tid, f"while read-only {i}") for i in range(3)]
        assert {r.status_code for r in failed} == {503}, [r.text for r in failed]
        assert "read-only" in failed[0].json()["detail"]
        assert readiness(srv.base_url) == {503}

        for path in tmp_path.glob("checkpoints.db*"):  # the db and the -wal/-shm it made
            if path.is_file():
                os.chmod(path, 0o644)
        assert readiness(srv.base_url) == {200}
        for i in range(4):  # fresh connections: every worker writes again
            assert turn(srv.base_url, tid, f"after {i}").status_code == 200
        assert humans(srv.base_url, tid) == ["before"] + [f"after {i}" for i in range(4)]
    finally:
        srv.stop()
    assert integrity(srv.db_path) == "ok"


@pytest.mark.parametrize("damage", ["not-a-database", "corrupt-pages"])
def test_damaged_database_refuses_to_start(tmp_path: Path, damage: str) -> None:
    db = tmp_path / "checkpoints.db"
    if damage == "not-a-database":
        db.write_bytes(b"this is a text file, not SQLite\n" * 200)
    else:
        conn = sqlite3.connect(str(db))
        conn.execute("CREATE TABLE t (x TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 500,) for _ in range(2000)])
        conn.commit()
        conn.close()
        data = bytearray(db.read_bytes())
        for offset in range(8192, len(data) - 4096, 4096):
            data[offset : offset + 12] = b"\xff" * 12  # b-tree page headers
        db.write_bytes(bytes(data))
    srv = ServerProcess(tmp_path, workers=2)
    with pytest.raises(RuntimeError) as err:
        srv.start(timeout=30)
    message = str(err.value)
    assert str(db) in message
    assert "restore" in message and ".recover" in message
    assert srv.proc is not None and srv.proc.returncode not in (0, None)
    # The CLI says the same and exits non-zero.
    check = subprocess.run(
        [sys.executable, "-m", "service", "init-db"],
        cwd=ROOT,
        env={**srv.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode != 0 and str(db) in check.stderr
