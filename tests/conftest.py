"""Session-wide real infrastructure for the integration tests.

One broker and one llama.cpp server (or the OpenAI-compatible server named by
TIDINGS_TEST_OPENAI_BASE_URL) per test session; each test gets fresh topic names through a
unique topic prefix. The broker is, by TIDINGS_TEST_BROKER:
- `kafka` (the default): Apache Kafka as production runs it, a single KRaft node started
  here from the jars Maven fetched once per machine (tidings.cli.apache_kafka), its log on
  disk, with the clients' production settings (idempotent producer, 500 ms fetch waits).
  Without Java 17+ and Maven the session falls back to Tansu and says why.
- `tansu`: the Tansu dev broker (KAFKA_BROKER=tansu turns on tidings.common.broker_compat).
- `container`: Apache Kafka in a container (testcontainers); skipped without a Docker engine.
KAFKA_BOOTSTRAP_SERVERS names a running broker instead (KAFKA_BROKER says which kind).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tidings.cli import apache_kafka
from tidings.cli.infra import (
    LLAMA_MODEL_ALIAS,
    InfraError,
    free_port,
    llama_server_command,
    tansu_binary,
    tansu_command,
    wait_for_http,
    wait_for_port,
)
from tidings.common.settings import KafkaSettings, LLMSettings
from tidings.memory.embedder import Embedder


class _Process:
    """A background process whose output goes to a log file shown when a test fails."""

    def __init__(self, name: str, argv: list[str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)

    def tail(self, lines: int = 40) -> str:
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
        self._log.close()


@pytest.fixture(scope="session")
def infra_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("infra")


# Lines for the end of the test report (which broker the session fell back to, and why).
_NOTES: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for note in _NOTES:
        terminalreporter.write_line(f"note: {note}", yellow=True)


def _start_tansu(logs: Path, mp: pytest.MonkeyPatch, name: str = "tansu") -> tuple[_Process, str]:
    mp.setenv("KAFKA_BROKER", "tansu")
    port = free_port()
    broker = _Process(name, tansu_command(port), logs)
    try:
        wait_for_port(port, timeout_s=30)
    except Exception:
        broker.stop()
        raise AssertionError(f"Tansu did not start:\n{broker.tail()}") from None
    return broker, f"127.0.0.1:{port}"


def _start_apache_kafka(logs: Path, mp: pytest.MonkeyPatch) -> tuple[_Process, str]:
    mp.setenv("KAFKA_BROKER", "kafka")
    node = apache_kafka.KafkaNode(
        port=free_port(), controller_port=free_port(), data_dir=logs / "kafka"
    )
    broker = _Process("kafka", node.prepare(), logs)
    try:
        wait_for_port(node.port, timeout_s=90)
    except Exception:
        broker.stop()
        raise AssertionError(f"Apache Kafka did not start:\n{broker.tail()}") from None
    return broker, node.bootstrap


@pytest.fixture(scope="session")
def kafka_bootstrap(infra_logs: Path) -> Iterator[str]:
    """A real broker: KAFKA_BOOTSTRAP_SERVERS, or one started here (see the module doc)."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    choice = os.environ.get("TIDINGS_TEST_BROKER", "kafka").strip().lower()
    with pytest.MonkeyPatch.context() as mp:
        if choice == "container":
            from tests.containers import kafka_container

            with kafka_container() as bootstrap:
                mp.setenv("KAFKA_BROKER", "kafka")
                yield bootstrap
            return
        if choice == "kafka":
            reason = apache_kafka.unavailable()
            if reason:
                _NOTES.append(f"Apache Kafka cannot run here ({reason}); tested on Tansu")
                choice = "tansu"
        start = _start_tansu if choice == "tansu" else _start_apache_kafka
        broker, bootstrap = start(infra_logs, mp)
        try:
            yield bootstrap
        finally:
            broker.stop()


@pytest.fixture(scope="session")
def tansu_bootstrap(infra_logs: Path) -> Iterator[str]:
    """A Tansu broker of the session's own, for the tests of tidings.common.broker_compat."""
    try:
        tansu_binary()
    except InfraError as exc:
        pytest.skip(f"needs the Tansu broker binary: {exc}")
    with pytest.MonkeyPatch.context() as mp:  # the session's own broker keeps its kind
        broker, bootstrap = _start_tansu(infra_logs, mp, name="tansu-compat")
    try:
        yield bootstrap
    finally:
        broker.stop()


@pytest.fixture
def tansu_settings(tansu_bootstrap: str) -> KafkaSettings:
    """Settings for the Tansu broker (KAFKA_BROKER=tansu: its workarounds on)."""
    return KafkaSettings(
        broker="tansu",
        bootstrap_servers=tansu_bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}-",
        topic_partitions=3,
    )


@pytest.fixture(scope="session")
def llm_base_url(infra_logs: Path) -> Iterator[str]:
    """An OpenAI-compatible LLM server: the bundled SmolLM2 on llama.cpp, started once."""
    external = os.environ.get("TIDINGS_TEST_OPENAI_BASE_URL")
    if external:
        yield external
        return
    port = free_port()
    server = _Process("llama-server", llama_server_command(port, threads=2), infra_logs)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        wait_for_http(f"{base}/models", timeout_s=120)
    except Exception:
        server.stop()
        raise AssertionError(f"llama.cpp server did not start:\n{server.tail()}") from None
    yield base
    server.stop()


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Broker settings with topic names no other test uses."""
    return KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}-",
        topic_partitions=3,
    )


@pytest.fixture
def llm_settings(llm_base_url: str) -> LLMSettings:
    """The OpenAI-compatible backend pointed at the test session's model server."""
    return LLMSettings(
        llm_backend="openai",
        openai_base_url=llm_base_url,
        openai_model=LLAMA_MODEL_ALIAS,
        llm_max_tokens=64,
        llm_timeout=60.0,
    )


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The packaged all-MiniLM-L6-v2 model, loaded once per session (loading takes seconds)."""
    return Embedder.load()


# How long the end of the session keeps cancelling the tasks tests left running.
LEFTOVER_TASKS_S = 30.0


@pytest.fixture(scope="session", autouse=True)
async def _leftover_tasks_end() -> AsyncIterator[None]:
    """At the end of the session, cancel every task still running in the session's event
    loop (a client some test left open) until it ends, for at most LEFTOVER_TASKS_S.

    The loop's own close cancels each task once and then waits for all of them, forever if
    one missed that cancellation: aiokafka swallows a CancelledError that lands in some of
    its awaits (its fetcher's committed-offset and offset-reset lookups) and goes on. One
    more cancellation a moment later lands elsewhere and ends it.
    """
    yield
    me = asyncio.current_task()
    deadline = time.monotonic() + LEFTOVER_TASKS_S
    pending = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    while pending and time.monotonic() < deadline:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=0.5)
        pending = [t for t in pending if not t.done()]
    if pending:
        names = sorted(t.get_name() for t in pending)
        print(f"\n{len(pending)} task(s) still running at the end: {names}", file=sys.stderr)
