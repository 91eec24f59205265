#!/usr/bin/env bash
# Smoke test of the Docker bundle (Dockerfile + docker-compose.yml) on a real engine.
#
#   deploy/docker-smoke.sh [pytest args...]
#
# Without DOCKER_HOST and without a working default engine, it starts the local sandbox
# engine (../shared/tools/container-sandbox, or CONTAINER_SANDBOX=path), which also
# exports stand-in PYTHON_IMAGE / PROMETHEUS_IMAGE for machines with no image registry.
# REQUIRE_DOCKER=1: a missing engine fails the run instead of skipping the test.
set -euo pipefail
cd "$(dirname "$0")/.."

sandbox=${CONTAINER_SANDBOX:-../shared/tools/container-sandbox}
if [ -z "${DOCKER_HOST:-}" ] && [ -x "$sandbox" ] \
    && ! { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }; then
    echo "docker-smoke: starting the sandbox engine ($sandbox)" >&2
    sandbox_env=$("$sandbox" up)
    eval "$sandbox_env"
fi

export REQUIRE_DOCKER=1
exec .venv/bin/pytest tests/docker -q "$@"
