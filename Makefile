# LLM Lab. `make up` runs the lab on this machine; `make test` runs the suite.
# Both start from nothing but Python 3.11: they build .venv first.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# The Python that builds the venv; the project pins 3.11 (pyproject.toml).
BOOT_PYTHON ?= $(shell command -v python3.11 || command -v python3)
REQUIREMENTS := requirements/web.txt requirements/train.txt requirements/dev.txt
# pip runs again only when a requirements file is newer than this stamp.
STAMP := $(VENV)/.requirements.stamp
CHROMIUM := /usr/bin/chromium
PYTEST_ARGS ?=

.PHONY: help venv up test chromium bench sample-data lint clean

help:
	@echo "make up           run the lab at http://127.0.0.1:$${LAB_PORT:-8000}/ (web, worker, redis)"
	@echo "make test         run the test suite"
	@echo "make bench        run bench/run.py; results in bench/results/"
	@echo "make sample-data  copy and verify the sample data into var/sample-data/"
	@echo "make venv         create .venv and install requirements/dev.txt"
	@echo "make lint         ruff"
	@echo "make clean        remove caches and what the lab rebuilds (keeps .venv, the database, var/data, var/redis)"

venv: $(STAMP)

$(PY):
	@test -n "$(BOOT_PYTHON)" || { echo "make: no python3.11 or python3 on PATH" >&2; exit 1; }
	$(BOOT_PYTHON) -m venv $(VENV)

$(STAMP): $(REQUIREMENTS) | $(PY)
	$(PY) -m pip install -r requirements/dev.txt
	@touch $@

up: venv
	$(PY) -m lab.devstack

# Browser tests drive Debian's Chromium; Playwright never downloads a browser here.
chromium:
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser tests"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; \
	fi
	@if [ ! -x $(CHROMIUM) ]; then \
		echo "*** $(CHROMIUM) is missing: the browser tests cannot run."; \
		echo "*** Install it as root: apt-get update && apt-get install -y chromium"; \
	fi

# Two pytest processes (pytest-xdist), a file at a time each: most of the suite waits on the
# training, worker and browser processes it starts, so two cores finish it in two thirds of the time.
TEST_PROCESSES ?= 2

test: venv chromium
	$(PY) -m pytest -n $(TEST_PROCESSES) --dist loadfile $(PYTEST_ARGS)

bench: venv
	$(PY) bench/run.py

sample-data:
	$(BOOT_PYTHON) -m lab.sample_data

lint:
	@$(PY) -m ruff --version >/dev/null 2>&1 || $(PY) -m pip install -q -r requirements/lint.txt
	$(PY) -m ruff check .

# Keeps the lab's own state (var/lab.sqlite3, var/data/, and var/redis/, which holds the queue of
# make up's Redis): `rm -rf var` resets everything.
clean:
	rm -rf var/staticfiles var/sample-data var/test-lab.sqlite3* var/celerybeat-schedule*
	rm -rf .pytest_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
