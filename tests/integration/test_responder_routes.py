"""Routing on the real broker: the store's tools (against the real store process) before the
FAQ, counted per tool, and a failing backend handing over to the second one, then to the
fallback text."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from test_responder_support import FakeOllama, responder_process, responses, send

from tests.store_process import StoreProcess
from tidings.cli.infra import free_port
from tidings.common.events import ResponseDone
from tidings.common.kafka import kafka_producer
from tidings.common.memory_api import MemoryApiSettings
from tidings.common.runtime import HttpServer
from tidings.common.settings import KafkaSettings, LLMSettings
from tidings.responder.llm import BackendSettings
from tidings.responder.service import ResponderService
from tidings.responder.settings import ResponderSettings
from tidings.store.models import Order

pytestmark = pytest.mark.integration

FALLBACK = "I'm not sure about that. Please contact support@bookstore.com for assistance."


async def test_tools_answer_before_the_faq_and_are_counted_per_tool(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    store = StoreProcess(tmp_path).start()
    db = store.database()
    with db.session() as session:
        order = session.scalars(select(Order).where(Order.status == "shipped")).first()
        assert order is not None
        number, email = order.number, order.customer_email
    db.close()
    settings = ResponderSettings(
        host="127.0.0.1",
        port=0,
        group_id=f"{kafka_settings.topic_prefix}responder",
        kafka=kafka_settings,
        llm=LLMSettings(llm_backend="echo"),
        memory=MemoryApiSettings(url=""),
        store_api_url=store.url,
    )
    kafka = kafka_settings
    try:
        async with (
            responses(kafka) as reader,
            kafka_producer(kafka, name="test") as producer,
            ResponderService(settings) as service,
        ):
            found = await send(producer, kafka, "s1", f"Where is my order #{number}? {email}")
            unknown = await send(producer, kafka, "s2", "What about order 999999? me@example.com")
            asked = await send(producer, kafka, "s3", "Where is my order?")
            books = await send(producer, kafka, "s4", "Any good thrillers to recommend?")
            faq = await send(producer, kafka, "s5", "What is your return policy?")
            await reader.until_terminal(found, unknown, asked, books, faq, timeout_s=60)
            store.stop()
            down = await send(producer, kafka, "s1", f"And #{number} now?")
            await reader.until_terminal(down, timeout_s=60)
            async with httpx.AsyncClient() as http:
                exposition = (await http.get(f"http://127.0.0.1:{service.port}/metrics")).text
    finally:
        store.stop()

    def done(sent: Any) -> ResponseDone:
        terminal = reader.terminal(sent.message.message_id)
        assert isinstance(terminal, ResponseDone), terminal
        return terminal

    assert (done(found).source, done(found).tool) == ("tool", "order_status")
    assert done(found).text.startswith(f"Order #{number} has shipped")
    assert "couldn't find an order #999999" in done(unknown).text
    assert done(asked).tool == "order_status" and "order number" in done(asked).text
    assert (done(books).source, done(books).tool) == ("tool", "recommendations")
    assert done(faq).source == "faq" and done(faq).tool is None
    assert done(down).text.startswith("I can't reach our order system right now")
    calls = "tidings_responder_tool_calls_total"
    for tool, outcome in [
        ("order_status", "found"),
        ("order_status", "not_found"),
        ("order_status", "asked"),
        ("order_status", "unavailable"),
        ("recommendations", "found"),
    ]:
        assert metric(exposition, calls, tool=tool, outcome=outcome) >= 1, (tool, outcome)
    seconds = "tidings_responder_tool_seconds_count"
    assert metric(exposition, seconds, tool="order_status") >= 4
    assert metric(exposition, seconds, tool="recommendations") >= 1


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
    assert metric(after, "tidings_responder_llm_circuit_state", backend="openai", state="open") == 1
    assert (
        metric(after, "tidings_responder_llm_circuit_state", backend="openai", state="closed") == 0
    )
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
