# Everything bootstraps itself: `make run` and `make test` create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
JS_DIR := clients/js
JS_STAMP := $(JS_DIR)/node_modules/.installed-stamp

.PHONY: venv js-deps run test test-fast lint format lock init-db backup stats integrity-check \
        checkpoint-wal vacuum fuzz loadtest bench bench-peers test-docker up down logs clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# The official JavaScript SDK, for its tests: pinned by clients/js/package-lock.json.
# Without npm those tests skip (and fail under CI).
$(JS_STAMP): $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(JS_DIR) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed-stamp; \
	else echo "npm not found: the JavaScript SDK tests will skip"; fi

js-deps: $(JS_STAMP)

run: venv ## start the service: several workers, offline model, SQLite under data/
	$(BIN)/python -m service serve

test: venv js-deps ## the whole suite, against real multi-worker servers (Docker: make test-docker)
	$(BIN)/python -m pytest -m "not docker"

test-fast: venv
	$(BIN)/python -m pytest tests/unit tests/storage

lint: venv ## ruff, and the import contracts in pyproject.toml (imports only point down the layers)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock: venv ## re-pin the dependency tree after editing requirements.in
	$(BIN)/python -m pip install --quiet -r requirements.in
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^pysqlite3' > requirements.lock.tmp
	echo 'pysqlite3==0.6.1 ; platform_machine == "x86_64" or sys_platform == "darwin"' >> requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock

test-docker: venv ## Docker bundle smoke test; starts the sandbox engine if none is reachable
	deploy/docker-smoke.sh

up: ## build and start app, Prometheus and Grafana
	docker compose up -d --build

down: ## stop and remove the containers (data stays in the volumes)
	docker compose down

logs:
	docker compose logs -f --tail=200

init-db: venv
	$(BIN)/python -m service init-db

backup: venv ## online, verified copy of the checkpoint database under data/backups
	$(BIN)/python -m service backup

stats: venv
	$(BIN)/python -m service stats

integrity-check: venv
	$(BIN)/python -m service integrity-check

checkpoint-wal: venv
	$(BIN)/python -m service checkpoint-wal

vacuum: venv
	$(BIN)/python -m service vacuum

loadtest: venv ## Locust 10→100 users against a fresh multi-worker server (LOADTEST_PROFILE=short|full)
	$(BIN)/python loadtest/run.py

bench: venv ## what each checkpointer setting costs per turn (BENCH_* variables, or ARGS=--quick)
	$(BIN)/python loadtest/bench.py $(ARGS)
	$(BIN)/python loadtest/long_conversation.py

bench-peers: venv ## the same graph and load under langgraph dev and Aegra, next to ours (ARGS=--users 10 ...)
	$(BIN)/python loadtest/peers.py $(ARGS)

fuzz: venv ## schemathesis and hypothesis bodies against the real server, longer than in `make test`
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-200} $(BIN)/python -m pytest tests/fuzz -q

clean:
	rm -rf $(VENV) reports .pytest_cache $(JS_DIR)/node_modules
