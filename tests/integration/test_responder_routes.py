"""Routing on the real broker: the order-status tool against a local orders API, and a failing
backend handing over to the second one, then to the fallback text."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from test_responder_support import FakeOllama, responder_process, responses, send

from tidings.cli.infra import free_port
from tidings.common.events import ResponseDone
from tidings.common.kafka import kafka_producer
from tidings.common.memory_api import MemoryApiSettings
from tidings.common.runtime import HttpServer
from tidings.common.settings import KafkaSettings, LLMSettings
from tidings.responder.llm import BackendSettings
from tidings.responder.service import ResponderService
from tidings.responder.settings import ResponderSettings

pytestmark = pytest.mark.integration

FALLBACK = "I'm not sure about that. Please contact support@bookstore.com for assistance."
ORDERS = {"123456": {"status": "shipped", "eta": "2026-11-24"}, "222333": {"status": "processing"}}


def orders_api(state: dict[str, Any]) -> Starlette:
    async def status(request: Request) -> Response:
        state["calls"].append(request.path_params["order_id"])
        if state["down"]:
            return JSONResponse({"error": "database down"}, status_code=503)
        order = ORDERS.get(request.path_params["order_id"])
        if order is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return JSONResponse(order)

    return Starlette(routes=[Route("/api/orders/{order_id}/status", status)])


async def test_order_numbers_are_answered_by_the_tool_and_the_rest_by_faq(
    kafka_settings: KafkaSettings,
) -> None:
    state: dict[str, Any] = {"calls": [], "down": False}
    api = HttpServer(orders_api(state), "127.0.0.1", 0, name="orders-test")
    await api.start()
    settings = ResponderSettings(
        host="127.0.0.1",
        port=0,
        group_id=f"{kafka_settings.topic_prefix}responder",
        kafka=kafka_settings,
        llm=LLMSettings(llm_backend="echo"),
        memory=MemoryApiSettings(url=""),
        orders_api_url=f"http://127.0.0.1:{api.port}",
    )
    kafka = kafka_settings
    try:
        async with (
            responses(kafka) as reader,
            kafka_producer(kafka, name="test") as producer,
            ResponderService(settings),
        ):
            found = await send(producer, kafka, "s1", "Where is my order #123456?")
            eta_less = await send(producer, kafka, "s2", "status of 222333 please")
            unknown = await send(producer, kafka, "s3", "What about order 999999?")
            no_number = await send(producer, kafka, "s4", "Where is my order?")
            await reader.until_terminal(found, eta_less, unknown, no_number, timeout_s=60)
            state["down"] = True
            down = await send(producer, kafka, "s1", "And #123456 now?")
            await reader.until_terminal(down, timeout_s=60)
    finally:
        await api.stop()

    def done(sent: Any) -> ResponseDone:
        terminal = reader.terminal(sent.message.message_id)
        assert isinstance(terminal, ResponseDone), terminal
        return terminal

    assert (done(found).source, done(found).text) == (
        "tool",
        "Order #123456 is shipped. Estimated delivery: 2026-11-24.",
    )
    assert done(eta_less).text == "Order #222333 is processing."
    assert done(unknown).source == "tool" and "couldn't find an order" in done(unknown).text
    assert done(no_number).source == "faq" and "order number" in done(no_number).text
    assert done(down).source == "tool"
    assert done(down).text.startswith("I can't look up order #123456 right now")
    assert sorted(state["calls"]) == ["123456", "123456", "222333", "999999"]


def metric(exposition: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def test_a_dead_backend_hands_over_to_the_second_and_then_to_the_fallback(
    kafka_settings: KafkaSettings,
) -> None:
    ollama = FakeOllama()
    server = HttpServer(ollama.app(), "127.0.0.1", 0, name="ollama-test")
    await server.start()
    settings = ResponderSettings(
        host="127.0.0.1",
        port=0,
        group_id=f"{kafka_settings.topic_prefix}responder",
        kafka=kafka_settings,
        # The first backend's server is not there at all (connection refused).
        llm=LLMSettings(
            llm_backend="openai",
            openai_base_url=f"http://127.0.0.1:{free_port()}/v1",
            ollama_url=f"http://127.0.0.1:{server.port}",
            ollama_model="llama3.2:1b",
            llm_timeout=10,
        ),
        backends=BackendSettings(llm_fallback_backend="ollama", llm_breaker_failures=2),
        memory=MemoryApiSettings(url=""),
    )
    kafka = kafka_settings
    try:
        async with (
            responses(kafka) as reader,
            kafka_producer(kafka, name="test") as producer,
            ResponderService(settings) as service,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}") as http,
        ):
            before = (await http.get("/metrics")).text
            second = []
            for i in range(3):  # one after the other, so the breaker's count is exact
                second.append(await send(producer, kafka, f"s{i}", "Tell me about dragons"))
                await reader.until_terminal(second[-1], timeout_s=60)
            ollama.mode = "error-object"
            fallback = await send(producer, kafka, "s9", "Tell me about dragons")
            await reader.until_terminal(fallback, timeout_s=60)
            after = (await http.get("/metrics")).text
    finally:
        await server.stop()

    for sent in second:
        done = reader.terminal(sent.message.message_id)
        assert isinstance(done, ResponseDone), done
        assert (done.source, done.text, done.model) == (
            "llm",
            "Ollama says hello there.",
            "llama3.2:1b",
        )
        assert done.usage.completion_tokens == 4
    done = reader.terminal(fallback.message.message_id)
    assert isinstance(done, ResponseDone) and (done.source, done.text) == ("fallback", FALLBACK)
    # The system prompt and the question reached Ollama in its own message format.
    assert ollama.requests[0]["messages"][-1] == {
        "role": "user",
        "content": "Tell me about dragons",
    }
    assert ollama.requests[0]["stream"] is True

    def grew(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert grew("tidings_responder_answers_total", source="llm", backend="ollama") == 3
    assert grew("tidings_responder_answers_total", source="fallback") == 1
    # Two refusals opened the openai circuit: later messages skipped it without trying.
    assert (
        grew("tidings_responder_llm_backend_errors_total", backend="openai", code="llm_unavailable")
        == 2
    )
    assert (
        grew("tidings_responder_llm_backend_errors_total", backend="openai", code="circuit_open")
        == 2
    )
    assert metric(after, "tidings_responder_llm_circuit_state", backend="openai") == 1
    # Consumer lag per partition: everything fetched, nothing left behind.
    lag = {
        sample.labels["partition"]: sample.value
        for family in text_string_to_metric_families(after)
        for sample in family.samples
        if sample.name == "tidings_responder_consumer_lag"
    }
    assert lag == {"0": 0, "1": 0, "2": 0}


FAQ = """
fallback: Ask a human.
intents:
  - id: hours
    answer: {answer}
    phrases: [opening hours]
"""


async def test_sighup_reloads_the_faq_and_a_broken_file_keeps_the_old_one(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    kafka = kafka_settings
    faq = tmp_path / "faq.yaml"
    faq.write_text(FAQ.format(answer="We open at nine."))
    async with (
        responses(kafka) as reader,
        kafka_producer(kafka, name="test") as producer,
        responder_process(kafka, tmp_path / "responder.log", RESPONDER_FAQ_PATH=str(faq)) as proc,
    ):
        await proc.until_logged("partitions assigned")
        assert proc.proc is not None

        async def ask() -> str:
            sent = await send(producer, kafka, "s-hours", "What are your opening hours?")
            await reader.until_terminal(sent, timeout_s=30)
            done = reader.terminal(sent.message.message_id)
            assert isinstance(done, ResponseDone) and done.source == "faq", done
            return done.text

        assert await ask() == "We open at nine."
        faq.write_text(FAQ.format(answer="We open at eight."))
        proc.proc.send_signal(signal.SIGHUP)
        await proc.until_logged("FAQ reloaded")
        assert await ask() == "We open at eight."
        faq.write_text("intents: [not: valid")
        proc.proc.send_signal(signal.SIGHUP)
        await proc.until_logged("FAQ reload failed; keeping the previous FAQ")
        assert await ask() == "We open at eight."
        assert proc.proc.returncode is None
