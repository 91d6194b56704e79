"""A memory-mode broker restart under a running responder: the new messages are answered.

Tansu in memory mode forgets everything when it restarts and numbers records from 0 again,
while the responder keeps its positions. When the group is rebuilt after the restart, the
responder commits the positions of its revoked partitions to the new broker (Tansu accepts
them), so after the reassignment it resumes at its old position, beyond the new log's end.
Tansu answers such a fetch with nothing instead of OFFSET_OUT_OF_RANGE: without care the
responder waits there and never sees the messages that arrive below it (seen in the chaos
drill: three messages accepted after a broker restart were never answered).
"""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from test_gateway_broker_incarnation import Broker, broker  # noqa: F401 - the fixture
from test_responder_support import responses, send

from tidings.common.kafka import ensure_topics, kafka_producer
from tidings.common.memory_api import MemoryApiSettings
from tidings.common.settings import KafkaSettings, LLMSettings
from tidings.responder.service import ResponderService
from tidings.responder.settings import ResponderSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def commit_old_position(kafka: KafkaSettings, group: str, offset: int) -> None:
    """Commit `offset` for the group in the new broker, as the responder's revoke does."""
    consumer = AIOKafkaConsumer(group_id=group, enable_auto_commit=False, **kafka.client_kwargs())
    await consumer.start()
    try:
        tp = TopicPartition(kafka.user_messages_topic, 0)
        consumer.assign([tp])
        await consumer.commit({tp: offset})
    finally:
        await consumer.stop()


async def test_messages_after_a_broker_restart_are_answered(broker: Broker) -> None:  # noqa: F811
    kafka = KafkaSettings(
        broker="tansu",  # a Tansu of the test's own (broker_compat on)
        bootstrap_servers=broker.bootstrap,
        topic_prefix="restart-",
        topic_partitions=1,
    )
    settings = ResponderSettings(
        host="127.0.0.1",
        port=0,
        group_id="restart-responder",
        kafka=kafka,
        llm=LLMSettings(llm_backend="echo"),
        memory=MemoryApiSettings(url=""),
    )
    await ensure_topics(kafka)
    # Five answers before the restart move the responder's position to 5.
    async with (
        ResponderService(settings),
        responses(kafka) as reader,
        kafka_producer(kafka, name="before") as producer,
    ):
        before = [
            await send(producer, kafka, "restart-session", f"Tell me about ships {i}")
            for i in range(5)
        ]
        await reader.until_terminal(*before, timeout_s=60)
    broker.stop()
    broker.start()
    await ensure_topics(kafka)  # a memory-mode broker comes back without topics
    # What the drill's responders did while the group was rebuilt: the old position lands
    # in the new broker (a commit while the new broker knew no member of the group).
    await commit_old_position(kafka, settings.group_id, 5)
    async with responses(kafka) as reader, kafka_producer(kafka, name="after") as producer:
        # Two messages in the new log, below the old position.
        after = [
            await send(producer, kafka, "restart-session", f"Tell me about trains {i}")
            for i in range(2)
        ]
        assert all(sent.offset < 5 for sent in after)
        async with ResponderService(settings):
            await reader.until_terminal(*after, timeout_s=60)
        for sent in after:
            done = reader.terminal(sent.message.message_id)
            assert done is not None and done.schema_ == "response.done.v1"
