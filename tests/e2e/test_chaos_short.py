"""The short chaos drill inside `make test`: the real topology, few users, each fault once.

Runs `tests/chaos/run.py --short` as its own process (it starts and kills its own broker,
gateways, responders and memory worker on 127.0.0.1) and holds it to the issue's pass line:
no answer lost (except those a memory-mode broker forgets, reported as such), none shown
twice, every stream ended, every poison event dead-lettered, every fault named in the logs,
recovery within 15 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "tests" / "chaos" / "run.py"

# (fault, condition) -> the known defect that can break it. Only a condition listed here may
# fail without failing the test (it is then reported as xfail, naming the defect).
KNOWN_BUGS: dict[tuple[str, str], str] = {}


@pytest.mark.timeout(420)
def test_chaos_short_drill_meets_the_pass_line(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(RUN), "--short", "--run-dir", str(tmp_path), "--seed", "8"],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=ROOT,
        check=False,
    )
    output = completed.stdout + completed.stderr
    report = tmp_path / "report.json"
    assert report.exists(), f"the drill produced no report:\n{output[-6000:]}"
    rows = json.loads(report.read_text())
    faults = {row["name"] for row in rows}
    assert {
        "poison burst",
        "memory stopped",
        "responder kill -9",
        "responder SIGTERM",
        "gateway kill -9",
        "broker restart",
    } <= faults, output[-3000:]
    # Users really went through every fault: answers were asked and completed in each phase.
    assert all(row["accepted"] > 0 and row["completed"] > 0 for row in rows), output[-3000:]
    failed = {
        (row["name"], condition)
        for row in rows
        for condition, ok in row["checks"].items()
        if not ok
    }
    unexplained = failed - KNOWN_BUGS.keys()
    assert not unexplained, f"pass conditions broken: {sorted(unexplained)}\n{output[-6000:]}"
    last_line = completed.stdout.strip().splitlines()[-1]
    passed = sum(len(row["checks"]) for row in rows) - len(failed)
    assert last_line == f"{passed} passed, {len(failed)} failed", last_line
    if failed:
        pytest.xfail("; ".join(KNOWN_BUGS[key] for key in sorted(failed)))
    assert completed.returncode == 0, output[-3000:]
