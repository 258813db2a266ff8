# syntax=docker/dockerfile:1
# mcp-desk image: a venv built from uv.lock in a builder stage, then a slim runtime without build tools.
# Build: docker build -t mcp-desk:local .      Run: see docs/docker.md (compose is the supported way).
# First start with an empty /data creates one admin API key and prints it once (docker logs).

ARG VERSION=0.1.0

FROM python:3.11-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON=python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_SYSTEM_CERTS=1

# uv comes from PyPI (the version the Makefile pins), in its own throwaway venv.
RUN python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install --no-cache-dir uv==0.13.8

WORKDIR /src
# Dependencies first: this layer is reused until uv.lock or pyproject.toml change.
COPY pyproject.toml uv.lock ./
RUN /opt/uv/bin/uv sync --frozen --no-dev --no-install-project
# Then the project itself, installed non-editable so the runtime needs no source tree
# (the wheel carries the sample knowledge base from docs/kb and the default policy).
COPY README.md ./
COPY docs/kb ./docs/kb
COPY server ./server
RUN /opt/uv/bin/uv sync --frozen --no-dev --no-editable \
    && /opt/venv/bin/mcp-desk --help > /dev/null


FROM python:3.11-slim-bookworm AS runtime
ARG VERSION

LABEL org.opencontainers.image.title="mcp-desk" \
      org.opencontainers.image.description="Production-hardened MCP server for a support desk" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/mcp-desk/mcp-desk" \
      org.opencontainers.image.version="${VERSION}" \
      io.modelcontextprotocol.server.name="io.github.mcp-desk/mcp-desk"

# The image's contract: data (database, audit log, keys file) in the /data volume, listen on all
# interfaces inside the container, production rules (keys and explicit allowed hosts/origins).
# With no keys file yet, the first start creates one admin key (only its hash lands in /data).
# Bubblewrap cannot create namespaces inside a default container: the sandbox runs diagnostics
# without it (process group, rlimits, cgroups where delegated), chosen here rather than detected.
# DL3064: the names contain "KEY" but the values are a path and a switch, no secret.
# hadolint ignore=DL3064
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MCP_DESK_ENVIRONMENT=production \
    MCP_DESK_STORAGE_PATH=/data \
    MCP_DESK_EXPORT_PATH=/data/exports \
    MCP_DESK_API_KEYS_FILE=/data/api_keys \
    MCP_DESK_BOOTSTRAP_ADMIN_KEY=true \
    MCP_DESK_SANDBOX_MODE=none \
    MCP_DESK_HOST=0.0.0.0 \
    MCP_DESK_PORT=8000 \
    MCP_DESK_HEALTH_HOST=0.0.0.0 \
    MCP_DESK_HEALTH_PORT=3001

RUN groupadd --system --gid 10001 mcpdesk \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin mcpdesk \
    && mkdir -p /data \
    && chown 10001:10001 /data \
    && chmod 0750 /data

COPY --from=builder /opt/venv /opt/venv
WORKDIR /data

USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000 3001
STOPSIGNAL SIGTERM

# No curl in the image: the venv's Python asks the sidecar. 200 (healthy or degraded) passes,
# 503 (unhealthy) or no answer fails. Proxies are bypassed on purpose.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as u; port = os.environ.get('MCP_DESK_HEALTH_PORT') or '3001'; r = u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:' + port + '/health', timeout=4); sys.exit(0 if r.status == 200 else 1)"]

# Exec form, no shell in between: mcp-desk itself receives SIGTERM and drains (exit 0).
ENTRYPOINT ["mcp-desk"]
CMD ["http"]
