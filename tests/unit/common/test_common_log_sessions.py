"""Session ids are keys to conversations: log lines at INFO and above show a digest."""

from __future__ import annotations

import json
import logging

import pytest

from tidings.common.logging import bind, configure_logging, get_logger, session_digest
from tidings.common.settings import LogSettings

SESSION = "0123456789abcdef0123456789abcdef"


def lines(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_info_and_above_carry_a_digest_and_debug_the_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("test", LogSettings(level="DEBUG", format="json"))
    log = get_logger("tidings.test")
    try:
        log.info("message accepted", session_id=SESSION)
        with bind(session_id=SESSION):
            log.warning("bound")
            logging.getLogger("some.library").error("a library line")
        log.info("tool", session=SESSION)
        log.debug("stream opened", session_id=SESSION)
        written = lines(capsys.readouterr().err)
    finally:
        configure_logging("test", LogSettings())

    digest = session_digest(SESSION)
    assert [line.get("session_id") or line.get("session") for line in written] == [
        digest,
        digest,
        digest,
        digest,
        SESSION,
    ]
    assert all(SESSION not in json.dumps(line) for line in written[:4])
    assert digest == session_digest(SESSION) and digest.startswith("h:")
