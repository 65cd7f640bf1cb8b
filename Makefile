# venuetwin: `make run` sets up and runs the main job; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup run simulate test lint bench bench-gpt model venues clean

setup: $(VENV)/.installed

# The CPU build of torch is pinned and installed first: a bare `torch` could pull a
# multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

run: simulate

simulate: setup
	$(BIN)/venuetwin simulate --out runs/default

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(BIN)/python bench/bench_twin.py

bench-gpt: setup
	$(BIN)/python bench/bench_gpt.py all

# Rebuild the shipped avatar models (twin/models/*.safetensors) from scripted logs.
model: setup
	$(BIN)/python -m twin.shipped

venues: setup
	$(BIN)/python -m twin.builtin_venues

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache *.egg-info
