# The two commands of the README: `make run` and `make test`. Both set up first.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.bootstrapped
PYTEST_ARGS ?=

.PHONY: run down test lint setup protos lock bench clean

$(STAMP): requirements.lock pyproject.toml scripts/bootstrap.sh
	VENV=$(VENV) bash scripts/bootstrap.sh
	touch $(STAMP)

setup: $(STAMP)

## run: bring the demo mesh up (Redis, Galley, Citadel, Mixer, Pilot, the shop's apps and
## their Envoy sidecars),
## send traffic through it and show that routing follows the config; `make down` stops it
run: setup
	$(BIN)/splitmesh demo

## down: stop the mesh that `make run` left running
down: setup
	$(BIN)/splitmesh down

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
