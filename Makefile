# Set-up lives here so that a fresh clone needs only Python 3.11+, make and the package registries.
PYTHON ?= python3
TOOLS  := .tools
UV     := $(TOOLS)/bin/uv
VENV   := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_COMPILE_BYTECODE := 1
export UV_PYTHON := $(PYTHON)

.PHONY: setup demo test browser postgres notebook notebook-html docs bench lint clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"

$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --locked --quiet
	@touch $@

setup: $(VENV)/.synced  ## create .venv from uv.lock

demo: setup  ## screen a synthetic registry of 10,000 patients through the Prefect flow
	$(VENV)/bin/osteo demo --patients 10000 --out osteo-demo

test: setup browser postgres  ## the whole test suite, one pytest worker per core (at most 4)
	$(VENV)/bin/python -m pytest -n auto --maxprocesses 4

# The report test screenshots the report in headless Chromium. Debian's package is installed when it is
# missing and this runs as root; otherwise install your distribution's chromium package yourself.
browser:  ## headless Chromium for the report test
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the report test (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	  else \
	    echo "the report test needs Chromium: install your distribution's chromium package (Debian: sudo apt-get install chromium)"; \
	    exit 1; \
	  fi; }

# The OMOP PostgreSQL tests start a PostgreSQL server of their own (tests/postgres_server.py: as an unprivileged
# account, in a temporary folder, on a free port). Debian's package is installed when its programs are missing
# (on the PATH or in /usr/lib/postgresql/*/bin) and this runs as root; otherwise install your distribution's
# postgresql package yourself.
postgres:  ## PostgreSQL server programs for the OMOP PostgreSQL tests
	@{ command -v initdb && command -v pg_ctl && command -v postgres; } >/dev/null 2>&1 || \
	  ls /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/pg_ctl /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's postgresql for the OMOP PostgreSQL tests (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; \
	  else \
	    echo "the OMOP PostgreSQL tests need a PostgreSQL server: install your distribution's postgresql package (Debian: sudo apt-get install postgresql)"; \
	    exit 1; \
	  fi; }

notebook: setup  ## open notebooks/ in JupyterLab (installs the notebook group of the lock file)
	$(UV) sync --locked --quiet --group notebook
	OSTEO_OUT=$${OSTEO_OUT:-$(CURDIR)/osteo-demo} $(VENV)/bin/jupyter lab notebooks/research_questions.ipynb

# Runs the notebook headless against OSTEO_OUT (default osteo-demo) and writes OSTEO_OUT/research_questions.html:
# each chart interactive (plotly.js embedded, no network needed) over a PNG of it that shows where no script runs.
# The PNGs are drawn by kaleido in headless Chromium (make browser). The notebook itself is left as it is.
notebook-html: setup browser  ## run the notebook headless and write OSTEO_OUT/research_questions.html
	$(UV) sync --locked --quiet --group notebook
	@out="$${OSTEO_OUT:-osteo-demo}"; \
	  [ -d "$$out" ] || { echo "$$out: no such folder (run make demo, or set OSTEO_OUT to an osteo screen output folder)"; exit 2; }; \
	  out="$$(cd "$$out" && pwd)"; \
	  OSTEO_OUT="$$out" $(VENV)/bin/jupyter nbconvert --to html --execute --ExecutePreprocessor.timeout=900 \
	    --output-dir "$$out" --output research_questions notebooks/research_questions.ipynb && \
	  echo "wrote $$out/research_questions.html"

docs: setup  ## regenerate the reference pages in docs/ from the code and data files
	$(VENV)/bin/python -m osteo_core.docgen docs

lint: setup
	$(UV) run --locked ruff check osteo_core flows schemas tests

clean:
	rm -rf $(VENV) $(TOOLS) osteo-demo osteo-out .pytest_cache .hypothesis
