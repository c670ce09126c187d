# The README's commands. Each target sets up .venv itself on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo test lint docs docs-build bench soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The distribution was named `dispatcher` before `onenet-dispatcher`: a venv made then must not
# keep that one beside the new (removing it later would take the shared files with it).
FORMER := $(BIN)/python -m pip uninstall -y -qq dispatcher >/dev/null 2>&1 || true

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(FORMER)
	$(BIN)/python -m pip install -q -e '.[fast]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(FORMER)
	$(BIN)/python -m pip install -q -e '.[fast,test,docs]'
	touch $@

# dispatcher in .venv, nothing run: the README's first run starts here.
install: $(VENV)/.installed
	@echo 'dispatcher is installed in $(VENV): . $(VENV)/bin/activate puts it on your PATH'

demo: $(VENV)/.installed
	$(BIN)/python -m dispatcher demo

lint: $(VENV)/.installed-test
	$(BIN)/ruff format --check dispatcher tests benchmarks
	$(BIN)/ruff check dispatcher tests benchmarks
	$(BIN)/mypy

# The docs site, built strictly (a broken link or reference fails) into a directory git ignores.
docs-build: $(VENV)/.installed-test
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir .site

# The docs site, served with live reload on http://127.0.0.1:8000
docs: $(VENV)/.installed-test
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

test: lint docs-build
	$(BIN)/pytest -n auto --dist worksteal

# The model-based test of tests/e2e/test_model.py, long: random seeds, long sequences of runs, edits,
# kills, retry jobs, cancels; stops at the first failure and prints its shortest sequence.
# SOAK_EXAMPLES sequences (default 2000).
SOAK_EXAMPLES ?= 2000
soak: $(VENV)/.installed-test
	DISPATCHER_SOAK=1 DISPATCHER_SOAK_EXAMPLES=$(SOAK_EXAMPLES) $(BIN)/pytest -p no:xdist -x \
		--hypothesis-show-statistics tests/e2e/test_model.py

bench: $(VENV)/.installed-test
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .site
