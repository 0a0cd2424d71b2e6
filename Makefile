# The two commands: `make run` and `make test`. Each sets itself up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test setup bench clean

$(STAMP): pyproject.toml
	@$(PY) -m venv --help >/dev/null 2>&1 || (apt-get update && apt-get install -y python3-venv)
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/kumiki serve --host $(HOST) --port $(PORT) --demo

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/records.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
