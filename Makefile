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

.PHONY: test lint typecheck unit install lock lock-check dist-check test-latest demo bench loadtest autobahn clean

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

# RFC 6455 conformance: Autobahn|Testsuite's fuzzing client (0.8.2, the last release, needs
# Python 2.7) against an echo server made of our own wire layer (scripts/autobahn/), cases
# 1-7, 9 and 10; fails unless every case is OK, NON-STRICT or INFORMATIONAL. The py2
# environment is built in .tools/autobahn from hash-pinned requirements. Results:
# docs/conformance.md; the HTML report: build/autobahn/index.html.
PYTHON2   ?= $(shell for p in python2.7 python2 $(HOME)/.pyenv/versions/2.7.*/bin/python; do \
	$$p -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' >/dev/null 2>&1 && \
	{ echo $$p; break; }; done)
AUTOBAHN  := $(TOOLS)/autobahn
PY2_VENV  := $(TOOLS)/virtualenv-py2

$(AUTOBAHN)/bin/wstest: scripts/autobahn/requirements-py2.txt scripts/autobahn/requirements-virtualenv-py2.txt
	@test -n "$(PYTHON2)" || { echo "make autobahn needs Python 2.7: make autobahn PYTHON2=/path/to/python2.7"; exit 2; }
	rm -rf $(AUTOBAHN) $(PY2_VENV)
	$(PYTHON2) -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
		--target $(PY2_VENV) -r scripts/autobahn/requirements-virtualenv-py2.txt
	PYTHONPATH=$(PY2_VENV) $(PYTHON2) -m virtualenv --quiet --no-download $(AUTOBAHN)
	$(AUTOBAHN)/bin/pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
		--no-build-isolation -r scripts/autobahn/requirements-py2.txt
	touch $@

autobahn: $(STAMP) $(AUTOBAHN)/bin/wstest
	$(BIN)/python scripts/autobahn/run.py --wstest $(AUTOBAHN)/bin/wstest --report build/autobahn

clean:
	rm -rf $(VENV) $(TOOLS) .venv-latest dist build *.egg-info .mypy_cache .pytest_cache .ruff_cache
