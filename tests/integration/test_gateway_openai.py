"""The official `openai` SDK against a real gateway, answered by an in-test fake responder
that publishes answer events on the real broker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import openai
import pytest
from aiokafka import AIOKafkaProducer
from test_gateway import wait_until

from tidings.common.events import (
    ResponseDelta,
    ResponseDone,
    ResponseStart,
    SourceRef,
    Usage,
    UserMessage,
    parse_inbound_event,
)
from tidings.common.kafka import kafka_consumer, kafka_producer, publish
from tidings.common.settings import KafkaSettings
from tidings.gateway.service import GatewayService
from tidings.gateway.settings import GatewaySettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def reply_to(text: str) -> list[str]:
    """The fake model's answer: it echoes the question in three chunks."""
    return ["You ", "asked: ", text]


async def fake_responder(
    kafka: KafkaSettings, producer: AIOKafkaProducer, ready: asyncio.Event
) -> None:
    async with kafka_consumer(
        kafka,
        kafka.user_messages_topic,
        group_id=None,
        name="fake-responder",
        auto_offset_reset="latest",
    ) as consumer:
        # Without a group the consumer takes every partition once metadata arrives; fixing
        # its positions before the test posts anything means no message can be missed.
        await wait_until(lambda: len(consumer.assignment()) == kafka.topic_partitions, 10)
        for tp in consumer.assignment():
            await consumer.position(tp)
        ready.set()
        async for record in consumer:
            event = parse_inbound_event(record.value or b"")
            if not isinstance(event, UserMessage):
                continue
            ids = {"session_id": event.session_id, "message_id": event.message_id, "attempt": "a1"}
            chunks = reply_to(event.text)
            events = [
                ResponseStart(**ids, source="llm", model="fake"),
                *(ResponseDelta(**ids, seq=i, text=c) for i, c in enumerate(chunks)),
                ResponseDone(
                    **ids,
                    text="".join(chunks),
                    source="llm",
                    model="fake",
                    usage=Usage(prompt_tokens=5, completion_tokens=3),
                    sources=[SourceRef(title="Shipping > Abroad", url="kb://shipping", score=0.8)],
                ),
            ]
            for answer in events:
                await publish(producer, kafka.model_responses_topic, answer, key=event.session_id)


@pytest.fixture
async def base_url(kafka_settings: KafkaSettings) -> AsyncIterator[str]:
    settings = GatewaySettings(host="127.0.0.1", port=0, kafka=kafka_settings, memory={"url": ""})
    ready = asyncio.Event()
    async with (
        GatewayService(settings) as service,
        kafka_producer(kafka_settings, name="fake-responder") as producer,
    ):
        task = asyncio.create_task(fake_responder(kafka_settings, producer, ready))
        await asyncio.wait_for(ready.wait(), 15)
        try:
            yield f"http://127.0.0.1:{service.port}/v1"
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_the_openai_sdk_lists_models_and_gets_a_completion(base_url: str) -> None:
    async with openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0) as client:
        models = await client.models.list()
        completion = await client.chat.completions.create(
            model="tidings",
            messages=[
                {"role": "system", "content": "ignored: Tidings has its own prompt"},
                {"role": "user", "content": "Do you ship abroad?"},
            ],
            user="sdk-session-0001",
        )

    assert [model.id for model in models.data] == ["tidings"]
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "You asked: Do you ship abroad?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 8
    # The knowledge the answer used travels as an extension field the SDK keeps.
    assert (completion.model_extra or {})["sources"] == [
        {"title": "Shipping > Abroad", "url": "kb://shipping", "score": 0.8}
    ]


async def test_the_openai_sdk_streams_chunks_to_the_end(base_url: str) -> None:
    async with openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="tidings",
            messages=[{"role": "user", "content": "Is it raining?"}],
            stream=True,
            extra_headers={"X-Session-Id": "sdk-stream-session"},
        )
        chunks = [chunk async for chunk in stream]

    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == "You asked: Is it raining?"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert (chunks[-1].model_extra or {})["sources"][0]["title"] == "Shipping > Abroad"
    assert len(chunks) >= 4  # role, the three chunks, stop


async def test_openai_errors_have_the_openai_shape(base_url: str) -> None:
    async with openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="tidings", messages=[{"role": "assistant", "content": "not a question"}]
            )

    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "invalid_request_error"
    assert body["param"] == "messages"
