# ordergraph — `make run` serves the graph with demo data; `make test` runs the suite on
# SQLite and on PostgreSQL + Redis. The virtualenv is (re)installed only when pyproject.toml
# is newer than its stamp.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8000
PYTEST_ARGS ?=

.PHONY: help install run test test-sqlite test-postgres schema bench clean

help:
	@echo "make run      serve GraphiQL at http://localhost:$(PORT)/graphql with demo data (SQLite)"
	@echo "make test     the whole suite on SQLite, then on PostgreSQL + Redis (127.0.0.1)"
	@echo "make schema   regenerate schema.graphql from the code"
	@echo "make bench    run the benchmark scripts in bench/"
	@echo "make clean    remove the virtualenv, local database and caches"

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[test]'
	@touch $@

run: $(STAMP)
	$(BIN)/ordergraph migrate
	$(BIN)/ordergraph seed --demo --if-empty
	$(BIN)/ordergraph serve --port $(PORT)

test: $(STAMP)
	$(BIN)/pytest --backend sqlite $(PYTEST_ARGS)
	$(BIN)/pytest --backend postgres $(PYTEST_ARGS)

test-sqlite: $(STAMP)
	$(BIN)/pytest --backend sqlite $(PYTEST_ARGS)

test-postgres: $(STAMP)
	$(BIN)/pytest --backend postgres $(PYTEST_ARGS)

schema: $(STAMP)
	$(BIN)/ordergraph export-schema --output schema.graphql

bench: $(STAMP)
	@scripts=$$(ls bench/[!_]*.py 2>/dev/null); \
	if [ -z "$$scripts" ]; then echo "no benchmark scripts in bench/"; exit 0; fi; \
	for script in $$scripts; do echo "== $$script"; $(BIN)/python $$script || exit $$?; done

clean:
	rm -rf $(VENV) var .pytest_cache build dist src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
