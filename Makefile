# Every command a developer or CI needs. Each target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_DEV := $(VENV)/.installed-dev
STAMP_LOCAL := $(VENV)/.installed-local

.PHONY: test lint typecheck pytest demo local bench image-check lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(STAMP_LOCAL)

$(STAMP_LOCAL): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local]'
	touch $@

## test: lint, format check, strict typing and the whole test suite (what CI runs)
test: lint typecheck pytest

lint: $(STAMP_DEV)
	$(BIN)/ruff check service tests bench
	$(BIN)/ruff format --check service tests bench

typecheck: $(STAMP_DEV)
	$(BIN)/mypy --strict service

pytest: $(STAMP_DEV)
	$(BIN)/pytest

## demo: the whole pipeline on an embedded local AWS stack (moto), start to finish
demo: $(STAMP_LOCAL)
	$(BIN)/photo-ingest demo

## local: the embedded stack and the worker, long-running, for your own uploads
local: $(STAMP_LOCAL)
	$(BIN)/photo-ingest local

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

## bench: throughput, CPU per message and memory against the naive port and the SDK floor
bench: $(STAMP_DEV)
	$(BIN)/python -m bench

## lock: regenerate config/requirements.lock, the image's runtime dependencies with their hashes, after changing
## `dependencies` in pyproject.toml; pins already in the lock stay (LOCK_ARGS=--upgrade moves them all to the newest)
lock: $(STAMP_DEV)
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links \
		$(LOCK_ARGS) --output-file config/requirements.lock pyproject.toml

## image-check: build the real Dockerfile with buildah (no Docker engine needed) and test the image
image-check: $(STAMP_DEV)
	bash .ci/image-check
