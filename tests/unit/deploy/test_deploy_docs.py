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
