"""The responder against the real broker and the real llama.cpp model server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from prometheus_client.parser import text_string_to_metric_families

from tidings.common.events import (
    AnyResponseEvent,
    ResponseDelta,
    ResponseDone,
    ResponseError,
    ResponseStart,
    UserMessage,
    parse_response_event,
)
from tidings.common.kafka import ensure_topics, kafka_consumer, kafka_producer, publish
from tidings.common.settings import KafkaSettings, LLMSettings
from tidings.common.tracing import TRACEPARENT_HEADER, new_traceparent, trace_id_of
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
        shutdown_grace_s=60,
    )


@dataclass(frozen=True)
class Sent:
    message: UserMessage
    traceparent: str
    partition: int
    offset: int


class Responses:
    """Reads every partition of `model_responses`, as a gateway replica does."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        self.events: dict[str, list[AnyResponseEvent]] = {}
        self.traceparents: dict[str, set[str]] = {}

    async def wait_for(
        self, done: Callable[[], bool], *, timeout_s: float = 120, what: str = "responses"
    ) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                while not done():
                    batches = await self._consumer.getmany(timeout_ms=100)
                    for records in batches.values():
                        for record in records:
                            self._add(record)
        except TimeoutError:
            raise AssertionError(f"no {what} within {timeout_s}s: {self.events}") from None

    def _add(self, record: ConsumerRecord[bytes, bytes]) -> None:
        event = parse_response_event(record.value or b"")
        self.events.setdefault(event.message_id, []).append(event)
        for key, value in record.headers:
            if key == TRACEPARENT_HEADER:
                self.traceparents.setdefault(event.message_id, set()).add(value.decode())

    async def until_terminal(self, *sent: Sent, timeout_s: float = 120) -> None:
        await self.wait_for(
            lambda: all(self.terminal(s.message.message_id) for s in sent),
            timeout_s=timeout_s,
            what="terminal events",
        )

    async def until_first_delta(self, sent: Sent) -> None:
        await self.wait_for(
            lambda: any(isinstance(e, ResponseDelta) for e in self.of(sent)), what="delta"
        )

    def of(self, sent: Sent) -> list[AnyResponseEvent]:
        return self.events.get(sent.message.message_id, [])

    def terminal(self, message_id: str) -> ResponseDone | ResponseError | None:
        for event in self.events.get(message_id, []):
            if isinstance(event, ResponseDone | ResponseError):
                return event
        return None


@asynccontextmanager
async def responses(kafka: KafkaSettings) -> AsyncIterator[Responses]:
    await ensure_topics(kafka)
    async with kafka_consumer(
        kafka, kafka.model_responses_topic, group_id=None, name="test-reader"
    ) as consumer:
        yield Responses(consumer)


async def send(producer: AIOKafkaProducer, kafka: KafkaSettings, session: str, text: str) -> Sent:
    """Publish a user message as the gateway does, with a trace context."""
    message = UserMessage(message_id=uuid.uuid4().hex, session_id=session, text=text)
    traceparent = new_traceparent()
    meta = await publish(
        producer,
        kafka.user_messages_topic,
        message,
        key=session,
        headers=[(TRACEPARENT_HEADER, traceparent.encode())],
    )
    return Sent(message, traceparent, meta.partition, meta.offset)


async def committed_offsets(kafka: KafkaSettings, group_id: str) -> dict[int, int]:
    """The group's committed position per partition of `user_messages` (absent: none)."""
    # A consumer that never subscribes reads the group's offsets without joining it.
    consumer = AIOKafkaConsumer(
        group_id=group_id, enable_auto_commit=False, **kafka.client_kwargs()
    )
    await consumer.start()
    try:
        result: dict[int, int] = {}
        for partition in range(kafka.topic_partitions):
            tp = TopicPartition(kafka.user_messages_topic, partition)
            committed = await consumer.committed(tp)
            if committed is not None:
                result[partition] = committed
        return result
    finally:
        await consumer.stop()


def answers_by_source(exposition: str) -> dict[str, float]:
    """`tidings_responder_answers_total` per source, from a /metrics page."""
    return {
        sample.labels["source"]: sample.value
        for family in text_string_to_metric_families(exposition)
        if family.name == "tidings_responder_answers"
        for sample in family.samples
        if sample.name == "tidings_responder_answers_total"
    }


def positions_after(offsets: list[tuple[int, int]]) -> dict[int, int]:
    """For (partition, offset) pairs: the position just past the last of each partition."""
    result: dict[int, int] = {}
    for partition, offset in offsets:
        result[partition] = max(result.get(partition, 0), offset + 1)
    return result


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
        assert b"invalid user_message.v1" in headers["dlq.reason"]
        assert headers["dlq.source.offset"] == str(bad.offset).encode()

    assert await committed_offsets(kafka, settings.group_id) == positions_after(
        [(bad.partition, bad.offset), (good.partition, good.offset)]
    )


async def test_an_answer_abandoned_at_shutdown_is_redelivered_and_answered_again(
    settings: ResponderSettings,
) -> None:
    kafka = settings.kafka
    impatient = settings.model_copy(update={"shutdown_grace_s": 0.0})
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
