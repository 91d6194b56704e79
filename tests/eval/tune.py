"""Tune the answer engine's evidence limits on a labelled set, without the LLM (seconds a run).

`make eval` asks the whole stack; this asks only the part that decides what to answer from:
it starts a broker and the real memory service with the sample knowledge base (or yours,
with MEMORY_KNOWLEDGE_* settings), builds the answer engine as the responder does, and runs
`AnswerEngine.plan()` on every case that the engine decides alone (every class but
`chitchat`, which the LLM answers, and `store`, which the store's tools answer). Each plan
is judged by `judge.py` as `make eval` judges the answer, so the counts match `make eval`'s
for those classes. A grid of settings runs one after the other on the same memory service:

    .venv/bin/python tests/eval/tune.py
    .venv/bin/python tests/eval/tune.py --grid '{"foreign_word_penalty": [0.04, 0.05, 0.06]}'
    .venv/bin/python tests/eval/tune.py --grid '{"weights.coverage": [0.15, 0.3]}' --fails

Keys are `EvidenceLimits` fields (`min_similarity`, `foreign_word_penalty`,
`max_sentences`, `second_within`, `chunks`, ...) and `weights.<field>` for `Weights`
(`section`, `coverage`, `section_coverage`, `typed`). Tune on questions of your own, and
keep a set you did not tune on to measure with `make eval`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from judge import Case, judge_case, load_reference, parse_cases  # noqa: E402
from run import DEFAULT_CASES, Process, start_broker, wait_for_knowledge  # noqa: E402

# What `Plan.kind` becomes in the `done` event (router.py).
SOURCE = {
    "canned": "faq",
    "quote": "knowledge",
    "generate": "knowledge",
    "unknown": "fallback",
    "general": "llm",
}
SKIPPED = {"chitchat", "store"}


def settings_grid(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, as {key: value}."""
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]


def limits_with(base: Any, changes: dict[str, Any]) -> Any:
    """`base` (EvidenceLimits) with `changes` applied (`weights.x` changes its Weights)."""
    weights = {
        k.removeprefix("weights."): v for k, v in changes.items() if k.startswith("weights.")
    }
    plain = {k: v for k, v in changes.items() if not k.startswith("weights.")}
    fields = {f.name for f in dataclasses.fields(base)}
    wrong = [k for k in plain if k not in fields] + [
        f"weights.{k}"
        for k in weights
        if k not in {f.name for f in dataclasses.fields(base.weights)}
    ]
    if wrong:
        raise SystemExit(f"unknown setting(s): {', '.join(wrong)}")
    return dataclasses.replace(base, **plain, weights=dataclasses.replace(base.weights, **weights))


async def run(cases: Sequence[Case], grid: list[dict[str, Any]], fails: bool) -> None:
    from tidings.common.events import UserMessage
    from tidings.common.memory_api import MemoryApiSettings, MemoryClient
    from tidings.common.settings import KafkaSettings, QdrantSettings
    from tidings.memory.embedder import Embedder
    from tidings.memory.service import MemoryService
    from tidings.memory.settings import MemorySettings
    from tidings.responder.answers.engine import AnswerEngine
    from tidings.responder.faq import FaqStore
    from tidings.responder.llm.echo import EchoBackend
    from tidings.responder.memory import ContextSource
    from tidings.responder.service import ResponderService
    from tidings.responder.settings import ResponderSettings

    reference = load_reference()
    work = Path(tempfile.mkdtemp(prefix="tidings-tune-"))
    processes: list[Process] = []
    try:
        bootstrap = start_broker(processes, work)
        prefix = f"tune{uuid.uuid4().hex[:8]}-"
        memory_settings = MemorySettings(
            host="127.0.0.1",
            port=0,
            group_id=f"{prefix}memory",
            kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix),
            qdrant=QdrantSettings(url=None, path=work / "qdrant", collection=f"{prefix}memory"),
            knowledge_collection=f"{prefix}knowledge",
            knowledge_sample=True,
        )
        embedder = await asyncio.to_thread(Embedder.load)
        async with MemoryService(memory_settings, embedder=embedder) as memory:
            url = f"http://127.0.0.1:{memory.port}"
            await wait_for_knowledge(url)
            context = ContextSource(MemoryClient(MemoryApiSettings(url=url)))
            settings = ResponderSettings()
            config = (
                ResponderService(settings, backend=EchoBackend(settings.llm)).router_config().engine
            )
            for changes in grid:
                engine = AnswerEngine(
                    FaqStore(settings.faq_path),
                    context,
                    dataclasses.replace(config, evidence=limits_with(config.evidence, changes)),
                    fallback_text=settings.fallback_text,
                )
                right: dict[str, list[int]] = {}
                wrong: list[str] = []
                invented = 0
                for case in cases:
                    session = uuid.uuid4().hex
                    for text in [*case.history, case.question]:
                        plan = await engine.plan(
                            UserMessage(
                                session_id=session,
                                message_id=uuid.uuid4().hex,
                                text=text,
                                user="tune",
                            )
                        )
                    done = {
                        "text": plan.text,
                        "source": SOURCE[plan.kind],
                        "reason": plan.reason,
                        "sources": [s.model_dump(mode="json") for s in plan.sources],
                    }
                    verdict = judge_case(case, {"done": done}, reference)
                    counts = right.setdefault(case.cls, [0, 0])
                    counts[0] += verdict.correct
                    counts[1] += 1
                    invented += len(verdict.invented)
                    if not verdict.correct:
                        wrong.append(case.id)
                total = sum(c[0] for c in right.values())
                by_class = ", ".join(f"{cls} {c[0]}/{c[1]}" for cls, c in right.items())
                print(f"{changes or 'defaults'}: {total}/{len(cases)} right ({by_class}), "
                      f"{invented} invented", flush=True)  # fmt: skip
                if fails:
                    print(f"  wrong: {' '.join(wrong)}", flush=True)
            await context.aclose()
    finally:
        for process in reversed(processes):
            process.stop()


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="tests/eval/tune.py", description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES, help="question set (YAML)")
    parser.add_argument("--grid", default="{}", help='JSON: {"setting": [values, ...], ...}')
    parser.add_argument("--fails", action="store_true", help="list the cases answered wrong")
    args = parser.parse_args(argv)
    grid = json.loads(args.grid)
    if not isinstance(grid, dict) or not all(isinstance(v, list) for v in grid.values()):
        parser.error("--grid takes a JSON object of lists")
    cases = [c for c in parse_cases(yaml.safe_load(args.cases.read_text())) if c.cls not in SKIPPED]
    asyncio.run(run(cases, settings_grid(grid), args.fails))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
