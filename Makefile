# Every target sets itself up from the repo's own files: a pinned uv in .tools/, then the
# workspace exactly as uv.lock says in .venv/. Nothing needs installing by hand but python3.

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
SYNCED := $(VENV)/.synced-$(UV_VERSION)-bytecode

# Demo secrets for config.example.yaml; set your own in the environment to override them.
export PAWOON_SECRET ?= demo-pawoon-secret
export MOKA_SECRET ?= demo-moka-secret
export SAMBUNG_ADMIN_TOKEN ?= demo-admin-token-not-for-production

PGCLUSTER = $(firstword $(notdir $(wildcard /etc/postgresql/*)))

.PHONY: run test test-shifted services browser records check bench-console bench-ingest bench-outbox bench-store bench-csv-import bench-poll lint clean

## run: start the daemon on config.example.yaml (SQLite) with the demo simulator
run: $(SYNCED)
	@echo 'admin API: http://127.0.0.1:8081 (Authorization: Bearer $(SAMBUNG_ADMIN_TOKEN))'
	@echo 'console:   http://127.0.0.1:8081/ (sign in with the token $(SAMBUNG_ADMIN_TOKEN))'
	$(VENV)/bin/sambung run -c config.example.yaml --simulate

## test: run the whole test suite (starts PostgreSQL and NATS first, see `services`), then the
## unit and store tests again with the wall clock a year ahead, so a test that only passes until
## some date fails on the day it is written. The suite runs its files on TEST_WORKERS pytest-xdist
## workers (a file stays on one worker): most of its time is daemons, started as real processes,
## waiting on sockets and timers, which overlaps well even on two cores.
TEST_WORKERS ?= 3
test: services browser $(SYNCED)
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile
	$(VENV)/bin/python tests/shifted_clock.py +365d -q -p no:cacheprovider -n $(TEST_WORKERS) \
		--dist loadfile core/tests plugins

## test-shifted: the whole suite with the wall clock moved by SHIFT (default +365d; e.g. -365d)
SHIFT ?= +365d
test-shifted: services $(SYNCED)
	$(VENV)/bin/python tests/shifted_clock.py $(SHIFT) -p no:cacheprovider

## services: start the local PostgreSQL and NATS JetStream the tests use, unless already running
services:
	@if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && [ -n "$(PGCLUSTER)" ]; then \
		pg_ctlcluster --skip-systemctl-redirect $(PGCLUSTER) main start; fi
	@for _ in $$(seq 100); do pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && break; sleep 0.1; done
	@if command -v psql >/dev/null && ! psql -h 127.0.0.1 -U postgres -tAc \
		"select 1 from pg_database where datname = 'test'" postgres 2>/dev/null | grep -q 1; then \
		createdb -h 127.0.0.1 -U postgres test; fi
	@if [ -x /usr/sbin/nats-server ]; then \
		start-stop-daemon --start --quiet --oknodo --background --exec /usr/sbin/nats-server \
			-- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server; fi

## browser: Debian's Chromium for the console's browser tests (Playwright drives it; it never
## downloads a browser of its own), installed unless already there
browser:
	@command -v chromium >/dev/null || apt-get install -y chromium \
		|| (apt-get update && apt-get install -y chromium)
	@command -v chromium >/dev/null || { echo "chromium is missing: apt-get install chromium"; exit 1; }

## records: the newest records stored by `make run`
records: $(SYNCED)
	$(VENV)/bin/sambung records -c config.example.yaml --limit 20

## check: validate config.example.yaml and print its webhook URLs
check: $(SYNCED)
	$(VENV)/bin/sambung check -c config.example.yaml

## bench-console: every console page over a month of one outlet's data; print the slowest
bench-console: $(SYNCED)
	$(VENV)/bin/python bench/console/run.py

## bench-ingest: webhook ingest against a bare aiohttp endpoint (needs wrk: apt-get install wrk)
bench-ingest: $(SYNCED)
	$(VENV)/bin/python bench/ingest/run.py

## bench-outbox: drain 100,000 outbox rows into a local verifying receiver; print deliveries/s
bench-outbox: $(SYNCED)
	$(VENV)/bin/python bench/outbox/run.py
## bench-store: Store.ingest on SQLite and on PostgreSQL (127.0.0.1:5432), webhook- and page-shaped
bench-store: services $(SYNCED)
	$(VENV)/bin/python bench/store/run.py
## bench-csv-import: a generated 1,000,000-row Pawoon export through `sambung import`
bench-csv-import: $(SYNCED)
	$(VENV)/bin/python bench/csv_import/run.py
## bench-poll: 1,000 poll connections against one local fake vendor (CPU, RSS, lag)
bench-poll: $(SYNCED)
	$(VENV)/bin/python bench/poll/run.py

## lint: ruff (format and lint) and mypy --strict, through uv without adding them to the lock
lint: $(SYNCED)
	$(UV) tool run ruff@0.14.0 format --check core plugins tests bench
	$(UV) tool run ruff@0.14.0 check core plugins tests bench
	$(UV) run --frozen --with mypy==1.18.2 --with types-PyYAML mypy core/src plugins/*/src

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# --compile-bytecode, as pip does on install: where PYTHONDONTWRITEBYTECODE is set (CI, some
# service managers) every process start otherwise compiled its dependencies from source, 0.4 s
# of the 0.8 s a CLI command took to import.
$(SYNCED): $(UV) uv.lock pyproject.toml core/pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(UV) sync --frozen --all-packages --compile-bytecode
	touch $@

clean:
	rm -rf .tools $(VENV) data .pytest_cache
