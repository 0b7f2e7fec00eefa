# Conveyor — every target installs what it needs itself (Python venv, npm tools, Node 22 for jsii).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
NODE_BIN := $(CURDIR)/node_modules/.bin
# node_modules/.bin first: jsii and the CDK CLI then run on the Node 22 that package.json installs.
export PATH := $(NODE_BIN):$(BIN):$(PATH)
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1
export CDK_DISABLE_CLI_TELEMETRY := true

CDK := $(NODE_BIN)/cdk
CDK_FLAGS = --no-notices --no-version-reporting $(CONTEXT)
STACK ?= --all
PROFILE ?=
# Extra cdk context, e.g. CONTEXT="-c environment=prod -c alarm_email=ops@example.com"
CONTEXT ?=
PROFILE_FLAG := $(if $(PROFILE),--profile $(PROFILE),)

PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# checkov 3 pins boto3/packaging/networkx/cachetools versions that conflict with the dev
# environment's: it gets a tool environment of its own, which conveyor.review runs.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.PHONY: help setup synth test lint format gate chaos bench bootstrap deploy sandbox diff destroy clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(PY_STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev,sandbox]"
	@touch $@

$(CHECKOV_STAMP): constraints-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints-checkov.txt checkov
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

setup: $(PY_STAMP) $(NODE_STAMP) $(CHECKOV_STAMP) ## Create .venv, .venv-checkov and node_modules (Node 22, CDK CLI 2.x)

# A synth that cdk-nag fails still writes the templates and validation-report.json: the review
# runs after a failed synth too, so its summary lists the unacknowledged findings; then it fails.
synth: setup ## Synthesize every topology into cdk.out/ and print the review summary
	@status=0; $(CDK) synth $(CDK_FLAGS) --quiet || status=$$?; \
	$(BIN)/python -m conveyor.review cdk.out || { [ $$status -ne 0 ] || status=1; }; \
	if [ $$status -ne 0 ]; then echo "make synth: FAILED (cdk synth or the review, see above)"; fi; \
	exit $$status

test: setup ## Run the whole test suite
	$(BIN)/pytest

# mypy cannot follow the editable install's folder mapping (an import hook), so it checks a
# link tree shaped like the installed package: conveyor/{constructs,stacks,*.py}, and of the
# handler assets only their stdlib-only contracts (conveyor/lambdas/<asset>/<package>/contract.py),
# which the CDK code imports.
TYPES_TREE := .cache/typecheck
# The handler code is checked as the Lambda runtime imports it: each asset root (and the kit's)
# on the path, its packages top-level.
HANDLER_ROOTS := $(wildcard lambdas/*)
HANDLER_PACKAGES := $(foreach root,$(HANDLER_ROOTS),$(notdir $(root)))
empty :=
space := $(empty) $(empty)

lint: setup ## ruff (lint + format check) and mypy on the infra code and the handlers
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@rm -rf $(TYPES_TREE) && mkdir -p $(TYPES_TREE)/conveyor
	@ln -s $(CURDIR)/constructs $(TYPES_TREE)/conveyor/constructs
	@ln -s $(CURDIR)/stacks $(TYPES_TREE)/conveyor/stacks
	@for f in conveyor/*.py conveyor/sandbox; do ln -s $(CURDIR)/$$f $(TYPES_TREE)/$$f; done
	@for c in lambdas/*/*/contract.py; do d=$(TYPES_TREE)/conveyor/$$(dirname $$c); mkdir -p $$d; \
		touch $$d/__init__.py; ln -s $(CURDIR)/$$c $$d/contract.py; done
	MYPYPATH=$(TYPES_TREE) $(BIN)/mypy -p conveyor
	MYPYPATH=$(TYPES_TREE) $(BIN)/mypy app.py
	MYPYPATH=$(subst $(space),:,$(HANDLER_ROOTS)) $(BIN)/mypy $(addprefix -p ,$(HANDLER_PACKAGES))

format: setup ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

gate: lint test synth ## The whole quality gate: lint, types, tests, synth + review

# Every fault class of conveyor.sandbox.faults against the topologies, counted at the destinations
# (needs cdk.out: make synth). Exit 1 on a failed case, 2 when a topology is not covered.
chaos: setup ## Fault suite: processed + dead-lettered + drops = sent, no duplicate effect, per topology
	$(BIN)/python -m conveyor.chaos cdk.out $(if $(ONLY),--only $(ONLY))

bench: setup ## Benchmarks (results in benchmarks/results.md)
	$(BIN)/python -m benchmarks.run

bootstrap: setup ## cdk bootstrap the account/region of PROFILE (once, before the first deploy)
	$(CDK) bootstrap $(CDK_FLAGS) $(PROFILE_FLAG)

# Without AWS credentials (no PROFILE, AWS_PROFILE or AWS_ACCESS_KEY_ID) deploy goes to the
# local sandbox; TARGET=aws or TARGET=local says it explicitly.
TARGET ?= $(if $(or $(PROFILE),$(AWS_PROFILE),$(AWS_ACCESS_KEY_ID)),aws,local)

deploy: synth ## Deploy every topology: TARGET=local (sandbox, the default without AWS credentials) or TARGET=aws PROFILE=… [STACK=…]
ifeq ($(TARGET),aws)
	$(CDK) deploy --no-notices $(PROFILE_FLAG) --app cdk.out $(STACK)
else ifeq ($(TARGET),local)
	$(BIN)/conveyor sandbox up --once
else
	$(error TARGET must be local or aws, not '$(TARGET)')
endif

sandbox: synth ## Start the local sandbox in the background (conveyor sandbox status|down)
	$(BIN)/conveyor sandbox up --detach

diff: setup ## cdk diff against the account of PROFILE
	$(CDK) diff $(CDK_FLAGS) $(PROFILE_FLAG) $(STACK)

destroy: setup ## cdk destroy STACK=<name> PROFILE=<aws profile>
	$(CDK) destroy $(CDK_FLAGS) $(PROFILE_FLAG) $(STACK)

clean: ## Remove cdk.out and caches (keeps .venv and node_modules)
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache
