PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The project's own environment is built from uv.lock (exact versions and hashes of every
# runtime, extra and dev dependency); pyproject.toml keeps the ranges a library user needs.
# uv itself is pinned here and installed into .tools/ with the interpreter's own pip.
UV_VERSION := 0.13.9
TOOLS      := .tools
UV         := $(TOOLS)/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: test lint typecheck unit install lock lock-check dist-check test-latest demo bench loadtest clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --all-extras --python $(PYTHON)
	touch $(STAMP)

install: $(STAMP)

# Re-resolve the lock after changing a range in pyproject.toml, or to take new releases on
# purpose: `make lock` keeps what still fits, `make lock UPGRADE=1` takes the newest allowed.
lock: | $(UV)
	$(UV) lock --python $(PYTHON) $(if $(UPGRADE),--upgrade,)

# Fails when pyproject.toml changed and uv.lock was not refreshed with it.
lock-check: | $(UV)
	$(UV) lock --check --python $(PYTHON)

lint: $(STAMP)
	$(BIN)/ruff check streamserver handlers tests scripts

typecheck: $(STAMP)
	$(BIN)/mypy streamserver handlers

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

# Build the wheel and sdist, install the wheel in a fresh venv outside the repo, and serve.
dist-check: | $(UV)
	UV=$(abspath $(UV)) PYTHON=$(PYTHON) scripts/check_dist.sh

# The suite against the newest versions pyproject.toml allows (not the lock), in .venv-latest:
# a new release that breaks us shows up here the day it happens.
test-latest: | $(UV)
	UV=$(abspath $(UV)) PYTHON=$(PYTHON) scripts/test_latest.sh

demo: $(STAMP)
	$(BIN)/streamserver demo

bench: $(STAMP)
	$(BIN)/python scripts/bench_codecs.py
	$(BIN)/python scripts/bench_hotpath.py -n 1000 --rounds 200 --repeat 2

# A quick capacity check: 500 mu-law streams, recorder+echo, server pinned to core 0.
loadtest: $(STAMP)
	$(BIN)/streamserver loadtest -n 500 --duration 20 --handlers recorder,echo \
		--verify-recordings --server-cpus 0 --generator-cpus 1

clean:
	rm -rf $(VENV) $(TOOLS) .venv-latest dist build *.egg-info .mypy_cache .pytest_cache .ruff_cache
