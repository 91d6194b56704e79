# syntax=docker/dockerfile:1
# The gateway image: FastAPI + SSE, no torch, no model code (requirements/gateway.txt).
#
# Build from the repository root (the one distribution spans libs/ and services/):
#   docker build -f docker/gateway.Dockerfile -t tidings-gateway:0.1.0 .
#
# Layers: the locked dependencies (requirements/gateway.txt, hashed) come before the code, so a
# code change rebuilds only the last layer; the code is libs/ and services/gateway only.
# The base image is pinned by tag (Python patch release and Debian release), not by digest:
# pin the digest in your registry mirror if your policy requires it.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements/gateway.txt requirements/gateway.txt
RUN pip install --require-hashes --no-deps -r requirements/gateway.txt
COPY pyproject.toml setup.py README.md ./
COPY libs ./libs
COPY services/gateway ./services/gateway
RUN pip install --no-deps .

FROM ${PYTHON_IMAGE} AS runtime
# A fixed numeric non-root user, so Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 tidings \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
       --shell /usr/sbin/nologin tidings
COPY --from=build /opt/venv /opt/venv
COPY docker/healthcheck.py /opt/tidings/healthcheck.py
# No .pyc writes and unbuffered logs: the root filesystem can be mounted read-only; /tmp is
# the only writable path the process needs (mount it as a tmpfs / emptyDir).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    LOG_FORMAT=json \
    GATEWAY_PORT=8000
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/opt/tidings/healthcheck.py", "GATEWAY_PORT", "8000"]
ENTRYPOINT ["tidings"]
CMD ["gateway"]
