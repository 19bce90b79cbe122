# Two commands set everything up: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-test lint bench clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; set PYTHON=/path/to/python3.11" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	# A fresh venv's pip (23.x) skips lxml_html_clean; upgrade it before installing anything.
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/monitor demo

test: install-test
	$(BIN)/python -m pytest -q

lint: install-test
	$(BIN)/ruff check monitor pipelines storage tests bench

bench: install
	$(BIN)/python bench/extraction.py
	$(BIN)/python bench/tagging.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/recrawl.py

clean:
	rm -rf $(VENV) demo.db demo-outbox .pytest_cache
