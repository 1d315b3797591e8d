# Set-up lives here so that a fresh clone needs only Python 3.11+, make and the package registries.
PYTHON ?= python3
TOOLS  := .tools
UV     := $(TOOLS)/bin/uv
VENV   := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_COMPILE_BYTECODE := 1
export UV_PYTHON := $(PYTHON)

.PHONY: setup demo test docs bench lint clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"

$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --locked --quiet
	@touch $@

setup: $(VENV)/.synced  ## create .venv from uv.lock

demo: setup  ## screen a synthetic registry of 10,000 patients through the Prefect flow
	$(VENV)/bin/osteo demo --patients 10000 --out osteo-demo

test: setup  ## the whole test suite
	$(VENV)/bin/python -m pytest

docs: setup  ## regenerate the reference pages in docs/ from the code and data files
	$(VENV)/bin/python -m osteo_core.outputs.docs docs

lint: setup
	$(UV) run --locked ruff check osteo_core flows schemas tests

clean:
	rm -rf $(VENV) $(TOOLS) osteo-demo osteo-out .pytest_cache .hypothesis
