# nasflow: the two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# Commands run with the virtualenv first on PATH, so rules find the `nasflow` command.
RUN := PATH="$(BIN):$$PATH"
CORES ?= all
# The offline data mirror: $NASFLOW_MIRROR, else ../shared/data when it exists beside the checkout.
NASFLOW_MIRROR ?= $(abspath $(wildcard ../shared/data))
export NASFLOW_MIRROR

.PHONY: setup demo report test bench lint clean help

help:
	@echo "make setup   create $(VENV): pinned CPU torch first, then nasflow with its dev extra"
	@echo "make demo    setup, run the workflow on config/config.yaml (snakemake --cores $(CORES)), write report.html"
	@echo "make report  report.html of a finished run, rendered in headless Chromium (report.png)"
	@echo "make test    setup, then the whole test suite (pytest)"
	@echo "make bench   setup, then the benchmark scripts in bench/"
	@echo "make lint    ruff, snakemake --lint, snakefmt --check"

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The report's landing page is the results page: the check requires its winner table and plots
# in the page Chromium renders (the demo skips the check, saying so, where no Chromium is found).
CHECK := nasflow report check --report report.html --screenshot report.png --results \
	--expect "What won" --expect "0 Results"

demo: setup
	$(RUN) snakemake --cores $(CORES)
	$(RUN) snakemake --report report.html
	$(RUN) $(CHECK) --skip-without-browser
	@echo "report: $(CURDIR)/report.html"

report: setup
	$(RUN) snakemake --report report.html
	$(RUN) $(CHECK)

test: setup
	$(RUN) python -m pytest -q --durations=25

bench: setup
	@set -e; for script in bench/bench_*.py; do \
		echo "== $$script"; $(RUN) python $$script; done

lint: setup
	$(RUN) ruff check src tests bench
	$(RUN) ruff format --check src tests bench
	$(RUN) snakemake --lint
	$(RUN) snakefmt --check Snakefile workflow

clean:
	rm -rf results logs benchmarks state .snakemake report.html report.png
