# Developer entry points. Everything runs from .venv, synced to requirements.lock.
# Needs only Python 3.11+ (with venv/ensurepip) and make; uv is installed into .venv from PyPI.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Touched after a successful sync: `make venv` does nothing until the lock or pyproject changes.
STAMP := $(VENV)/.astrocal-synced

.DEFAULT_GOAL := venv
.PHONY: venv dev test lint lock bench

venv: $(STAMP)

# A venv with uv in it (no project dependencies yet); also all `make lock` needs.
$(BIN)/uv:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Astrocal needs Python 3.11+; run: make PYTHON=python3.11 ..." >&2; exit 1; }
	@$(BIN)/python -c '' 2>/dev/null || $(PYTHON) -m venv --clear $(VENV) \
		|| { echo "$(PYTHON) -m venv failed (on Debian/Ubuntu: apt install python3-venv)" >&2; exit 1; }
	@$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip --upgrade
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade uv

# `uv pip sync` removes what the lock does not list (it leaves pip and uv alone); the project
# itself goes in editable, without deps. Compat mode puts the checkout on sys.path, so packages
# added later (workers/, bench/, ...) import without reinstalling. setuptools is in the lock, so
# building the editable needs no isolated build env (and no network).
$(STAMP): requirements.lock pyproject.toml | $(BIN)/uv
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade uv
	$(BIN)/uv pip sync --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps --no-build-isolation \
		--config-setting editable_mode=compat --editable .
	@touch $@

# PORT=8001 make dev (or make dev PORT=8001) serves on another port; astrocal reads PORT.
dev: venv
	@$(BIN)/astrocal dev

# Lint first (what CI runs is what a developer runs); pytest exits 5 when it collected no
# tests: that is a failure, never a silent pass.
test: venv lint
	@status=0; $(BIN)/pytest $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

# Universal: one lock valid on every OS and every Python 3.11.x (e.g. async-timeout < 3.11.3).
lock: | $(BIN)/uv
	$(BIN)/uv pip compile --quiet pyproject.toml --extra dev --universal --python-version 3.11 \
		-o requirements.lock

bench: venv
	$(BIN)/python -m bench.run $(BENCH_ARGS)

.PHONY: bench-availability
bench-availability: venv
	$(BIN)/python -m bench.availability
