# Two commands on a fresh machine: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never

.PHONY: run stdio test lint typecheck prometheus interop-tools bench install install-dev clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --no-dev
	@touch $@

$(VENV)/.installed-dev: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen
	@touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# A checkout keeps its data in ./data, unless MCP_DESK_STORAGE_PATH is set (environment or .env);
# installed elsewhere, the server's default is the user's data directory.
RUN_ENV = $(if $(MCP_DESK_STORAGE_PATH)$(shell grep -s '^MCP_DESK_STORAGE_PATH=.' .env),,MCP_DESK_STORAGE_PATH=./data)

## Start the Streamable HTTP server on 127.0.0.1:8000 (SQLite under ./data, sample runbooks in docs/kb).
run: install
	$(RUN_ENV) $(VENV)/bin/mcp-desk http

stdio: install
	$(RUN_ENV) $(VENV)/bin/mcp-desk stdio

lint: install-dev
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

typecheck: install-dev
	$(VENV)/bin/mypy

## Lint, type-check, then the whole suite with coverage.
## Prometheus/promtool come from Debian (root: installed on first use; CI=true: a failure to install fails);
## the interop tests' pinned Node tooling from tests/interop/package-lock.json (npm ci, once).
test: lint typecheck prometheus interop-tools
	rm -f .coverage .coverage.*
	$(VENV)/bin/coverage run -m pytest
	$(VENV)/bin/coverage combine -q
	$(VENV)/bin/coverage report

prometheus:
	@bash tests/ops/install_prometheus.sh || [ "$${CI:-}" != "true" ]

interop-tools:
	bash tests/interop/install.sh

bench: install-dev
	$(VENV)/bin/python -m bench.run_all

clean:
	rm -rf $(VENV) $(TOOLS) .coverage .coverage.* .mypy_cache .ruff_cache .pytest_cache
-include mk/container.mk

-include mk/bench.mk
