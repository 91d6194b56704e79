"""Render a kustomization with the real `kubectl kustomize` (never a re-implementation).

kubectl carries kustomize; `make k8s-check` and `make test` need it on the PATH (the README's
prerequisites). Every overlay is rendered exactly as `kubectl apply -k` would send it.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]


class KustomizeError(RuntimeError):
    """kubectl is missing, or the kustomization does not build."""


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        raise KustomizeError("kubectl is not on the PATH: it renders k8s/ (README, Prerequisites)")
    return path


@cache
def _render(root: str) -> tuple[str, ...]:
    result = subprocess.run(
        [kubectl(), "kustomize", root],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise KustomizeError(f"kubectl kustomize {root}: {result.stderr.strip()}")
    return tuple(yaml.safe_dump(d) for d in yaml.safe_load_all(result.stdout) if d)


def render(root: Path) -> list[Doc]:
    """The objects `kubectl kustomize ROOT` renders (fresh copies on every call)."""
    return [yaml.safe_load(text) for text in _render(str(root))]
