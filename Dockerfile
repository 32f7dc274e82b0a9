# syntax=docker/dockerfile:1
# streamserver image: `docker build -t streamserver .`, then
#   docker run -p 8080:8080 streamserver --workers auto --handlers recorder
# (arguments after the image name are appended to `streamserver serve --host 0.0.0.0`).
# See docs/deployment.md and deploy/compose.yaml.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the wheel, and every runtime dependency at the exact version and hash of uv.lock
FROM ${PYTHON_IMAGE} AS build
# The same uv as the Makefile's UV_VERSION (tests/test_deploy_files.py checks that they match).
ARG UV_VERSION=0.13.9
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1
RUN python -m pip install "uv==${UV_VERSION}"
WORKDIR /src
# The lock first, so that a source change does not re-export and re-download dependencies.
COPY pyproject.toml uv.lock README.md LICENSE ./
# Runtime dependencies and the s3 extra ([storage] uploads); no dev extra, not the project itself.
RUN uv export --frozen --no-dev --extra s3 --no-emit-project --format requirements-txt \
        --output-file /requirements.txt \
 && python -m venv /opt/streamserver \
 && /opt/streamserver/bin/pip install --require-hashes --requirement /requirements.txt
COPY streamserver ./streamserver
COPY handlers ./handlers
RUN uv build --wheel --out-dir /dist \
 && /opt/streamserver/bin/pip install --no-deps /dist/*.whl \
 && /opt/streamserver/bin/streamserver --version

# --- runtime: the slim image, the venv, a non-root user
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 streamserver \
 && useradd --system --uid 10001 --gid streamserver --no-log-init \
        --home-dir /var/lib/streamserver --create-home --shell /usr/sbin/nologin streamserver
COPY --from=build /opt/streamserver /opt/streamserver
ENV PATH=/opt/streamserver/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# Recordings are spooled under ./recordings ([handler.recorder] record_dir): mount a volume
# here to keep what is not uploaded yet across container restarts.
WORKDIR /var/lib/streamserver
USER 10001:10001
EXPOSE 8080
# No curl in the slim image: Python's urllib, without any HTTP(S)_PROXY of the environment,
# on the port the server is told to use (STREAMSERVER_SERVER__PORT, default 8080). Plain HTTP:
# with --ssl-certfile on the port, use the orchestrator's own probe instead.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as u; port = os.environ.get('STREAMSERVER_SERVER__PORT', '8080'); r = u.build_opener(u.ProxyHandler({})).open(f'http://127.0.0.1:{port}/healthz', timeout=2); sys.exit(0 if r.status == 200 else 1)"]
# SIGTERM drains: /readyz turns 503, open streams get [server] drain_timeout_s to end.
STOPSIGNAL SIGTERM
ENTRYPOINT ["streamserver", "serve", "--host", "0.0.0.0"]
CMD []
