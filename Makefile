# jobsite: `make run` brings the whole thing up on one machine, `make test` checks it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test bench lint clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

## install: create or update .venv from the pinned requirements
install: $(STAMP)

## run: web on 127.0.0.1:8000, workers, scheduler and demo traffic (starts Redis if absent)
run: install
	./scripts/run.sh

## test: lint, then the suite on SQLite and on PostgreSQL (when one answers)
test: install
	./scripts/test.sh

## bench: side-by-side benchmarks; prints a table, writes bench/results.json
bench: install
	./scripts/bench.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .run db.sqlite3*
