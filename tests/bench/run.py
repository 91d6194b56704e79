"""`make bench`: run every `bench_*.py` here and write docs/benchmarks.md.

Each module exposes `TITLE: str` and `def main() -> str`, which runs its measurements
(starting whatever real infrastructure it needs on 127.0.0.1, in bounded loops) and returns a
Markdown section: what was measured side by side, the figures and ratios, and the targets.
`python tests/bench/run.py bench_gateway` runs one module and prints its section only.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTPUT = HERE.parent.parent / "docs" / "benchmarks.md"


def _machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores, "
        f"{mem_gib:.0f} GiB, Python {platform.python_version()}"
    )


def _load(path: Path) -> object:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first, as `import` would: dataclasses look their module up by name.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    selected = set(argv)
    paths = sorted(p for p in HERE.glob("bench_*.py") if not selected or p.stem in selected)
    if not paths:
        print(f"no benchmarks match {sorted(selected)}", file=sys.stderr)
        return 2
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    sections: list[str] = []
    for path in paths:
        module = _load(path)
        started = time.monotonic()
        print(f"== {path.stem}: {module.TITLE}", file=sys.stderr, flush=True)  # type: ignore[attr-defined]
        body = module.main()  # type: ignore[attr-defined]
        took = time.monotonic() - started
        sections.append(f"## {module.TITLE}\n\n{body.strip()}\n\n_Run time: {took:.0f} s._\n")  # type: ignore[attr-defined]
    if selected:
        print("\n".join(sections))
        return 0
    header = (
        "# Benchmarks\n\n"
        f"Measured by `make bench` on {datetime.now(UTC):%Y-%m-%d} at commit `{commit}`.\n\n"
        f"Machine: {_machine()}. Shared and noisy: compare the figures measured side by side in "
        "the same run (the ratios), not across runs.\n\n"
        "Reproduce: `make bench` (all) or `.venv/bin/python tests/bench/run.py bench_NAME` (one).\n"
    )
    OUTPUT.write_text(header + "\n" + "\n".join(sections))
    print(f"wrote {OUTPUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
