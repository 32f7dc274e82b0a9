PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint typecheck unit install demo bench loadtest clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check streamserver handlers tests scripts

typecheck: $(STAMP)
	$(BIN)/mypy streamserver handlers

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

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
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
