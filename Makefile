# Jobgate: `make run` starts the whole service locally, `make test` runs every test
# (`make test-fast`: the fast tier alone).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAGE ?= prod

# Find a Python >= 3.12 (the Lambda runtime follows the venv's Python).
PYTHON312 := $(shell for p in python3.12 python3.13; do \
    if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then command -v $$p; exit 0; fi; \
    if command -v pyenv >/dev/null 2>&1; then v=$$(pyenv versions --bare 2>/dev/null | grep -E "^$${p#python}(\.[0-9]+)?$$" | tail -1); \
      if [ -n "$$v" ]; then echo "$$(pyenv root)/versions/$$v/bin/$$p"; exit 0; fi; fi; done)

.PHONY: run test test-fast lint bench mutate clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml client/pyproject.toml
	@if [ ! -x $(PY) ]; then \
	  if [ -z "$(PYTHON312)" ]; then echo "error: Python 3.12+ not found (install python3.12, or pyenv install 3.12)" >&2; exit 1; fi; \
	  echo "creating $(VENV) with $(PYTHON312)"; "$(PYTHON312)" -m venv $(VENV); fi
	$(PY) -m pip install -q --upgrade "pip<26.3"  # chalice 1.34 requires pip<26.3
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q -e . -e client
	@touch $@

.venv: $(VENV)/.installed

run: .venv
	$(PY) -m localrunner

# Two tiers (README.md "Testing", tests/conftest.py): the lifecycle on the in-memory
# adapters, then everything on moto (and the memory tests that wait on the clock).
# The fast tier leaves out the pytest plugins none of its tests use (importing hypothesis and
# schemathesis took longer than the tier's tests on a busy machine).
FAST_TIER := --tier fast -p no:schemathesis -p no:hypothesispytest -p no:anyio
timed = (start=$$(date +%s); $(2); rc=$$?; \
	echo "== $(1) tier: $$(( $$(date +%s) - start )) s (exit $$rc)"; exit $$rc)

test: .venv
	$(PY) -m ruff check .
	$(PY) -m mypy  # strict; files and settings in pyproject.toml (cached: seconds)
	@$(call timed,fast (memory),$(PY) -m pytest -q $(FAST_TIER)); fast=$$?; \
	$(call timed,moto,$(PY) -m pytest -q --tier moto); moto=$$?; \
	exit $$(( fast || moto ))  # both tiers run, whichever fails

# The fast tier alone: under 30 s on 2 cores.
test-fast: .venv
	@$(call timed,fast (memory),$(PY) -m pytest -q $(FAST_TIER))

lint: .venv
	$(PY) -m ruff check .
	$(PY) -m mypy

bench: .venv
	$(PY) -m bench.run

# Mutation testing of the rules (bench/mutation.py): score per module, bench/mutation.json.
# Not part of `make test` (about 25 minutes on 2 cores).
mutate: .venv
	rm -rf mutants
	$(PY) -m bench.mutation run

clean:
	rm -rf $(VENV) build .pytest_cache mutants

include infra/infra.mk
