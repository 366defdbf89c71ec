# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
# The demo needs only the base package (no dev tools, no claude, no ray); the tests need the
# extras. Each has its own stamp, and a venv with the extras counts as having the base.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BASE := $(VENV)/.installed-base
FULL := $(VENV)/.installed-dev-claude-ray

.PHONY: demo test lint imports typecheck pytest bench screenshots clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(BASE): pyproject.toml | $(PY)
	@if [ -f $(FULL) ] && [ $(FULL) -nt pyproject.toml ]; then \
		echo "base package already installed with the extras"; \
	else \
		$(PY) -m pip install --quiet -e .; \
	fi
	touch $@

$(FULL): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev,claude,ray]'
	touch $@ $(BASE)

demo: $(BASE)
	$(VENV)/bin/ralph-tui demo

test: lint imports typecheck pytest

lint: $(FULL)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# the layers of docs/architecture.md: no upward import, no circle, no Textual in the core
imports: $(FULL)
	$(VENV)/bin/lint-imports

typecheck: $(FULL)
	$(PY) -m mypy

pytest: $(FULL)
	$(PY) -m pytest

bench: $(FULL)
	$(PY) benchmarks/run_all.py

screenshots: $(FULL)
	$(PY) scripts/screenshots.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
