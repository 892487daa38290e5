# iotauth — one entry point for contributors and CI.
#   make run    the whole product locally on 127.0.0.1 (no AWS account needed)
#   make test   lint, type-check, validate and build the SAM app, run every test
#   make bench  benchmarks that print figures
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Lambda runs python3.13: use pyenv's 3.13 when there is one, else whatever python3 is.
PYTHON ?= $(shell PYENV_VERSION=3.13.0 pyenv which python3.13 2>/dev/null || command -v python3.13 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# aws-sam-cli pins many packages; it lives in a venv of its own so it cannot clash with moto.
SAM_VENV := .tools/sam
SAM := $(CURDIR)/$(SAM_VENV)/bin/sam
# checkov (template security scan) pins its own boto3/packaging stack: a venv of its own too.
CHECKOV_VENV := .tools/checkov
CHECKOV := $(CURDIR)/$(CHECKOV_VENV)/bin/checkov
# awslambdaric + boto3 for running built functions without Docker (tools/lambda_invoke.py).
LAMBDA_RUNTIME := .tools/lambda-runtime
# Aliyun's linkkit runs only on paho-mqtt 1.x: the interop tests drive it from its own venv.
LINKKIT_VENV := .tools/linkkit
export PATH := $(BIN):$(PATH)
export SAM_CLI_TELEMETRY := 0
export AWS_SAM_CLI_TELEMETRY := 0

.PHONY: help dev run web-deps test lint typecheck validate build pytest bench bench-node invoke browser-deps broker-deps node-deps interop-deps clean

help:
	@echo "make run    start the local stack (gateway, signer, chat page) on 127.0.0.1"
	@echo "make test   the whole suite: ruff, mypy, sam validate --lint, cfn-lint, checkov, sam build, pytest"
	@echo "make bench  benchmarks"
	@echo "make invoke FN=AuthorizerFunction EVENT=events/authorizer/connect-mqtt.json"

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

$(SAM_VENV)/.installed:
	@test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install -q --upgrade pip
	$(SAM_VENV)/bin/python -m pip install -q 'aws-sam-cli>=1.120,<2'
	@touch $@

$(CHECKOV_VENV)/.installed:
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install -q 'checkov>=3.2,<4'
	@touch $@

dev: $(VENV)/.installed $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed
	$(BIN)/mypy

# checkov: every finding is fixed or skipped in template.yaml with a reason the README lists
# (--skip-download: no call home for guideline links; the checks ship with the package).
validate: $(VENV)/.installed $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed
	$(SAM) validate --lint
	$(BIN)/cfn-lint template.yaml
	$(CHECKOV) -f template.yaml --framework cloudformation --compact --quiet --skip-download

build: $(VENV)/.installed $(SAM_VENV)/.installed
	$(SAM) build

pytest: $(VENV)/.installed browser-deps broker-deps interop-deps $(LAMBDA_RUNTIME)/.installed
	$(BIN)/python -m pytest

test: lint typecheck validate build pytest

# bench.coldstart measures the sam build artifacts on the Lambda-like runtime venv, next to
# Node.js + AWS SDK v3 clients (npm, into bench/node: never shipped).
# BASELINE=<git rev>: also measure the functions as that revision ships them (same run).
bench: $(VENV)/.installed build $(LAMBDA_RUNTIME)/.installed bench-node
	IOTAUTH_BENCH_BASELINE=$(BASELINE) $(BIN)/python -m bench $(BENCH)

bench-node: bench/node/node_modules/.package-lock.json

bench/node/node_modules/.package-lock.json: bench/node/package-lock.json | node-deps
	cd bench/node && npm ci --no-audit --no-fund
	@touch $@

# The chat page's mqtt.js, from npm (never a CDN); re-run when the lock file changes.
web-deps: web/node_modules/.package-lock.json

web/node_modules/.package-lock.json: web/package-lock.json | node-deps
	cd web && npm ci --no-audit --no-fund
	@touch $@

# Debian's Chromium for the browser tests: Playwright (PyPI) drives it; no `playwright install`.
browser-deps: web-deps
	@test -x /usr/bin/chromium || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends chromium; }

# Debian's mosquitto 2 (MQTT 5): the message engine behind the local gateway.
# The package also enables a system mosquitto on localhost:1883 (make run's MQTT port) where
# systemd runs: the stand-in starts its own engine, so that service is stopped and disabled.
broker-deps:
	@command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends mosquitto && \
		if [ -d /run/systemd/system ]; then $$SUDO systemctl disable --now mosquitto || true; fi; }

# Node.js and npm (Debian's) for mqtt.js (web/), the interop clients and bench/node.
node-deps:
	@command -v npm >/dev/null || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends nodejs npm; }
	@major=$$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0); \
		[ "$$major" -ge 20 ] || echo "note: Node.js $$(node --version 2>/dev/null) here; web/ and" \
		"tests/interop run on it, bench/node's AWS SDK v3 wants 20 or later (Debian 13's nodejs," \
		"or NodeSource): make bench then measures this version" >&2

# Client libraries for tests/interop beyond .venv's pins: mqtt.js is web/'s (node runs
# tests/interop/node/client.mjs against it); linkkit in its own venv (it needs paho-mqtt<2);
# the AWS IoT Device SDK v2 for JavaScript (aws-crt ships its native addon prebuilt) in
# tests/interop/node-sdkv2, for its client.mjs.
interop-deps: web-deps $(LINKKIT_VENV)/.installed tests/interop/node-sdkv2/node_modules/.package-lock.json

tests/interop/node-sdkv2/node_modules/.package-lock.json: tests/interop/node-sdkv2/package-lock.json | node-deps
	cd tests/interop/node-sdkv2 && npm ci --no-audit --no-fund
	@touch $@

$(LINKKIT_VENV)/.installed: tests/interop/linkkit-requirements.txt
	@test -x $(LINKKIT_VENV)/bin/python || $(PYTHON) -m venv $(LINKKIT_VENV)
	$(LINKKIT_VENV)/bin/python -m pip install -q -r tests/interop/linkkit-requirements.txt
	@touch $@

# The Lambda runtime client for `make invoke` and tests/sam: awslambdaric and boto3 (which
# the real runtime provides), in a venv of their own so nothing of .venv leaks into a function.
$(LAMBDA_RUNTIME)/.installed: $(VENV)/.installed
	$(BIN)/python -c 'from tools.lambda_invoke import ensure_runtime; ensure_runtime()'
	@touch $@

# Docker-free `sam local invoke`: the built artifact behind the Lambda Runtime Interface
# Emulator shipped in aws-sam-cli. INVOKE_ARGS: --endpoint-url URL, --env K=V, --env-json F.
# Against `make run` (its table holds the events/authorizer identities): INVOKE_ARGS=
# "--endpoint-url http://127.0.0.1:5005", or none after eval "$$(iotauth local env)".
# Exit status (as the iotauth CLI's): 0 allowed/answered, 1 denied, 2 usage, 3 the function failed.
invoke: build $(LAMBDA_RUNTIME)/.installed
	@test -n "$(FN)" && test -n "$(EVENT)" || { \
		echo "usage: make invoke FN=AuthorizerFunction EVENT=events/authorizer/connect-mqtt.json [INVOKE_ARGS=\"--endpoint-url http://127.0.0.1:5005\"]"; exit 2; }
	$(BIN)/python tools/lambda_invoke.py $(FN) $(EVENT) $(INVOKE_ARGS)

run: $(VENV)/.installed web-deps broker-deps
	$(BIN)/iotauth local $(ARGS)

clean:
	rm -rf .aws-sam .mypy_cache .pytest_cache .ruff_cache
