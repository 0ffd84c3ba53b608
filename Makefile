# The two commands a new user runs: `make demo` and `make test`. Each creates the virtualenv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_HOME ?= .drlc-demo

.PHONY: setup demo report report-html test lint protos bench clean-demo

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch is pinned (a CPU wheel); an unpinned torch would pull a multi-GB CUDA build
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

# The virtualenv alone; then `source .venv/bin/activate` puts drlc-host and drlc-agent on PATH.
setup: $(VENV)/.installed

demo: $(VENV)/.installed
	DRLC_HOME=$(DEMO_HOME) VENV=$(VENV) bash tools/demo.sh

# The demo's report again, without activating the virtualenv (HOME_DIR=PATH for another workspace).
HOME_DIR ?= $(DEMO_HOME)
report: $(VENV)/.installed
	$(VENV)/bin/drlc-host report --home $(HOME_DIR)

report-html: $(VENV)/.installed
	$(VENV)/bin/drlc-host report --home $(HOME_DIR) --format html -o $(HOME_DIR)/report.html

test: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check host device_agent tools tests
	$(VENV)/bin/ruff format --check host device_agent tools tests

protos: $(VENV)/.installed
	$(PY) tools/gen_protos.py

# Every benchmark in tools/, one after another (about 15 min on 2 cores); writes the table into docs/performance.md.
# BENCH_ARGS=--quick for a smoke run, BENCH_ARGS="--only bench_loop" for one of them.
bench: $(VENV)/.installed
	$(PY) tools/bench_all.py $(BENCH_ARGS)

clean-demo:
	rm -rf $(DEMO_HOME)
