# jobsite: `make run` brings the whole thing up on one machine, `make test` checks it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Where `make run` keeps its logs, Redis files and the file below (tests use their own).
JOBSITE_RUN_DIR ?= .run
export JOBSITE_RUN_DIR

.PHONY: install run test bench bench-scale bench-peers lint clean FORCE

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

## install: create or update .venv from the pinned requirements
install: $(STAMP)

## run: web on 127.0.0.1:8000, workers, scheduler and demo traffic (starts Redis if absent)
run: install $(JOBSITE_RUN_DIR)/up

# While jobsite runs, scripts/run.sh keeps this file fresh. GNU make sends its children
# nothing when make alone gets SIGINT (it waits for them), but it deletes the file its
# running recipe makes: run.sh watches for that and stops everything.
$(JOBSITE_RUN_DIR)/up: FORCE
	@./scripts/run.sh

FORCE:

## test: lint, then the suite on SQLite and on PostgreSQL (when one answers)
test: install
	./scripts/test.sh

## bench: side-by-side benchmarks; prints a table, writes bench/results.json
bench: install
	./scripts/bench.sh

## bench-scale: only the pages and searches with 10M records (COPY, ~5 min); adds to bench/results.json
bench-scale: install
	BENCH_RECORDS=$${BENCH_RECORDS:-10000000} ./scripts/bench.sh --merge pages

## bench-peers: jobsite's workers beside bare RQ, Celery, django-q2, procrastinate and django-tasks
## (their own venvs in .bench-peers/; three workloads, median of 3; ~45 min); adds to bench/results.json
bench-peers: install
	./scripts/bench-peers.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .bench-peers .run db.sqlite3*
