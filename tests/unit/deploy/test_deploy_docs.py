"""The operations guide quotes log lines operators grep for: each must exist in the code."""

from __future__ import annotations

import re

from deploy_settings import ROOT

COMMANDS = {"docker", "kubectl", "tidings", "k", "curl", "jq"}


def _quoted_phrases(markdown: str) -> set[str]:
    """Inline-code phrases of several words (log events), outside fenced blocks."""
    text = re.sub(r"```.*?```", "", markdown, flags=re.S)
    return {
        phrase
        for phrase in re.findall(r"`([^`\n]+)`", text)
        if re.fullmatch(r"[A-Za-z][A-Za-z ;,'-]+", phrase)
        and " " in phrase
        and phrase.split()[0] not in COMMANDS
    }


def test_every_log_line_the_operations_guide_quotes_is_logged_by_the_code() -> None:
    source = "\n".join(
        path.read_text() for root in ("services", "libs") for path in (ROOT / root).rglob("*.py")
    )
    phrases = _quoted_phrases((ROOT / "docs" / "operations.md").read_text())
    assert len(phrases) >= 10  # the drills quote the services' log lines
    missing = sorted(p for p in phrases if f'"{p}"' not in source)
    assert not missing, f"docs/operations.md quotes log lines no service writes: {missing}"


def test_deployment_guide_names_the_operator_releases_the_manifests_are_checked_against() -> None:
    from deploy_crds import crd_versions

    guide = (ROOT / "docs" / "deployment.md").read_text()
    for name, origin in crd_versions().items():
        version = re.search(r"[@:]v?(\d+\.\d+\.\d+)", origin)
        assert version, origin
        assert version.group(1) in guide, f"docs/deployment.md does not name {name} {origin}"
    # Every image gets its row with a measured size.
    for dockerfile in (ROOT / "docker").glob("*.Dockerfile"):
        image = f"tidings-{dockerfile.name.removesuffix('.Dockerfile')}"
        row = next((line for line in guide.splitlines() if line.startswith(f"| `{image}`")), "")
        assert re.search(r"\d+ MiB", row), f"no size for {image}"


def test_license_is_the_one_pyproject_declares() -> None:
    import tomllib

    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == (
        "Apache-2.0"
    )
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_readme_lists_the_prerequisites() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Prerequisites", 1)[1].split("\n## ", 1)[0]
    for needed in ("cmake", "Java", "root", "kubectl", "Go"):
        assert needed in section, needed
