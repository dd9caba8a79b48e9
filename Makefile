# Every command a developer or CI needs. Each target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_DEV := $(VENV)/.installed-dev
STAMP_LOCAL := $(VENV)/.installed-local
# The one version, pyproject.toml's: the image label, the Lambda zip's name and the SBOM take it from here.
VERSION := $(shell $(PYTHON) -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')

.PHONY: test lint typecheck pytest demo local bench image-check lock clean sbom

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
	$(BIN)/ruff check service tests bench tools
	$(BIN)/ruff format --check service tests bench tools

typecheck: $(STAMP_DEV)
	$(BIN)/mypy --strict service

pytest: $(STAMP_DEV)
	$(BIN)/pytest

## simulate: the deterministic simulator (tests/sim/) on SEEDS seeds past the 500 that `make test` runs
SEEDS ?= 2000
START ?= 500
.PHONY: simulate
simulate: $(STAMP_DEV)
	$(BIN)/python -m tests.sim --seeds $(SEEDS) --start $(START)

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

## lock: regenerate config/requirements.lock, the image's runtime dependencies (with the `fast` and `otel` extras) and their hashes, after changing
## `dependencies` in pyproject.toml; pins already in the lock stay (LOCK_ARGS=--upgrade moves them all to the newest)
lock: $(STAMP_DEV)
	$(BIN)/pip-compile --quiet --generate-hashes --extra fast --extra otel --strip-extras --no-emit-index-url --no-emit-find-links \
		$(LOCK_ARGS) --output-file config/requirements.lock pyproject.toml

## image-check: build the real Dockerfile with buildah (no Docker engine needed) and test the image
image-check: $(STAMP_DEV)
	VERSION=$(VERSION) bash .ci/image-check

.PHONY: print-version
print-version:
	@echo $(VERSION)

## sbom: dist/photo-ingest-<version>.cdx.json, a CycloneDX 1.5 SBOM of the runtime dependencies in config/requirements.lock
sbom: | $(BIN)/python
	$(BIN)/python tools/sbom.py config/requirements.lock $(VERSION) dist/photo-ingest-$(VERSION).cdx.json

## dashboard: record a real run's metrics (moto and photo-ingest workers, ~3 minutes) and draw docs/dashboard.png
.PHONY: dashboard
dashboard: $(STAMP_DEV)
	$(BIN)/python -m bench.dashboard_sample
	$(BIN)/python -m bench.dashboard_render

## lambda-zip: dist/photo-ingest-lambda-<version>-<arch>.zip for the python3.11 Lambda runtime (ARCH=x86_64, the
## default, or ARCH=arm64 for Graviton): photo-ingest and its locked runtime dependencies (manylinux2014 wheels for
## that architecture, fetched, never run: the runtime is Amazon Linux 2, glibc 2.26), byte-compiled because
## /var/task is read-only. uvloop is left out: the function never runs the worker's event loop. Needs Python 3.11
## here (the .pyc files are version-specific) and PyPI.
.PHONY: lambda-zip
ARCH ?= x86_64
LAMBDA_PLATFORM = $(if $(filter arm64,$(ARCH)),manylinux2014_aarch64,$(if $(filter x86_64,$(ARCH)),manylinux2014_x86_64,$(error ARCH must be x86_64 or arm64)))
LAMBDA_ZIP ?= dist/photo-ingest-lambda-$(VERSION)-$(ARCH).zip
LAMBDA_BUILD ?= build/lambda-$(ARCH)
lambda-zip: | $(BIN)/python
	$(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "lambda-zip: build with Python 3.11")'
	rm -rf $(LAMBDA_BUILD) $(LAMBDA_ZIP)
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir $(LAMBDA_BUILD)/wheel .
	$(BIN)/pip install --quiet --no-compile --target $(LAMBDA_BUILD)/package --require-hashes \
		--platform $(LAMBDA_PLATFORM) --implementation cp --python-version 3.11 --only-binary=:all: \
		-r config/requirements.lock
	$(BIN)/pip install --quiet --no-compile --no-deps --target $(LAMBDA_BUILD)/package $(LAMBDA_BUILD)/wheel/*.whl
	rm -rf $(LAMBDA_BUILD)/package/bin $(LAMBDA_BUILD)/package/uvloop $(LAMBDA_BUILD)/package/uvloop-*.dist-info
	$(BIN)/python -m compileall -q -j 0 --invalidation-mode unchecked-hash $(LAMBDA_BUILD)/package
	mkdir -p $(dir $(LAMBDA_ZIP))
	$(BIN)/python -c 'import shutil, sys; shutil.make_archive(sys.argv[1].removesuffix(".zip"), "zip", sys.argv[2])' \
		$(LAMBDA_ZIP) $(LAMBDA_BUILD)/package
	@$(BIN)/python -c 'import sys, zipfile; files = zipfile.ZipFile(sys.argv[1]).infolist(); \
		print(sys.argv[1], "%.1f MB zipped," % (sum(f.compress_size for f in files) / 1e6), \
		"%.1f MB unzipped (Lambda allows 250 MB)" % (sum(f.file_size for f in files) / 1e6))' $(LAMBDA_ZIP)
