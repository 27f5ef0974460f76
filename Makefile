# Autoloader: `make up` runs the whole stack natively, `make test` runs the tests on it.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PIP_CACHE_DIR ?= $(HOME)/.cache/autoloader/pip

.DEFAULT_GOAL := help
.PHONY: help venv up down status env test test-unit lint typecheck check asyncapi clean helm promtool bench bench-latency bench-batch bench-discovery chaos

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is missing: install Python 3.11"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@mkdir -p .local
	@echo "installing Python dependencies into $(VENV) (log: .local/pip-install.log)"
	@$(PY) -m pip install -q --upgrade pip > .local/pip-install.log 2>&1
	@$(PY) -m pip install -c constraints.txt -e '.[dev]' >> .local/pip-install.log 2>&1 \
	  || { tail -30 .local/pip-install.log; echo "pip install failed: see .local/pip-install.log"; exit 1; }
	@touch $@

venv: $(STAMP) ## create .venv with the pinned dependencies

up: $(STAMP) ## install what is missing and start the whole stack
	@$(PY) -m devstack up

down: ## stop everything `make up` started
	@test -x $(PY) && $(PY) -m devstack down || true

status: $(STAMP) ## show each component's health
	@$(PY) -m devstack status

env: $(STAMP) ## print the environment that points clients at the stack
	@$(PY) -m devstack env

test: check up helm promtool ## lint, type-check, start the stack if needed, then run every test
	@set -a && source .local/stack.env && set +a && HELM=$(HELM) PROMTOOL=$(PROMTOOL) $(PY) -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP) ## only the tests that need no running component
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP) ## mypy
	$(VENV)/bin/mypy

check: lint typecheck ## ruff and mypy

# helm renders the chart in tests; it is built from the Go module proxy when Go is present, with
# the Kubernetes version its release binaries default to (1.31 for helm 3.16, from client-go).
GO_CACHE := $(HOME)/.cache/autoloader/go
HELM_VERSION := v3.16.4
HELM := $(GO_CACHE)/helm-$(HELM_VERSION)/helm
HELM_KUBE := -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=31 \
  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=31
helm: $(HELM)
$(HELM):
	@if command -v go >/dev/null; then \
	  echo "building helm $(HELM_VERSION) into $(dir $(HELM)) (first time only)"; \
	  GOPATH=$(GO_CACHE) GOBIN=$(dir $(HELM)) GOFLAGS=-modcacherw \
	    go install -ldflags "$(HELM_KUBE)" helm.sh/helm/v3/cmd/helm@$(HELM_VERSION); \
	else echo "go is missing: the chart tests that need helm will skip"; fi

# promtool checks the shipped alert rules; Prometheus's Go module versions its 3.x releases as
# v0.3xx. The build takes several minutes the first time, then comes from the cache.
PROMTOOL_VERSION := v0.316.0
PROMTOOL := $(GO_CACHE)/promtool-$(PROMTOOL_VERSION)/promtool
promtool: $(PROMTOOL)
$(PROMTOOL):
	@if command -v go >/dev/null; then \
	  echo "building promtool $(PROMTOOL_VERSION) into $(dir $(PROMTOOL)) (first time only, several minutes)"; \
	  GOPATH=$(GO_CACHE) GOBIN=$(dir $(PROMTOOL)) GOFLAGS=-modcacherw \
	    go install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION); \
	else echo "go is missing: the promtool check of the alert rules will skip"; fi

bench: up ## Autoloader against one Spark batch and Spark's file stream, 2,000 and 20,000 files
	@set -a && source .local/stack.env && set +a && $(PY) -m benchmarks.throughput $(BENCH_ARGS)

bench-latency: up ## upload to rows visible, by notification: 1 upload/s for 60 s, then 1,000 at once
	@set -a && source .local/stack.env && set +a && $(PY) -m benchmarks.latency $(BENCH_ARGS)

bench-batch: up ## one batch of 500 files step by step, with its Spark jobs, beside the limit's read
	@set -a && source .local/stack.env && set +a && $(PY) -m benchmarks.batch_profile $(BENCH_ARGS)

bench-discovery: up ## discovery of 100,000 keys, 50,000 already known: time and database round trips
	@set -a && source .local/stack.env && set +a && $(PY) -m benchmarks.discovery_scale $(BENCH_ARGS)

TRIALS ?= 10
chaos: up ## randomized fault trials on the running stack (TRIALS=30 for the full count)
	@set -a && source .local/stack.env && set +a && $(PY) -m tests.chaos --trials $(TRIALS) $(CHAOS_ARGS)

asyncapi: $(STAMP) ## regenerate docs/asyncapi.yaml from the event schemas
	$(VENV)/bin/faststream docs gen --factory --yaml -o docs/asyncapi.yaml shared.asyncapi:asyncapi

clean: down ## stop the stack and delete its data and logs (the download cache stays)
	rm -rf .local
