# The two set-up commands the README promises: `make demo` and `make test` (everything, as CI runs it).
# Both create .venv and install the project with its dev tools on first use.
# `make quick` is the inner loop: every test but the e2e suite and the image's build-and-run tests
# (`pytest -m "not e2e and not image"`: no kube-apiserver, no image build).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

IMAGE ?= ghcr.io/mcp-reconciler/mcp-reconciler
BASE ?=
APP_VERSION := $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' charts/mcp-reconciler/Chart.yaml)
# buildah and podman build without a daemon; docker needs one.
CONTAINER_TOOL ?= $(firstword $(foreach tool,buildah podman docker,$(shell command -v $(tool) 2>/dev/null)))

.PHONY: setup demo test quick lint bench crds image clean

# oidc-provider (npm), the real authorization server of the OAuth tests, from its lockfile. Without npm the
# oidc-provider tests skip locally; in CI (MCP_RECONCILER_REQUIRE_SERVICES=1) setup fails here instead.
OIDC_DIR := tests/oidc
OIDC_INSTALLED := $(OIDC_DIR)/node_modules/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(OIDC_INSTALLED): $(OIDC_DIR)/package.json $(OIDC_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(OIDC_DIR) && npm ci --no-audit --no-fund && touch node_modules/.installed; \
	elif [ "$$MCP_RECONCILER_REQUIRE_SERVICES" = 1 ]; then \
		echo "make setup: npm is missing; CI needs node and npm for oidc-provider (apt-get install nodejs npm)" >&2; exit 1; \
	else \
		echo "make setup: npm not found; the oidc-provider tests will skip (apt-get install nodejs npm)" >&2; \
	fi

setup: $(VENV)/.installed $(OIDC_INSTALLED)

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
	$(BIN)/python -m pytest -m "not e2e and not image"

bench: setup
	$(BIN)/python bench/registry_bench.py
	$(BIN)/python bench/probe_bench.py
	$(BIN)/python bench/refresh_bench.py

crds: setup
	$(BIN)/mcp-reconciler crds

# With buildah, .ci/build-image.sh builds the Containerfile with no daemon and no registry: the base root
# filesystem comes from Debian's archive (mmdebstrap) unless BASE names an image. podman and docker pull BASE
# (default debian:bookworm-slim from docker.io).
image:
	@test -n "$(CONTAINER_TOOL)" || { echo "make image: no buildah, podman or docker found" >&2; exit 1; }
ifeq ($(notdir $(CONTAINER_TOOL)),buildah)
	IMAGE=$(IMAGE) VERSION=$(APP_VERSION) BASE=$(BASE) .ci/build-image.sh
else
	$(CONTAINER_TOOL) build -f Containerfile --build-arg VERSION=$(APP_VERSION) $(if $(BASE),--build-arg BASE=$(BASE)) -t $(IMAGE):$(APP_VERSION) .
endif

clean:
	rm -rf $(VENV) $(OIDC_DIR)/node_modules .pytest_cache .mypy_cache .ruff_cache mcp-registry.db*
