# procl: `make app` sets everything up and starts the app on the built-in dataset;
# `make test` sets everything up and runs the whole test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_K ?= 7 10

.PHONY: install data demo app test bench bench-quick

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

install: $(VENV)/.installed

# The built-in dataset (generated once, with a progress bar).
data: install
	@test -f data/synthetic/split.csv || $(PY) -m procl data synth --out data/synthetic

# Demo runs at k = 7 and k = 10 on the built-in dataset, trained on first start.
demo: data
	@for k in $(DEMO_K); do \
	  if [ ! -f checkpoints/demo-k$$k/metrics.json ]; then \
	    rm -rf checkpoints/demo-k$$k; \
	    $(PY) -m procl train --dataset synthetic --k $$k --run demo-k$$k || exit 1; \
	  fi; \
	done

app: demo
	$(VENV)/bin/streamlit run app.py

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) -m procl bench

bench-quick: install
	$(PY) -m procl bench --quick
