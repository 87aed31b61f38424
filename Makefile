# nasflow: the two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# Commands run with the virtualenv first on PATH, so rules find the `nasflow` command.
RUN := PATH="$(BIN):$$PATH"
CORES ?= all

.PHONY: setup demo test bench lint clean help

help:
	@echo "make setup   create $(VENV): pinned CPU torch first, then nasflow with its dev extra"
	@echo "make demo    setup, then run the workflow on config/config.yaml (snakemake --cores $(CORES))"
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

demo: setup
	$(RUN) snakemake --cores $(CORES)

test: setup
	$(RUN) python -m pytest -q

bench: setup
	@set -e; for script in bench/bench_*.py; do \
		echo "== $$script"; $(RUN) python $$script; done

lint: setup
	$(RUN) ruff check src tests bench
	$(RUN) ruff format --check src tests bench
	$(RUN) snakemake --lint
	$(RUN) snakefmt --check Snakefile workflow

clean:
	rm -rf results logs benchmarks state .snakemake
