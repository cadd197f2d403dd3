# The two commands of the README: `make run` and `make test`. Both set up first.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.bootstrapped
PYTEST_ARGS ?=

.PHONY: run test lint setup protos lock bench clean

$(STAMP): requirements.lock pyproject.toml scripts/bootstrap.sh
	VENV=$(VENV) bash scripts/bootstrap.sh
	touch $(STAMP)

setup: $(STAMP)

## run: start Galley on examples/ and show what it accepted and rejected (Ctrl-C stops)
run: setup
	$(BIN)/splitmesh galley --config-dir examples

## test: lint, then the whole suite
test: setup lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy services shared sidecar monolith cli bench
	$(BIN)/lint-imports
	$(BIN)/python -m shared.contracts.generate --check

## protos: regenerate the Python code of our own .proto contracts
protos: setup
	$(BIN)/python -m shared.contracts.generate

## bench: run every benchmark and print the figures for docs/PERFORMANCE.md
bench: setup
	$(BIN)/python -m bench

lock:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^splitmesh' > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
