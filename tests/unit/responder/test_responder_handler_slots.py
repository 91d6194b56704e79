"""RESPONDER_MAX_CONCURRENCY slots: waiting messages can be cancelled or abandoned at shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.structs import ConsumerRecord

from tidings.common.events import UserMessage
from tidings.common.settings import KafkaSettings
from tidings.responder.handler import MessageHandler
from tidings.responder.partition import Record


class FakeProducer:
    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class FakeRouter:
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.answered: list[str] = []
        self.cancelled_ids: list[str] = []

    async def answer(self, message: UserMessage, emit: Any, *, cancel: asyncio.Event) -> None:
        await self.release.wait()
        self.answered.append(message.message_id)

    async def cancelled(self, message: UserMessage, emit: Any) -> None:
        self.cancelled_ids.append(message.message_id)


def record(offset: int, message_id: str) -> Record:
    value = UserMessage(message_id=message_id, session_id=message_id, text="hi").to_bytes()
    return ConsumerRecord(
        topic="user_messages",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=message_id.encode(),
        value=value,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=len(value),
        headers=[],
    )


def handler(router: FakeRouter) -> MessageHandler:
    return MessageHandler(
        router,  # type: ignore[arg-type]
        FakeProducer(),  # type: ignore[arg-type]
        KafkaSettings(),
        group_id="g",
        max_concurrency=1,
    )


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_a_message_waiting_for_a_slot_is_cancelled_at_once() -> None:
    router = FakeRouter()
    handle = handler(router)
    first = asyncio.create_task(handle(record(0, "a")))
    second = asyncio.create_task(handle(record(1, "b")))
    await settle()
    assert handle.cancels.cancel("b", ("b", None)) is True  # waiting for the one slot
    await asyncio.wait_for(second, 1)
    assert router.cancelled_ids == ["b"]
    router.release.set()
    await first
    assert router.answered == ["a"]


async def test_draining_abandons_waiting_messages_and_lets_running_ones_finish() -> None:
    router = FakeRouter()
    handle = handler(router)
    first = asyncio.create_task(handle(record(0, "a")))
    second = asyncio.create_task(handle(record(1, "b")))
    await settle()
    handle.drain()
    await asyncio.wait({second}, timeout=1)
    assert second.cancelled()  # uncommitted: redelivered to the next responder
    late = asyncio.create_task(handle(record(2, "c")))
    await asyncio.wait({late}, timeout=1)
    assert late.cancelled()
    router.release.set()
    await first
    assert router.answered == ["a"] and router.cancelled_ids == []
