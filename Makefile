# One entry point for people and CI. Every target installs what it needs first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# checkov pins older boto3 and friends than the project: it lives in a virtual environment of its own.
CHECKOV_VENV := .venv-checkov
# uv installs the pinned requirements in seconds where pip takes minutes (the same pins, constraints.txt).
UV_VERSION := 0.13.9
CDK := node_modules/.bin/cdk
STAGE ?= dev
SCENARIO ?= outage
# Two workers: the end-to-end scenarios and state machines spend most of their time waiting.
# --durations: every run reports its slowest tests, so the ones that only wait stay visible.
PYTEST_ARGS ?= -n 2 --durations=15
# test-under-load: how often the suite runs in a row beside CPU-burning processes.
LOAD_RUNS ?= 3

# Node.js itself is pinned in package.json (jsii ended support for Node 20 on 2026-10-30): every recipe,
# and the jsii runtime aws-cdk-lib starts from Python, runs the node that `npm ci` put in node_modules.
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
export CDK_DISABLE_CLI_TELEMETRY := true

PY_SOURCES := app.py stacks lambdas localcloud schemas scripts ops bench tests

.PHONY: help install synth lint lint-templates test test-under-load demo bench clean

help:
	@echo "make demo     run the pipeline locally on an embedded AWS emulator (main job; SCENARIO=outage|slow|throttling|poison), then tour events, workflows and a DLQ redrive"
	@echo "make test     every check: lint, synth + cdk-nag, cfn-lint, checkov, ASL validation, all tests"
	@echo "make test-under-load  the suite $(LOAD_RUNS) times in a row, then the demo, beside two CPU-burning processes"
	@echo "make synth    synthesize the stack for STAGE=$(STAGE) and summarize it"
	@echo "make bench    this architecture vs the naive design under the same faults (docs/benchmarks.md)"
	@echo "make clean    remove build output"

$(VENV)/.installed: requirements.txt requirements-dev.txt lambdas/requirements.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install --python $(PY) --quiet -r requirements-dev.txt -c constraints.txt
	touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.txt $(VENV)/.installed
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(VENV)/bin/uv pip install --python $(CHECKOV_VENV)/bin/python --quiet -r requirements-checkov.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed $(CHECKOV_VENV)/.installed node_modules/.installed

synth: install
	$(CDK) synth --app "$(PY) app.py" -c stage=$(STAGE) --quiet --no-notices
	$(PY) -m scripts.synth_summary cdk.out

lint: install
	$(VENV)/bin/ruff check $(PY_SOURCES)
	$(VENV)/bin/ruff format --check $(PY_SOURCES)
	$(PY) -m stacks.event_contracts --check
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy stacks lambdas localcloud scripts ops bench

# cfn-lint on what `make synth` wrote (tests/infra/test_compliance.py lints every stage in `make test`).
lint-templates: synth
	$(VENV)/bin/cfn-lint --config-file .cfnlintrc.yaml

# The CLI synth proves cdk.json's app command and the CLI/library pair; the tests synthesize in process.
test: lint synth
	$(PY) -m pytest $(PYTEST_ARGS)

# A verdict must not depend on how busy the machine is (scripts/under_load.py).
test-under-load: install
	$(PY) scripts/under_load.py --burners 2 --runs $(LOAD_RUNS) -- $(MAKE) --no-print-directory test \
		-- $(MAKE) --no-print-directory demo

demo: install
	$(PY) -m localcloud.demo --scenario $(SCENARIO)

bench: install
	$(PY) -m bench

clean:
	rm -rf cdk.out .build .pytest_cache .ruff_cache .mypy_cache
