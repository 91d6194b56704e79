"""The responder against the real broker and the real llama.cpp model server."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from aiokafka.structs import ConsumerRecord
from test_responder_support import (
    answers_by_source,
    committed_offsets,
    positions_after,
    responses,
    send,
)

from tidings.common.events import (
    ResponseDelta,
    ResponseDone,
    ResponseStart,
)
from tidings.common.kafka import kafka_consumer, kafka_producer
from tidings.common.memory_api import MemoryApiSettings
from tidings.common.settings import KafkaSettings, LLMSettings
from tidings.common.tracing import trace_id_of
from tidings.responder.service import ResponderService
from tidings.responder.settings import ResponderSettings

pytestmark = pytest.mark.integration

RETURNS = "We accept returns within 30 days. Books must be in original condition."
ORDER_STATUS = "I can help you track your order. Please provide your order number."


@pytest.fixture
def settings(kafka_settings: KafkaSettings, llm_settings: LLMSettings) -> ResponderSettings:
    return ResponderSettings(
        host="127.0.0.1",
        port=0,
        group_id=f"{kafka_settings.topic_prefix}responder",
        kafka=kafka_settings,
        llm=llm_settings.model_copy(update={"llm_max_tokens": 48}),
        grace_s=60,
        memory=MemoryApiSettings(url=""),
    )


async def test_faq_and_llm_answers_stream_and_are_committed(settings: ResponderSettings) -> None:
    kafka = settings.kafka
    async with responses(kafka) as reader, kafka_producer(kafka, name="test") as producer:
        async with (
            ResponderService(settings) as service,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}") as http,
        ):
            answers_before = answers_by_source((await http.get("/metrics")).text)
            faq = await send(producer, kafka, "s-faq", "Hi, what is your return policy?")
            llm = await send(producer, kafka, "s-llm", "Tell me a short story about a dragon")
            await reader.until_terminal(faq, llm)

            assert (await http.get("/health")).status_code == 200
            ready = await http.get("/ready")
            answers_after = answers_by_source((await http.get("/metrics")).text)
        assert ready.status_code == 200, ready.text
        for source in ("faq", "llm"):
            assert answers_after[source] - answers_before.get(source, 0) == 1

        faq_events = reader.of(faq)
        assert isinstance(faq_events[0], ResponseStart) and faq_events[0].source == "faq"
        faq_deltas = [e for e in faq_events if isinstance(e, ResponseDelta)]
        assert faq_deltas and "".join(d.text for d in faq_deltas) == RETURNS
        done = faq_events[-1]
        assert isinstance(done, ResponseDone)
        assert (done.source, done.text) == ("faq", RETURNS)
        # The answer continues the message's trace.
        assert {trace_id_of(t) for t in reader.traceparents[faq.message.message_id]} == {
            trace_id_of(faq.traceparent)
        }

        llm_events = reader.of(llm)
        assert isinstance(llm_events[0], ResponseStart)
        llm_deltas = [e for e in llm_events if isinstance(e, ResponseDelta)]
        done = llm_events[-1]
        assert isinstance(done, ResponseDone), done
        assert done.source == "llm"
        assert done.model and done.text.strip()
        assert len(llm_deltas) >= 2
        assert [d.seq for d in llm_deltas] == list(range(len(llm_deltas)))
        assert "".join(d.text for d in llm_deltas) == done.text
        assert done.timings.first_token_ms is not None and done.timings.total_ms is not None
        assert len({e.attempt for e in llm_events}) == 1

    assert await committed_offsets(kafka, settings.group_id) == positions_after(
        [(faq.partition, faq.offset), (llm.partition, llm.offset)]
    )


async def test_invalid_record_is_dead_lettered_and_the_next_message_answered(
    settings: ResponderSettings,
) -> None:
    kafka = settings.kafka
    async with responses(kafka) as reader, kafka_producer(kafka, name="test") as producer:
        bad = await producer.send_and_wait(kafka.user_messages_topic, b"{not json", key=b"s-poison")
        async with ResponderService(settings):
            good = await send(producer, kafka, "s-poison", "Where is my order?")
            await reader.until_terminal(good)
        done = reader.terminal(good.message.message_id)
        assert isinstance(done, ResponseDone) and done.text == ORDER_STATUS
        # Same session, same partition: it was queued behind the poison record.
        assert (good.partition, good.offset) == (bad.partition, bad.offset + 1)

        dead: list[ConsumerRecord[bytes, bytes]] = []
        async with kafka_consumer(
            kafka, kafka.dlq_topic(kafka.user_messages_topic), group_id=None, name="test-dlq"
        ) as dlq:
            async with asyncio.timeout(30):
                while not dead:
                    for records in (await dlq.getmany(timeout_ms=200)).values():
                        dead.extend(records)
        headers = dict(dead[0].headers)
        assert dead[0].value == b"{not json"
        assert b"invalid user_messages event" in headers["dlq.reason"]
        assert headers["dlq.source.offset"] == str(bad.offset).encode()

    assert await committed_offsets(kafka, settings.group_id) == positions_after(
        [(bad.partition, bad.offset), (good.partition, good.offset)]
    )


async def test_an_answer_abandoned_at_shutdown_is_redelivered_and_answered_again(
    settings: ResponderSettings,
) -> None:
    kafka = settings.kafka
    impatient = settings.model_copy(update={"grace_s": 0.0})
    async with responses(kafka) as reader, kafka_producer(kafka, name="test") as producer:
        async with ResponderService(impatient):
            story = await send(producer, kafka, "s-abandon", "Tell me a short story about a dragon")
            await reader.until_first_delta(story)
        # Stopped mid-answer with no grace: the message was not committed.
        assert reader.terminal(story.message.message_id) is None
        committed = await committed_offsets(kafka, settings.group_id)
        assert committed.get(story.partition, 0) <= story.offset

        async with ResponderService(settings):
            await reader.until_terminal(story)
        done = reader.terminal(story.message.message_id)
        assert isinstance(done, ResponseDone) and done.source == "llm"
        # A second attempt, so clients reset the half-streamed first one.
        assert len({e.attempt for e in reader.of(story)}) == 2

    assert await committed_offsets(kafka, settings.group_id) == {story.partition: story.offset + 1}


async def test_a_second_replica_takes_over_partitions_without_losing_messages(
    settings: ResponderSettings,
) -> None:
    kafka = settings.kafka
    texts = ["Where is my order?", "What is your return policy?", "How do I pay?"]
    async with responses(kafka) as reader, kafka_producer(kafka, name="test") as producer:
        async with ResponderService(settings) as first:
            before = [await send(producer, kafka, f"s{i}", texts[i % 3]) for i in range(6)]
            await reader.until_terminal(*before)
            async with ResponderService(settings) as second:
                # The group rebalances: each replica ends up with part of the partitions.
                for _ in range(600):
                    if first.assigned_partitions and second.assigned_partitions:
                        break
                    await asyncio.sleep(0.2)
                shares = [first.assigned_partitions, second.assigned_partitions]
                assert sorted(shares[0] + shares[1]) == [0, 1, 2], shares
                after = [await send(producer, kafka, f"s{i}", texts[i % 3]) for i in range(6)]
                await reader.until_terminal(*after)
        for sent in before + after:
            done = reader.terminal(sent.message.message_id)
            assert isinstance(done, ResponseDone) and done.source == "faq"

    every = [(s.partition, s.offset) for s in before + after]
    assert await committed_offsets(kafka, settings.group_id) == positions_after(every)
