"""`tidings dev` (what `make run` runs): every part as its own process, one command.

This is the path a user takes first, so it is tested as a user runs it: a real process tree
(Apache Kafka, or Tansu without Java; llama.cpp server, memory, responder, gateway), real
HTTP, then Ctrl-C.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tidings.cli.infra import free_port

pytestmark = pytest.mark.integration


class _Output:
    """Collects a process's output lines on a thread, so the test can wait for one."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            self._queue.put(line)

    def wait_for(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if text in self._queue.get(timeout=0.5):
                    return
            except queue.Empty:
                continue
        raise AssertionError(f"{text!r} not seen; output:\n" + "\n".join(self.lines[-60:]))

    def text(self) -> str:
        return "\n".join(self.lines)

    def close(self, proc: subprocess.Popen[bytes]) -> None:
        self._thread.join(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _dev_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KAFKA_", "LLM_", "OPENAI_", "OLLAMA_", "GATEWAY_", "QDRANT_"))
    }
    env.update(
        TIDINGS_BROKER_PORT=str(free_port()),
        TIDINGS_BROKER_CONTROLLER_PORT=str(free_port()),
        TIDINGS_DEV_KAFKA_DIR=str(tmp_path / "kafka"),
        TIDINGS_LLM_PORT=str(free_port()),
        GATEWAY_PORT=str(free_port()),
        MEMORY_PORT=str(free_port()),
        RESPONDER_PORT=str(free_port()),
        STORE_PORT=str(free_port()),
        QDRANT_PATH=str(tmp_path / "qdrant"),
    )
    env.update(extra)
    return env


def _tidings(*args: str) -> list[str]:
    return [sys.executable, "-m", "tidings.cli.main", *args]


def test_dev_runs_the_whole_stack_and_stops_cleanly(tmp_path: Path) -> None:
    env = _dev_env(tmp_path)
    proc = subprocess.Popen(
        _tidings("dev"),
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = _Output(proc)
    try:
        output.wait_for("Tidings is ready", timeout_s=240)
        base = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
        with httpx.Client(base_url=base, timeout=60) as client:
            accepted = client.post("/chat", json={"message": "What is your return policy?"})
            assert accepted.status_code == 202, accepted.text
            body = accepted.json()
            events: list[tuple[str, dict[str, object]]] = []
            with client.stream("GET", body["stream_url"]) as stream:
                event = ""
                for line in stream.iter_lines():
                    if line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:"):
                        events.append((event, json.loads(line.split(":", 1)[1])))
            assert [name for name, _ in events][-1] == "done"
            assert events[-1][1]["source"] == "faq"
            assert "30 days" in str(events[-1][1]["text"])
            # The bundled store answers the order tool (its sample order 531873).
            order = client.post(
                "/chat",
                json={"message": "Where is my order #531873? alan@example.com"},
                headers={"accept": "text/event-stream"},
            )
            done = json.loads(order.text.split("event: done", 1)[1].split("data:", 1)[1])
            assert (done["source"], done["tool"]) == ("tool", "order_status"), done
            assert str(done["text"]).startswith("Order #531873 has shipped"), done
        # Every service's log reaches the terminal with its name in front.
        text = output.text()
        for name in ("broker", "llm", "store", "memory", "responder", "gateway"):
            assert any(line.startswith(f"{name:<9}|") for line in output.lines), name
        assert "Traceback" not in text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            output.close(proc)
    assert code == 0, output.text()[-3000:]
    output.wait_for("stopped", timeout_s=5)
    assert "Traceback" not in output.text()


def test_taken_port_gets_a_clear_message_not_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        result = subprocess.run(
            _tidings("dev"),
            env=_dev_env(tmp_path, GATEWAY_PORT=str(taken)),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert f"port {taken} (for the gateway) is already in use" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_service_alone_reports_a_taken_port_clearly(tmp_path: Path, kafka_bootstrap: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        env = _dev_env(
            tmp_path,
            KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
            GATEWAY_HOST="127.0.0.1",
            GATEWAY_PORT=str(taken),
        )
        result = subprocess.run(
            _tidings("gateway"),
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "already in use" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
