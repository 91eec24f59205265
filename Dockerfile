# Booking agent: Gunicorn with uvicorn workers on one WAL SQLite database under /app/data.
#
#   docker build -t booking-agent .
#   docker run -p 127.0.0.1:8000:8000 -v booking-data:/app/data \
#     -e ALLOW_UNAUTHENTICATED=true booking-agent        # published on loopback only
#
# The service listens on 0.0.0.0 in the container, so it refuses to start without
# AUTH_ENABLED=true + API_KEYS, or an explicit ALLOW_UNAUTHENTICATED=true (docs/DOCKER.md).
#
# PYTHON_IMAGE picks the base image (the same one for both stages, because the
# virtualenv links the base image's interpreter). Default: the official image.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: a virtualenv with the pinned dependencies and the project -------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Dependencies first, so editing the code does not reinstall them. The lock pins the whole
# tree, including pysqlite3 (a bundled SQLite with the WAL-reset fix) on x86_64.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

# The project itself, editable: the venv then points at /app/service, which the runtime
# stage provides at the same path, so the code exists once and `python -m service`
# works from any directory. Only the package marker is needed here, so code changes do
# not redo this step.
COPY pyproject.toml ./
COPY service/__init__.py ./service/
RUN pip install --no-cache-dir --no-deps -e .

# --- runtime: the virtualenv and the application, nothing else ----------------------------
FROM ${PYTHON_IMAGE} AS runtime

# The data directory belongs to the app user; a new named volume mounted there copies
# this ownership. The database, its -wal and -shm files and the lock files all live in
# this directory, so mount a directory (a local volume), never a single file.
ARG APP_UID=10001
RUN groupadd --system --gid "${APP_UID}" app \
    && useradd --system --uid "${APP_UID}" --gid app --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin app \
    && mkdir -p /app/data \
    && chown app:app /app/data

# HOST/PORT and the database paths are the container's layout; every other setting
# (.env.example) can be passed with -e / env_file.
# PROMETHEUS_MULTIPROC_DIR is deliberately not set here: deploy/gunicorn.conf.py sets it
# for the server only (/tmp/booking-agent-metrics-$PORT) and on_starting empties it at
# every start. Set image-wide, it would also apply to `docker compose run/exec app python
# -m service ...`, which then fail on a fresh /tmp (the directory does not exist yet) or
# add their sample files to the live server's.
# Worker heartbeat files go to /dev/shm (memory), not to the container's overlay /tmp.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    CHECKPOINTS_DB_PATH=/app/data/checkpoints.db \
    APPOINTMENTS_DB_PATH=/app/data/appointments.db \
    GUNICORN_CMD_ARGS="--worker-tmp-dir=/dev/shm"

WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
COPY deploy/gunicorn.conf.py ./deploy/gunicorn.conf.py
COPY service/ ./service/

# Fail the build, rather than the first multi-worker start, unless the service's SQLite
# is pysqlite3's, without the WAL-reset bug (pysqlite3 has no wheel for linux/arm64:
# build for linux/amd64 there).
RUN python -c "from service.storage.sqlite.driver import DRIVER_NAME as d, SQLITE_VERSION as v, has_wal_reset_bug as bad; assert d == 'pysqlite3' and not bad(v), (d, v); print('SQLite', v, 'via', d)"

VOLUME ["/app/data"]

# Numeric, so that "must not run as root" checks (e.g. Kubernetes runAsNonRoot) can verify it.
USER ${APP_UID}:${APP_UID}
EXPOSE 8000

# Gunicorn is PID 1 (exec form, no shell): SIGTERM makes it stop accepting, let workers
# finish their in-flight requests for up to GRACEFUL_TIMEOUT_S, and exit 0. Give the
# container a stop timeout above that (compose: stop_grace_period).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PORT', '8000'), timeout=4)"]

CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py"]
