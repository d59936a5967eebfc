# procl: `make app` sets everything up and starts the app on the built-in dataset;
# `make test` sets everything up and runs the linter and the whole test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_K ?= 7 10

.PHONY: install install-test data demo app test lint bench bench-quick

# The runtime (requirements.txt) and procl itself, editable: the `procl` command.
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# What the tests add (requirements-test.txt: pytest, playwright, ruff).
$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(PY) -m pip install -q -r requirements-test.txt
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# The built-in dataset (generated once, with a progress bar).
data: install
	@test -f data/synthetic/split.csv || $(VENV)/bin/procl data synth --out data/synthetic

# Demo runs at k = 7 and k = 10 on the built-in dataset, trained on first start.
demo: data
	@for k in $(DEMO_K); do \
	  if [ ! -f checkpoints/demo-k$$k/metrics.json ]; then \
	    rm -rf checkpoints/demo-k$$k; \
	    $(VENV)/bin/procl train --dataset synthetic --k $$k --run demo-k$$k || exit 1; \
	  fi; \
	done

app: demo
	$(VENV)/bin/streamlit run app.py

lint: install-test
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest

bench: install
	$(VENV)/bin/procl bench

bench-quick: install
	$(VENV)/bin/procl bench --quick
