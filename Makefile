# The two set-up commands the README promises: `make demo` and `make test` (everything, as CI runs it).
# Both create .venv and install the project with its dev tools on first use.
# `make quick` is the inner loop: every test but the e2e suite (`pytest -m "not e2e"`, no kube-apiserver).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

IMAGE ?= ghcr.io/mcp-reconciler/mcp-reconciler
APP_VERSION := $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' charts/mcp-reconciler/Chart.yaml)
# buildah and podman build without a daemon; docker needs one.
CONTAINER_TOOL ?= $(firstword $(foreach tool,buildah podman docker,$(shell command -v $(tool) 2>/dev/null)))

.PHONY: setup demo test quick lint bench crds image clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/mcp-reconciler demo

lint: setup
	$(BIN)/ruff check reconciler tests bench
	$(BIN)/ruff format --check reconciler tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/mcp-reconciler crds --check
	$(BIN)/python -m pytest

quick: setup
	$(BIN)/python -m pytest -m "not e2e"

bench: setup
	$(BIN)/python bench/registry_bench.py
	$(BIN)/python bench/probe_bench.py

crds: setup
	$(BIN)/mcp-reconciler crds

image:
	@test -n "$(CONTAINER_TOOL)" || { echo "make image: no buildah, podman or docker found" >&2; exit 1; }
	$(CONTAINER_TOOL) build -f Containerfile --build-arg VERSION=$(APP_VERSION) -t $(IMAGE):$(APP_VERSION) .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache mcp-registry.db*
