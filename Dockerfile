# One image for both Python programs of this repository:
#
#   python -m resource_api --host 0.0.0.0 --port 8001   (the default command)
#   python -m client_app   --host 0.0.0.0 --port 8000   (docker-compose.yml overrides the command)
#
# The build stage installs exactly uv.lock's runtime packages (`uv sync --locked`: the project,
# its litestar-logto core from packages/, their dependencies; no dev extra), not editable, into a
# virtualenv, with the uv version ./dev pins; the runtime stage receives that virtualenv and
# nothing else: no source tree, no uv, no tests, no .env (see .dockerignore). Every setting comes
# from the environment at run time, so the image holds no secret and no tenant URL.
# Binding 0.0.0.0 is right inside a container: the published port decides who can reach it.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1
RUN pip install uv==0.13.9
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY packages/litestar-logto ./packages/litestar-logto
COPY resource_api ./resource_api
COPY client_app ./client_app
COPY service_kit ./service_kit
RUN uv sync --locked --no-editable --python /usr/local/bin/python3

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# A fixed, unprivileged uid/gid (10001) so volume ownership and `runAsNonRoot` checks are
# predictable. /app/data is where the resource API keeps its SQLite file (a volume in compose);
# it is created here, owned by that user, so a fresh named volume inherits the ownership.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin app \
    && mkdir -p /app/data \
    && chown -R app:app /app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
USER 10001:10001

EXPOSE 8001 8000
# Liveness of the default command (the resource API's public GET /health). The client app's
# service in docker-compose.yml replaces it with its own check. No curl in the slim image, so
# Python's urllib does it; proxies are bypassed (a proxy cannot reach the container's loopback).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:8001/health', timeout=4)"]
CMD ["python", "-m", "resource_api", "--host", "0.0.0.0", "--port", "8001"]
