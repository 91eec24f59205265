"""Each peer runtime's throwaway virtualenv, at pinned versions: the one place they are set.

A peer gets its own environment so that its own pins (langgraph-api, langgraph,
langchain-core, ...) decide what runs, never this project's lock. This project goes on
the peer's path through a `.pth` file (no build, nothing written to the working tree),
and only what the graph imports besides LangGraph is added: those few packages at this
project's locked versions, constrained to what the peer already installed so they
cannot move the peer's own pins. A venv whose stamp and installed versions match is
reused; any other is rebuilt from scratch.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
VENVS = ROOT / "reports" / "peers" / "venvs"
LOCK = ROOT / "requirements.lock"

# What the graph needs beyond LangGraph (service.settings, service.observability.metrics,
# the bundled SQLite of service.storage.sqlite.driver), at requirements.lock's versions.
PROJECT_DEPS = ("pydantic-settings", "prometheus-client", "pysqlite3")


@dataclass(frozen=True)
class VenvSpec:
    """One peer's environment: the interpreter it needs and the packages pinned for it."""

    key: str
    min_python: tuple[int, int]
    packages: tuple[str, ...]
    # Distributions whose installed versions the report names.
    report: tuple[str, ...]


# `langgraph-cli[inmem]` pulls langgraph-api and langgraph-runtime-inmem; those two are
# pinned to what it resolved to on 2026-12-04, so a rebuild gets the same server.
LANGGRAPH = VenvSpec(
    key="langgraph",
    min_python=(3, 11),
    packages=(
        "langgraph-cli[inmem]==0.4.40",
        "langgraph-api==0.16.7",
        "langgraph-runtime-inmem==0.36.7",
    ),
    report=("langgraph-cli", "langgraph-api", "langgraph-runtime-inmem", "langgraph",
            "langchain-core", "uvicorn"),
)  # fmt: skip

# aegra-api 0.7 and later need Python 3.12 or newer.
AEGRA = VenvSpec(
    key="aegra",
    min_python=(3, 12),
    packages=("aegra-api==0.11.0", "aegra-cli==0.11.0"),
    report=("aegra-api", "aegra-cli", "langgraph", "langchain-core",
            "langgraph-checkpoint-postgres", "psycopg", "sqlalchemy", "asyncpg", "uvicorn"),
)  # fmt: skip

SPECS = {spec.key: spec for spec in (LANGGRAPH, AEGRA)}


@dataclass(frozen=True)
class Venv:
    """A ready environment: where it is, its interpreter, and the versions it holds."""

    spec: VenvSpec
    path: Path
    python_version: str
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    def version(self, dist: str) -> str:
        return self.versions.get(_normalize(dist), "?")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project_requirements() -> list[str]:
    """PROJECT_DEPS as requirements.lock pins them (markers included)."""
    wanted = {_normalize(name) for name in PROJECT_DEPS}
    found = []
    for line in LOCK.read_text().splitlines():
        name = re.split(r"[=<>!~ ;\[]", line.strip(), maxsplit=1)[0]
        if name and _normalize(name) in wanted:
            found.append(line.strip())
    missing = wanted - {_normalize(re.split(r"[=<>!~ ;\[]", r, maxsplit=1)[0]) for r in found}
    if missing:
        raise SystemExit(f"requirements.lock pins none of {sorted(missing)}")
    return found


def _python_version(executable: str) -> tuple[int, int, int] | None:
    try:
        out = subprocess.run(
            [executable, "-c", "import sys; print(*sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    major, minor, micro = (int(x) for x in out.stdout.split())
    return major, minor, micro


def find_python(minimum: tuple[int, int]) -> tuple[str, str]:
    """The lowest interpreter at `minimum` or newer: (path, version).

    This interpreter, `pythonX.Y` on PATH, then pyenv's installs; the lowest wins, so
    a peer runs on the same minor version as ours whenever it allows one.
    """
    candidates = [sys.executable]
    candidates += [shutil.which(f"python3.{minor}") or "" for minor in range(minimum[1], 15)]
    pyenv = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates += sorted(glob.glob(f"{pyenv}/versions/3.*/bin/python3"))
    best: tuple[tuple[int, int, int], str] | None = None
    for candidate in dict.fromkeys(c for c in candidates if c):
        version = _python_version(candidate)
        if version is None or version[:2] < minimum:
            continue
        if best is None or version < best[0]:
            best = (version, candidate)
    if best is None:
        raise SystemExit(f"no Python {minimum[0]}.{minimum[1]}+ found (PATH, pyenv)")
    return best[1], ".".join(map(str, best[0]))


def _installed(python: Path, names: tuple[str, ...]) -> dict[str, str]:
    """name -> version for the distributions installed in the venv, of those asked."""
    code = (
        "import json, sys\nfrom importlib import metadata\nout = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try: out[name] = metadata.version(name)\n"
        "    except metadata.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    out = subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True, timeout=60
    )
    if out.returncode != 0:
        return {}
    return {_normalize(k): v for k, v in json.loads(out.stdout).items()}


def _pins(requirements: list[str]) -> dict[str, str]:
    """name -> version of each `name[extra]==version` requirement."""
    pins = {}
    for req in requirements:
        if ";" in req:  # a platform marker: not every machine installs it
            continue
        match = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^ ;]+)", req)
        if match:
            pins[_normalize(match.group(1))] = match.group(2)
    return pins


def _stamp(spec: VenvSpec, python_version: str) -> dict[str, object]:
    return {
        "packages": list(spec.packages),
        "project": project_requirements(),
        "python": python_version,
        "root": str(ROOT),
    }


def _usable(path: Path, spec: VenvSpec, stamp: dict[str, object]) -> bool:
    python = path / "bin" / "python"
    stamp_file = path / ".peer-stamp.json"
    if not python.exists() or not stamp_file.exists():
        return False
    try:
        if json.loads(stamp_file.read_text()) != stamp:
            return False
    except (OSError, ValueError):
        return False
    pins = _pins([*spec.packages, *project_requirements()])
    installed = _installed(python, tuple(pins))
    return all(installed.get(name) == version for name, version in pins.items())


def _pip(python: Path, args: list[str], log: Path) -> None:
    with log.open("a") as handle:
        handle.write(f"\n$ pip {' '.join(args)}\n")
        handle.flush()
        result = subprocess.run(
            [str(python), "-m", "pip", *args, "--disable-pip-version-check"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            timeout=1800,
        )
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"pip {' '.join(args)} failed ({result.returncode}); {log}:\n{tail}")


def ensure(spec: VenvSpec, base: Path = VENVS) -> Venv:
    """The peer's venv under `base`, reused when it matches the pins, else rebuilt."""
    interpreter, python_version = find_python(spec.min_python)
    path = base / spec.key
    stamp = _stamp(spec, python_version)
    if not _usable(path, spec, stamp):
        print(f"building {path} (Python {python_version}) ...", flush=True)
        shutil.rmtree(path, ignore_errors=True)
        base.mkdir(parents=True, exist_ok=True)
        log = base / f"{spec.key}-install.log"
        log.write_text("")
        subprocess.run([interpreter, "-m", "venv", str(path)], check=True, timeout=300)
        python = path / "bin" / "python"
        _pip(python, ["install", "--quiet", *spec.packages], log)
        frozen = subprocess.run(
            [str(python), "-m", "pip", "freeze", "--exclude-editable"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        constraints = path / "peer-constraints.txt"
        constraints.write_text(frozen)  # the peer's own resolution: nothing below moves it
        _pip(python, ["install", "--quiet", "-c", str(constraints), *project_requirements()], log)
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        (Path(site) / "booking_agent_service.pth").write_text(f"{ROOT}\n")
        (path / ".peer-stamp.json").write_text(json.dumps(stamp, indent=1) + "\n")
        if not _usable(path, spec, stamp):
            raise SystemExit(f"{path}: the installed versions do not match the pins; see {log}")
    names = tuple(dict.fromkeys([*spec.report, *PROJECT_DEPS]))
    return Venv(spec, path, python_version, _installed(path / "bin" / "python", names))
