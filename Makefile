# Two commands for a new user:  `make demo` (set up + main job on built-in data) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-slow lint bench clean

$(STAMP): pyproject.toml scripts/setup_env.sh
	PY=$(PY) VENV=$(VENV) bash scripts/setup_env.sh
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/vqfuse demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check vqfuse tests benchmarks scripts
	$(BIN)/ruff format --check vqfuse tests benchmarks scripts
	$(BIN)/mypy

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/quantizers.py

clean:
	rm -rf $(VENV) runs
