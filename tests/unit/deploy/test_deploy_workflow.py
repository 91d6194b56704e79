"""The CI workflow (.github/workflows/ci.yaml) cannot run here: it is checked offline with
actionlint (built by `make install` from its Go module) and against GitHub's workflow schema
(vendored in check-jsonschema), then read for what the pipeline must do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_settings import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yaml"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = shutil.which(name, path=f"{BIN}:{os.environ.get('PATH', '')}")
    if path is None:
        pytest.fail(f"{name} is missing: `make install` installs it into .venv/bin")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def _workflow() -> dict[Any, Any]:
    # PyYAML reads the key `on` as True (YAML 1.1).
    return dict(yaml.safe_load(WORKFLOW.read_text()))


def test_actionlint_passes_and_would_catch_a_broken_workflow(tmp_path: Path) -> None:
    result = _run(_tool("actionlint"), "-no-color", str(WORKFLOW))
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(WORKFLOW.read_text().replace("needs: images", "needs: imagez"))
    result = _run(_tool("actionlint"), "-no-color", str(broken))
    assert result.returncode == 1 and "imagez" in result.stdout


def test_workflow_matches_githubs_schema_offline(tmp_path: Path) -> None:
    check = _tool("check-jsonschema")
    result = _run(check, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW))
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-24.04", "run-on: x", 1))
    result = _run(check, "--builtin-schema", "vendor.github-workflows", str(broken))
    assert result.returncode == 1


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job["steps"])


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(s.get("run", "") for s in _steps(job))


def test_lints_and_tests_with_the_makefile_from_the_lock() -> None:
    test = _workflow()["jobs"]["test"]
    assert _runs(test).split() == ["make", "install", "make", "lint", "make", "test"]
    python = next(s for s in _steps(test) if s.get("uses", "").startswith("actions/setup-python"))
    assert python["with"]["cache-dependency-path"] == "requirements/dev.txt"


def test_builds_every_image_and_pushes_to_the_configured_registry_by_commit_and_version() -> None:
    images = _workflow()["jobs"]["images"]
    services = images["strategy"]["matrix"]["service"]
    dockerfiles = {
        p.name.removesuffix(".Dockerfile") for p in (ROOT / "docker").glob("*.Dockerfile")
    }
    assert set(services) == dockerfiles
    build = next(s for s in _steps(images) if s.get("uses", "").startswith("docker/build-push"))
    assert build["with"]["file"] == "docker/${{ matrix.service }}.Dockerfile"
    assert build["with"]["context"] == "."
    assert build["with"]["push"] == "${{ env.PUSH == 'true' }}"
    # Pushed only outside pull requests and only when a registry is configured.
    assert "vars.REGISTRY != ''" in images["env"]["PUSH"]
    assert "pull_request" in images["env"]["PUSH"]
    login = next(s for s in _steps(images) if s.get("uses", "").startswith("docker/login"))
    assert login["with"]["registry"] == "${{ vars.REGISTRY }}"
    assert login["with"]["password"] == "${{ secrets.REGISTRY_PASSWORD }}"
    meta = next(s for s in _steps(images) if s.get("id") == "meta")
    assert "vars.REGISTRY" in meta["with"]["images"]
    tags = meta["with"]["tags"]
    assert "value=${{ github.sha }}" in tags
    assert "value=${{ steps.version.outputs.version }}" in tags
    assert 'tomllib.load(open("pyproject.toml"' in _runs(images)


def test_diffs_the_cluster_only_when_credentials_are_configured() -> None:
    diff = _workflow()["jobs"]["diff"]
    assert diff["needs"] == "images"
    assert "vars.KUBE_OVERLAY != ''" in diff["if"]
    assert diff["env"]["KUBECONFIG_DATA"] == "${{ secrets.KUBECONFIG }}"
    runs = _runs(diff)
    assert "kubectl diff -k .ci-overlay" in runs
    assert "resources: [../k8s/overlays/${OVERLAY}]" in runs
    guarded = [s for s in _steps(diff) if "kubectl" in s.get("run", "")]
    assert all(s["if"] == "steps.credentials.outputs.configured == 'true'" for s in guarded)


@pytest.mark.parametrize("overlay", ["dev", "prod-vllm", "prod-mesh"])
def test_the_diffed_overlay_runs_this_commits_images(overlay: str, tmp_path: Path) -> None:
    """The diff job's overlay script, run here: every Tidings image becomes the commit's."""
    diff = _workflow()["jobs"]["diff"]
    (step,) = [s for s in _steps(diff) if ".ci-overlay/kustomization.yaml" in s.get("run", "")]
    shutil.copytree(ROOT / "k8s", tmp_path / "k8s")
    registry = "harbor.example.com/tidings"  # what the prod overlays' registry settings name
    env = {**os.environ, "OVERLAY": overlay, "IMAGES": registry, "TAG": "0123abcd"}
    result = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    images = {line.split("image:")[1].strip() for line in result.stdout.splitlines()}
    services = _workflow()["jobs"]["images"]["strategy"]["matrix"]["service"]
    rendered = _run("kubectl", "kustomize", str(tmp_path / ".ci-overlay")).stdout
    ours = {
        line.split("image:")[1].strip()
        for line in rendered.splitlines()
        if "image:" in line and any(f"/{s}:" in line or f"tidings-{s}:" in line for s in services)
    }
    assert ours and ours == images
    assert all(image.startswith(f"{registry}/") for image in ours), ours
    assert step["env"] == {
        "IMAGES": "${{ vars.REGISTRY }}/${{ vars.REGISTRY_PROJECT }}",
        "TAG": "${{ github.sha }}",
    }
