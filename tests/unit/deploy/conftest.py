"""Every kustomize target, rendered once per test module by `kubectl kustomize`."""

from __future__ import annotations

import pytest
from deploy_kustomize import Doc, render
from deploy_targets import TARGETS


@pytest.fixture(scope="module", params=sorted(TARGETS))
def target(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def docs(target: str) -> list[Doc]:
    return render(TARGETS[target])
