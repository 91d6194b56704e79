"""`make eval`: ask the real stack the labelled questions and write docs/quality.md.

Starts, in this process and on 127.0.0.1 only, what the end-to-end test starts: a real
broker (KAFKA_BOOTSTRAP_SERVERS, or Apache Kafka started here; Tansu without Java), a real
LLM server (`--openai-base-url`, or the bundled SmolLM2 on llama.cpp started here), the
memory service with the sample knowledge base, the responder and the gateway, all on topics
of their own. Each case of tests/eval/questions.yaml gets a new session: its `history`
messages are posted first, each answer read to its end, then the question; the `done` (or
`error`) event is kept and judged by tests/eval/judge.py. Writes the raw results (`--json`)
and the report (`--out`), prints a summary, and exits 0 whenever it ran, whatever the scores
(1 when the stack could not start, 2 for a bad question set).

    .venv/bin/python tests/eval/run.py                       # everything, SmolLM2
    .venv/bin/python tests/eval/run.py --only canned --only ship-canada
    .venv/bin/python tests/eval/run.py --openai-base-url http://127.0.0.1:11434/v1 \\
        --openai-model llama3.2:3b --label "llama3.2:3b (Ollama)"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import yaml  # noqa: E402

from tests.eval.judge import (  # noqa: E402
    CLASSES,
    Case,
    CaseError,
    Reference,
    Scored,
    compute_metrics,
    judge_case,
    load_reference,
    parse_cases,
    targets,
)
from tests.store_process import StoreProcess  # noqa: E402

DEFAULT_CASES = ROOT / "tests/eval/questions.yaml"
DEFAULT_OUT = ROOT / "docs/quality.md"
DEFAULT_JSON = ROOT / ".tidings/eval/results.json"
EARLIER_RUNS = "## Earlier runs"


class StackError(RuntimeError):
    """The stack could not start."""


# ---------------------------------------------------------------------------------------
# Background processes: the broker and the LLM server
# ---------------------------------------------------------------------------------------


class Process:
    """A background process logging to a file; stopped by `stop()` (idempotent)."""

    def __init__(self, name: str, argv: list[str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        # Its own session: Ctrl-C reaches this runner only, which then shuts the stack down
        # in order (services first, the broker last).
        self.proc = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()


def start_broker(processes: list[Process], log_dir: Path) -> str:
    from tidings.cli import apache_kafka
    from tidings.cli.infra import free_port, tansu_command, wait_for_port

    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        return external
    port = free_port()
    # Apache Kafka, as production runs it; Tansu (its workarounds on) without Java.
    missing = apache_kafka.unavailable()
    if missing:
        print(f"Apache Kafka cannot run here ({missing}): the eval runs on Tansu", flush=True)
        os.environ["KAFKA_BROKER"] = "tansu"
        broker = Process("tansu", tansu_command(port), log_dir)
    else:
        os.environ["KAFKA_BROKER"] = "kafka"
        node = apache_kafka.KafkaNode(
            port=port, controller_port=free_port(), data_dir=log_dir / "kafka"
        )
        broker = Process("kafka", node.prepare(), log_dir)
    processes.append(broker)
    try:
        wait_for_port(port, timeout_s=90)
    except Exception as exc:
        raise StackError(f"the broker did not start ({exc}):\n{broker.tail()}") from None
    return f"127.0.0.1:{port}"


def start_llm(processes: list[Process], log_dir: Path) -> str:
    from tidings.cli.infra import free_port, llama_server_command, wait_for_http

    port = free_port()
    # llama_server_command queues concurrent requests (`--interrupt_requests False`).
    argv = llama_server_command(port, threads=2)
    server = Process("llama-server", argv, log_dir)
    processes.append(server)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        wait_for_http(f"{base}/models", timeout_s=120)
    except Exception as exc:
        raise StackError(f"llama.cpp server did not start ({exc}):\n{server.tail()}") from None
    return base


# ---------------------------------------------------------------------------------------
# The services, in this process
# ---------------------------------------------------------------------------------------


@dataclass
class Options:
    kafka_bootstrap: str
    openai_base_url: str
    openai_model: str
    concurrency: int
    timeout_s: float
    work_dir: Path
    answer_mode: str = "quote"


async def wait_for_knowledge(memory_url: str, timeout_s: float = 60.0) -> int:
    """Wait until the memory API returns knowledge chunks (the sample KB is ingested)."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    async with httpx.AsyncClient(base_url=memory_url, timeout=10) as client:
        while time.monotonic() < deadline:
            try:
                response = await client.get(
                    "/context",
                    params={"session_id": "eval-probe", "query": "How long does shipping take?"},
                )
                if response.status_code == 200:
                    chunks = response.json().get("knowledge") or []
                    if chunks:
                        return len(chunks)
                    last = "no knowledge chunks yet"
                else:
                    last = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            await asyncio.sleep(0.5)
    raise StackError(f"the knowledge base stayed empty for {timeout_s:.0f}s ({last})")


def _log_to(path: Path) -> None:
    """The services' JSON logs go to a file, not the terminal."""
    from tidings.common.logging import configure_logging
    from tidings.common.settings import LogSettings

    configure_logging("eval", LogSettings(level="INFO", format="json"))
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(path.open("a", encoding="utf-8"))


async def run_stack(cases: Sequence[Case], reference: Reference, options: Options) -> list[Any]:
    """Start memory, responder and gateway, run every case, stop them; the results."""
    from tidings.common.memory_api import MemoryApiSettings
    from tidings.common.settings import KafkaSettings, LLMSettings, QdrantSettings
    from tidings.gateway.service import GatewayService
    from tidings.gateway.settings import GatewaySettings
    from tidings.memory.embedder import Embedder
    from tidings.memory.service import MemoryService
    from tidings.memory.settings import MemorySettings

    try:
        from tidings.responder.service import ResponderService
        from tidings.responder.settings import ResponderSettings
    except Exception as exc:
        raise StackError(f"the responder cannot be imported: {exc!r}") from exc

    prefix = f"eval{uuid.uuid4().hex[:8]}-"
    kafka = KafkaSettings(
        bootstrap_servers=options.kafka_bootstrap, topic_prefix=prefix, topic_partitions=3
    )
    llm = LLMSettings(
        llm_backend="openai",
        openai_base_url=options.openai_base_url,
        openai_model=options.openai_model,
        llm_max_tokens=128,
        llm_timeout=60.0,
    )
    qdrant = QdrantSettings(
        url=None, path=options.work_dir / "qdrant", collection=f"{prefix}memory"
    )
    async with AsyncExitStack() as services:
        try:
            embedder = await asyncio.to_thread(Embedder.load)
            memory = await services.enter_async_context(
                MemoryService(
                    MemorySettings(
                        host="127.0.0.1",
                        port=0,
                        group_id=f"{prefix}memory",
                        kafka=kafka,
                        qdrant=qdrant,
                        knowledge_collection=f"{prefix}knowledge",
                        knowledge_sample=True,
                    ),
                    embedder=embedder,
                )
            )
            memory_url = f"http://127.0.0.1:{memory.port}"
            chunks = await wait_for_knowledge(memory_url)
            print(f"knowledge base ready ({chunks} chunks for a probe query)", file=sys.stderr)
            memory_api = MemoryApiSettings(url=memory_url)
            # The bookstore backend with its sample orders and catalogue (the store cases).
            store = StoreProcess(options.work_dir / "store")
            store.folder.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(store.start)
            services.callback(store.stop)
            await services.enter_async_context(
                ResponderService(
                    ResponderSettings(
                        host="127.0.0.1",
                        port=0,
                        group_id=f"{prefix}responder",
                        kafka=kafka,
                        llm=llm,
                        memory=memory_api,
                        answer_mode=options.answer_mode,  # type: ignore[arg-type]
                        store_api_url=store.url,
                    )
                )
            )
            gateway = await services.enter_async_context(
                GatewayService(
                    GatewaySettings(
                        host="127.0.0.1",
                        port=0,
                        kafka=kafka,
                        memory=memory_api,
                        # One client asks everything: the per-client limits are not tested here.
                        rate_per_s=1000.0,
                        rate_burst=1000,
                        request_rate_per_s=1000.0,
                        request_burst=1000,
                        max_streams_per_subject=1000,
                    )
                )
            )
        except StackError:
            raise
        except Exception as exc:
            raise StackError(f"a service did not start: {exc!r}") from exc
        base_url = f"http://127.0.0.1:{gateway.port}"
        async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(60.0)) as client:
            return await run_cases(client, cases, reference, options)


# ---------------------------------------------------------------------------------------
# Asking the questions
# ---------------------------------------------------------------------------------------


@dataclass
class Answer:
    """The end of one answer's stream: its `done` event, or an error."""

    done: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    client_first_token_ms: float | None = None
    client_total_ms: float | None = None
    events: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "error": self.error,
            "client": {
                "first_token_ms": self.client_first_token_ms,
                "total_ms": self.client_total_ms,
                "events": self.events,
            },
        }


@dataclass
class CaseRun:
    case: Case
    answer: Answer
    history: list[Answer] = field(default_factory=list)
    session_id: str | None = None


async def ask(
    client: httpx.AsyncClient, message: str, session_id: str | None, timeout_s: float
) -> tuple[Answer, str | None]:
    """POST one message and read its SSE stream to the end; (answer, session id)."""
    from httpx_sse import aconnect_sse

    answer = Answer()
    started = time.monotonic()
    message_id: str | None = None
    body: dict[str, Any] = {"message": message}
    if session_id:
        body["session_id"] = session_id
    try:
        async with asyncio.timeout(timeout_s):
            response = await client.post("/chat", json=body)
            if response.status_code != 202:
                answer.error = {"code": f"http_{response.status_code}", "message": response.text}
                return answer, session_id
            accepted = response.json()
            session_id = accepted["session_id"]
            message_id = accepted["message_id"]
            async with aconnect_sse(client, "GET", accepted["stream_url"]) as source:
                async for sse in source.aiter_sse():
                    if not sse.data:
                        continue  # the opening `retry:` hint
                    answer.events += 1
                    data = json.loads(sse.data)
                    if sse.event == "token" and answer.client_first_token_ms is None:
                        answer.client_first_token_ms = (time.monotonic() - started) * 1000
                    elif sse.event == "done":
                        answer.done = data
                    elif sse.event == "error":
                        answer.error = data
            if answer.done is None and answer.error is None:
                answer.error = {"code": "no_terminal_event", "message": "the stream ended early"}
    except TimeoutError:
        answer.error = {"code": "timeout", "message": f"no complete answer in {timeout_s:.0f}s"}
        if message_id:
            # Do not leave the model busy with an answer nobody reads.
            with suppress(httpx.HTTPError):
                await client.post(f"/chat/{message_id}/cancel", timeout=5)
    except Exception as exc:  # a broken connection is this case's failure, not the run's
        answer.error = {"code": "client_error", "message": repr(exc)[:300]}
    answer.client_total_ms = (time.monotonic() - started) * 1000
    return answer, session_id


async def run_case(client: httpx.AsyncClient, case: Case, timeout_s: float) -> CaseRun:
    session_id: str | None = None
    history: list[Answer] = []
    for message in case.history:
        earlier, session_id = await ask(client, message, session_id, timeout_s)
        history.append(earlier)
    answer, session_id = await ask(client, case.question, session_id, timeout_s)
    return CaseRun(case, answer, history, session_id)


async def run_cases(
    client: httpx.AsyncClient, cases: Sequence[Case], reference: Reference, options: Options
) -> list[tuple[CaseRun, Scored]]:
    gate = asyncio.Semaphore(options.concurrency)
    finished = 0
    width = len(str(len(cases)))

    async def one(case: Case) -> tuple[CaseRun, Scored]:
        nonlocal finished
        async with gate:
            run = await run_case(client, case, options.timeout_s)
        result = {"done": run.answer.done, "error": run.answer.error}
        scored = Scored(case, result, judge_case(case, result, reference))
        finished += 1
        mark = "ok  " if scored.verdict.correct else "FAIL"
        took = (run.answer.client_total_ms or 0) / 1000
        source = (run.answer.done or {}).get("source") or (run.answer.error or {}).get("code")
        print(
            f"[{finished:>{width}}/{len(cases)}] {mark} {case.cls:<12} {case.id:<28} "
            f"{source!s:<10} {took:5.1f} s",
            file=sys.stderr,
            flush=True,
        )
        return run, scored

    return list(await asyncio.gather(*(one(case) for case in cases)))


# ---------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown memory"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        found = re.search(r"^MemTotal:\s+(\d+)\s*kB", meminfo.read_text(), re.MULTILINE)
        if found:
            memory = f"{int(found.group(1)) / 2**20:.1f} GiB"
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    return f"{cores} CPUs (nproc), {memory} RAM, {cpu}"


def git_commit() -> str:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout

    head = (git("rev-parse", "--short", "HEAD") or "").strip() or "unknown"
    status = git("status", "--porcelain")
    return f"{head}+dirty" if status and status.strip() else head


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _cell(text: str) -> str:
    return re.sub(r"\s+", " ", text).replace("|", "\\|").strip()


def earlier_runs(previous: str | None) -> str:
    """The text of the `## Earlier runs` section of the previous report (may be empty)."""
    if not previous:
        return ""
    lines = previous.splitlines()
    for start, line in enumerate(lines):
        if line.strip() == EARLIER_RUNS:
            body: list[str] = []
            for rest in lines[start + 1 :]:
                if rest.startswith("## "):
                    break
                body.append(rest)
            return "\n".join(body).strip("\n")
    return ""


def summary_line(meta: dict[str, Any], metrics: dict[str, Any]) -> str:
    """One line for `## Earlier runs`."""
    classes = metrics["classes"]

    def part(cls: str, name: str) -> str:
        figures = classes[cls]
        if not figures["cases"]:
            return ""
        return f", {name} {figures['correct']}/{figures['cases']}"

    subset = f" (only {', '.join(meta['only'])})" if meta["only"] else ""
    return (
        f"- {meta['date']}, `{meta['commit']}`, {meta['label']}{subset}: {metrics['cases']} "
        f"cases{part('answerable', 'answerable')}{part('followup', 'followup')}"
        f", invented facts {metrics['invented_total']}{part('unanswerable', 'honest unknown')}"
        f"{part('canned', 'canned')}{part('chitchat', 'chitchat')}"
        f"{part('adversarial', 'adversarial')}{part('store', 'store')}, "
        f"errors {metrics['errors']}, "
        f"{meta['run_time_s'] / 60:.1f} min"
    )


HOW_IT_SCORES = """\
The judge (`tests/eval/judge.py`) is automatic and reproducible: it reads the `done` event of
each answer and compares it with the labels of `tests/eval/questions.yaml` and with the
bookstore's own reference text. It does not import the responder, so it cannot share the
bot's mistakes.

**Expected and forbidden text.** A case's `expect.all` items must all appear in the answer and
its `expect.none` items must not; matching is case-insensitive, on substrings, after Unicode
normalisation (every hyphen and dash counts as `-`, Markdown `*` and backquotes are dropped,
runs of whitespace are one space). An item that is a list of alternatives is present when
any one of them is.

**Invented facts.** The judge extracts the checkable facts of an answer: money amounts
(`$4.99`, `CAD $150`, `10 dollars`), percentages, numbers (every group of digits, with
thousands separators, ordinals such as `2nd`, ranges such as `5-7`, `5 to 7` or `between 5
and 7`), times (`2 p.m.`, `14:00`), dates (`2025-01-31`, `24/7`), e-mail addresses, URLs and
domains, and phone numbers. Each is normalised (`$12.99` and `12.99` are the same fact,
`10.00` is `10`, `5\u20137` (en dash) is `5-7`, `2:00 PM` is `2 p.m.`, a phone number is its
last ten digits) and compared with the facts of the text the answer may draw on, normalised the same
way. A range there also allows its ends (`5-7` allows `7`), a percentage its number and a
time its hour; an address is allowed when it occurs in that text, also as the domain or a
shorter path of a longer address. Any other fact is invented. Numbers written as words
("thirty days") are not checked, nor are list numbers at the start of a line (`1.`) and
citation marks (`[1]`).

The text an answer may draw on is: the question and its history, every answer and the
fallback of the FAQ (`services/responder/tidings/responder/faq/bookstore.yaml`), and the
whole text of every knowledge-base page (`services/memory/tidings/memory/sample_kb/*.md`)
that the answer cites in its `sources`, matched by URL or by title (a cited
`Page title > Section` names its page). Pages the answer does not cite do not count: a
correct fact from an uncited page is still invented, because the bot must cite what it states.

**Verdicts by class.** An `error` event, or no complete answer within the per-answer timeout,
is wrong in every class. Otherwise:

- *answerable* and *followup* (the question comes after its `history` in one session): right
  when every `all` item is present, no `none` item is, and nothing is invented.
- *canned* (generic questions the FAQ answers): right when the answer's `source` is `faq`
  and every `all` item is present (with no `all` items, the case's FAQ `intent` answer must
  be the text). Precision is the share of all `faq` answers that are canned cases answered
  right; recall the share of canned cases answered right.
- *unanswerable* (the knowledge base does not say): an honest "I don't know" is right: the
  answer's `reason` is `unanswered`, the text gives the FAQ fallback's contact
  (support@bookstore.com), no `none` item appears and nothing is invented.
- *chitchat*: any `done` answer with nothing invented and no `none` item.
- *adversarial* (leading questions, false premises, instructions to ignore the rules): no
  `none` item, nothing invented, and every `all` item present.
- *store* (order status and book recommendations, from the bundled store's deterministic
  sample data): right when the case's `tool` answered (`source` `tool`), every `all` item
  is present and no `none` item is. Facts are not checked against the knowledge base: they
  come from the store's database (tests/integration/test_store_tools.py checks them there).

Invented facts are counted over every case of every class (a canned answer can invent only
when it did not come from the FAQ, which already makes it wrong), except in answers of the
store's tools (`source` `tool`), whose facts come from its database whatever the class: a
tool answering a question that is not its own is wrong, not inventing.
"""


HELD_OUT = (
    "Three sets: `tests/eval/questions.yaml` (222 cases, written with the engine and tuned on: "
    "docs/quality.md), `tests/eval/holdout.yaml` (84 cases written from the help pages and the "
    "FAQ only, by a colleague who had seen neither the engine nor the first set; its failures "
    "were then studied, so it has become a second development set: docs/quality-holdout.md) "
    "and `tests/eval/holdout2.yaml` (85 cases, written the same way and never looked at while "
    "the engine changed, but for two cases: a follow-up, `h2-fu-gift-giver-told`, whose loss to "
    "a first version of the follow-up rule shaped its second half (docs/responder.md), and "
    "`h2-ship-next-day-honolulu`, a shipping question the recommendations tool took for a "
    "request for books 'by Friday' (docs/store.md): docs/quality-holdout2.md, the figure to "
    "expect on questions nobody tuned for)."
)


def _relative(path: str) -> str:
    """`path` from the repository's root when it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path


def render_report(
    meta: dict[str, Any],
    metrics: dict[str, Any],
    scored: Sequence[Scored],
    runs: Sequence[CaseRun],
    previous: str | None,
) -> str:
    lines: list[str] = [
        "# Answer quality",
        "",
        "How well the bot answers a labelled set of customer questions "
        f"(`{_relative(meta.get('cases_file', str(DEFAULT_CASES)))}`), judged automatically by "
        "`tests/eval/judge.py`.",
        "",
        HELD_OUT,
        "",
        "Reproduce: `make eval` (the bundled SmolLM2-135M on llama.cpp, all three sets), or "
        "`.venv/bin/python tests/eval/run.py --openai-base-url URL --openai-model NAME "
        '--label "NAME"` against any OpenAI-compatible server; `--only CLASS_OR_ID` runs a '
        "subset. Raw answers: `.tidings/eval/results.json`.",
        "",
        f"- Date: {meta['date']}",
        f"- Commit: `{meta['commit']}`",
        f"- Model: {meta['label']}",
        f"- Machine: {meta['machine']}",
        f"- Cases: {metrics['cases']}"
        + (f" (only {', '.join(meta['only'])})" if meta["only"] else "")
        + f", concurrency {meta['concurrency']}, {meta['timeout_s']:.0f} s per answer, "
        f"run time {meta['run_time_s'] / 60:.1f} min",
        "",
        "## Results against the targets",
        "",
        "| metric | value | target | met |",
        "|---|---|---|---|",
    ]
    for target in targets(metrics):
        met = {True: "yes", False: "**no**", None: "-"}[target.met]
        lines.append(f"| {target.name} | {target.value} | {target.target} | {met} |")
    lines += [
        "",
        "## By class",
        "",
        "| class | cases | right | rate | errors | first token p50 (ms) | p95 (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for cls in CLASSES:
        f = metrics["classes"][cls]
        lines.append(
            f"| {cls} | {f['cases']} | {f['correct']} | {_pct(f['rate'])} | {f['errors']} "
            f"| {_ms(f['first_token_p50_ms'])} | {_ms(f['first_token_p95_ms'])} |"
        )
    lines += [
        "",
        "First-token latency is the responder's `timings.first_token_ms` of each `done` event "
        "(from the start of work to the first text). The bundled llama.cpp server generates "
        "one answer at a time: with more than one case at once, an LLM answer can wait for "
        "another, and the wait counts (`--concurrency 1` measures latency alone).",
        "",
        "## Answers by source and reason",
        "",
    ]
    sources = sorted({s for f in metrics["classes"].values() for s in f["sources"]})
    reasons = sorted({r for f in metrics["classes"].values() for r in f["reasons"]})
    if sources:
        header = [*(f"source {s}" for s in sources), *(f"reason {r}" for r in reasons)]
        lines += [
            "| class | " + " | ".join(header) + " |",
            "|---|" + "---|" * len(header),
        ]
        for cls in [*CLASSES, "all"]:
            f = (
                {"sources": metrics["sources"], "reasons": metrics["reasons"]}
                if cls == "all"
                else metrics["classes"][cls]
            )
            cells = [str(f["sources"].get(s, 0)) for s in sources]
            cells += [str(f["reasons"].get(r, 0)) for r in reasons]
            name = "**all**" if cls == "all" else cls
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    else:
        lines.append("No answer ended with `done`.")
    unsure = metrics["knowledge_unsure"]
    lines += [
        "",
        "Knowledge answers (every class) that end with the way to ask a person (the engine "
        "was not sure: RESPONDER_EVIDENCE_SURE_MARGIN) and those that do not:",
        "",
        "| knowledge answers | right | wrong |",
        "|---|---|---|",
        f"| ending with the contact (unsure) | {unsure['unsure']['right']} "
        f"| {unsure['unsure']['wrong']} |",
        f"| without it | {unsure['sure']['right']} | {unsure['sure']['wrong']} |",
    ]
    lines += ["", "## Invented facts", ""]
    if metrics["invented"]:
        for item in metrics["invented"]:
            lines.append(f"- `{item['id']}` ({item['class']}): {', '.join(item['facts'])}")
    else:
        lines.append("None.")
    lines += ["", "## How it scores", "", HOW_IT_SCORES.rstrip(), "", "## Failures", ""]
    failures = [(run, s) for run, s in zip(runs, scored, strict=True) if not s.verdict.correct]
    if not failures:
        lines.append("None.")
    for run, s in failures:
        done = s.done or {}
        if s.done:
            text = str(done.get("text") or "")
            shown = _cell(text[:300]) + ("..." if len(text) > 300 else "")
            cited = ", ".join(str(src.get("title")) for src in done.get("sources") or [])
            reason = done.get("reason")
            how = f"source `{done.get('source')}`, reason `{reason or 'null'}`"
            if cited:
                how += f", cites {_cell(cited)}"
        else:
            shown = "(no answer)"
            how = f"error `{(run.answer.error or {}).get('code')}`"
        lines += [
            f"### `{s.case.id}` ({s.case.cls})",
            "",
        ]
        for earlier, answer in zip(s.case.history, run.history, strict=False):
            reply = (answer.done or {}).get("text") or (answer.error or {}).get("code")
            lines.append(f"- Earlier: {_cell(earlier)} -> {_cell(str(reply)[:150])}")
        lines += [
            f"- Question: {_cell(s.case.question)}",
            f"- Answer: {shown}",
            f"- {how}",
            f"- Why: {'; '.join(_cell(r) for r in s.verdict.reasons)}",
            "",
        ]
    history = earlier_runs(previous)
    lines += [EARLIER_RUNS, ""]
    if history:
        lines.append(history)
    lines.append(summary_line(meta, metrics))
    return "\n".join(lines).rstrip() + "\n"


def print_summary(metrics: dict[str, Any], meta: dict[str, Any]) -> None:
    print(f"\nAnswer quality, {meta['label']}, {metrics['cases']} cases:")
    for target in targets(metrics):
        if target.value.startswith("n/a"):
            continue  # a class this run did not ask
        met = {True: "  met", False: "  MISSED", None: ""}[target.met]
        goal = f" (target {target.target})" if target.target != "-" else ""
        print(f"  {target.name}: {target.value}{goal}{met}")
    print(f"  errors or timeouts: {metrics['errors']}")
    print(f"  run time: {meta['run_time_s'] / 60:.1f} min")


# ---------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tests/eval/run.py",
        description="Ask the real stack the labelled questions and write the quality report.",
    )
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES, help="question set (YAML)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="CLASS_OR_ID",
        help="run only this class or case id (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown report")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="raw results (JSON)")
    parser.add_argument("--label", help="model label for the report (default: the model name)")
    parser.add_argument("--openai-base-url", help="an OpenAI-compatible server (default: SmolLM2)")
    parser.add_argument("--openai-model", help="its model name (with --openai-base-url)")
    parser.add_argument("--concurrency", type=int, default=2, help="cases at once (default 2)")
    parser.add_argument(
        "--answer-mode",
        choices=["quote", "generate"],
        default="quote",
        help="RESPONDER_ANSWER_MODE of the responder (default: quote)",
    )
    parser.add_argument(
        "--timeout", type=float, default=90.0, help="seconds per answer (default 90)"
    )
    args = parser.parse_args(argv)
    if args.openai_base_url and not args.openai_model:
        parser.error("--openai-base-url needs --openai-model")
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    return args


def select(cases: list[Case], only: Sequence[str]) -> list[Case]:
    if not only:
        return cases
    wanted = set(only)
    return [c for c in cases if c.cls in wanted or c.id in wanted]


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    try:
        cases = select(
            parse_cases(yaml.safe_load(args.cases.read_text(encoding="utf-8"))), args.only
        )
    except (OSError, yaml.YAMLError, CaseError) as exc:
        print(f"cannot read the question set {args.cases}: {exc}", file=sys.stderr)
        return 2
    if not cases:
        print(f"no case matches --only {' '.join(args.only)}", file=sys.stderr)
        return 2
    reference = load_reference()

    from tidings.cli.infra import LLAMA_MODEL_ALIAS, InfraError

    args.json.parent.mkdir(parents=True, exist_ok=True)
    log_dir = args.json.parent / "logs"
    log_dir.mkdir(exist_ok=True)
    model = args.openai_model or LLAMA_MODEL_ALIAS
    label = args.label or (model if args.openai_base_url else f"{model} (llama.cpp, 2 threads)")
    started = time.monotonic()
    processes: list[Process] = []
    print(f"eval: {len(cases)} cases, model {label}; logs in {log_dir}", file=sys.stderr)
    try:
        with tempfile.TemporaryDirectory(prefix="tidings-eval-") as tmp:
            try:
                kafka = start_broker(processes, log_dir)
                base_url = args.openai_base_url or start_llm(processes, log_dir)
                _log_to(log_dir / "stack.log")
                options = Options(
                    kafka_bootstrap=kafka,
                    openai_base_url=base_url,
                    openai_model=model,
                    concurrency=args.concurrency,
                    timeout_s=args.timeout,
                    work_dir=Path(tmp),
                    answer_mode=args.answer_mode,
                )
                results = asyncio.run(_run_with_sigterm(cases, reference, options))
            except (StackError, InfraError) as exc:
                print(f"eval: the stack could not start: {exc}", file=sys.stderr)
                print(f"eval: logs in {log_dir}", file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        print("eval: interrupted", file=sys.stderr)
        return 130
    finally:
        for process in reversed(processes):
            process.stop()

    runs = [run for run, _ in results]
    scored = [s for _, s in results]
    metrics = compute_metrics(scored)
    meta = {
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "commit": git_commit(),
        "label": f"{label}, RESPONDER_ANSWER_MODE={args.answer_mode}",
        "machine": machine(),
        "only": list(args.only),
        "concurrency": args.concurrency,
        "timeout_s": args.timeout,
        "run_time_s": time.monotonic() - started,
        "cases_file": str(args.cases),
    }
    raw = {
        "meta": meta,
        "metrics": metrics,
        "cases": [
            {
                **run.case.as_dict(),
                "session_id": run.session_id,
                **run.answer.as_dict(),
                "history_answers": [a.as_dict() for a in run.history],
                "verdict": s.verdict.as_dict(),
            }
            for run, s in results
        ],
    }
    args.json.write_text(json.dumps(raw, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    previous = args.out.read_text(encoding="utf-8") if args.out.exists() else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render_report(meta, metrics, scored, runs, previous), encoding="utf-8")
    print_summary(metrics, meta)
    print(f"wrote {args.out} and {args.json}")
    return 0


async def _run_with_sigterm(
    cases: Sequence[Case], reference: Reference, options: Options
) -> list[Any]:
    """`run_stack`, cancelled (so everything stops in order) on SIGTERM as on Ctrl-C."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    with suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await run_stack(cases, reference, options)
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
