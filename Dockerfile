# One image for both Python programs of this repository:
#
#   python -m resource_api --host 0.0.0.0 --port 8001   (the default command)
#   python -m client_app   --host 0.0.0.0 --port 8000   (docker-compose.yml overrides the command)
#
# The project is installed with `pip install .` from pyproject.toml (runtime dependencies only,
# no dev extras) into a virtualenv in a build stage; the runtime stage receives that virtualenv
# and nothing else: no source tree, no tests, no .env (see .dockerignore). Every setting comes
# from the environment at run time, so the image holds no secret and no tenant URL.
# Binding 0.0.0.0 is right inside a container: the published port decides who can reach it.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY resource_api ./resource_api
COPY client_app ./client_app
COPY service_kit ./service_kit
RUN /opt/venv/bin/pip install .

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
