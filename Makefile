# The two commands a newcomer types are `make demo` and `make test`; each creates .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-serve test lint typecheck bench lock clean browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,demo]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m demo

demo-serve: $(STAMP)
	$(BIN)/python -m demo --serve

# Three test processes on two cores: most of the suite's time is spent waiting on real worker,
# API and server processes (each test keeps its own database and Redis number; tests/conftest.py).
test: $(STAMP) lint browser
	$(BIN)/python -m pytest -n 3 --dist worksteal

# The report page's browser test drives Debian's Chromium (never a downloaded browser build).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium for the browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "no /usr/bin/chromium and not root: the browser test skips (fails under CI)"; \
	  fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	@if [ -f bench/__main__.py ]; then $(BIN)/python -m bench; else echo "no benchmarks yet"; fi

# The image's exact dependencies, after a change to pyproject.toml's (tests/test_lock.py checks).
lock: $(STAMP)
	$(BIN)/python -m tests.lockfile

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .grimp_cache
