# venuetwin: `make run` sets up and opens the dashboard; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup browser postgres run dashboard simulate test lint bench bench-gpt bench-optimize model \
	venues clean

setup: $(VENV)/.installed

# The CPU build of torch is pinned and installed first: a bare `torch` could pull a
# multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

# The browser test drives Debian's chromium (never a downloaded browser build).
browser:
	@test -x /usr/bin/chromium || { \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends chromium; }

run: dashboard

# The dashboard on http://localhost:8501 with the built-in venues and the shipped models.
dashboard: setup
	$(BIN)/streamlit run dashboards/app.py

simulate: setup
	$(BIN)/venuetwin simulate --out runs/default

# The optimiser's several-machines test starts a real PostgreSQL server (Debian's package).
postgres:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends postgresql; }

test: setup browser postgres
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(BIN)/python bench/bench_twin.py

bench-gpt: setup
	$(BIN)/python bench/bench_gpt.py all

bench-optimize: setup
	$(BIN)/python bench/bench_optimize.py

# Rebuild the shipped avatar models (twin/models/*.safetensors) from scripted logs.
model: setup
	$(BIN)/python -m twin.shipped

venues: setup
	$(BIN)/python -m twin.builtin_venues

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache *.egg-info
