"""The gateway process: topics, producer, answer fan-out and HTTP server, started in order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from types import TracebackType

from tidings.common.kafka import ensure_topics, kafka_producer
from tidings.common.logging import get_logger
from tidings.common.memory_api import MemoryClient
from tidings.common.pacing import FetchPacer
from tidings.common.runtime import HttpServer
from tidings.gateway.app import create_app
from tidings.gateway.capacity import budget_of
from tidings.gateway.fanout import ResponseFanout
from tidings.gateway.hub import FanoutHub
from tidings.gateway.owners import OwnershipMap
from tidings.gateway.publisher import KafkaPublisher
from tidings.gateway.readiness import Readiness, kafka_probe
from tidings.gateway.replay import ReplayBuffer
from tidings.gateway.settings import GatewaySettings
from tidings.gateway.watch import BrokerWatch

log = get_logger(__name__)

# The longest each Kafka client (producer, fan-out consumer) and background task (fan-out
# reader, broker watch) may take to stop; one that takes longer is abandoned and logged, so a
# replica always shuts down. Nothing is left to flush by then: new messages are refused first.
STOP_TIMEOUT_S = 10.0


class GatewayService:
    """`async with GatewayService(settings) as gateway:` serves HTTP on `gateway.port`.

    The fan-out consumer is positioned before the HTTP server accepts anything, so no answer
    to a message accepted by this replica can be missed. On exit, open streams are ended
    first (so the server need not wait for them), then the server, consumer and producer
    stop - each Kafka client and background task within STOP_TIMEOUT_S, or it is abandoned.
    """

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.hub = _new_hub(settings)
        self.owners = OwnershipMap(settings.ownership_max_sessions)
        self.watch: BrokerWatch | None = None
        self._stack: AsyncExitStack | None = None
        self._server: HttpServer | None = None

    @property
    def port(self) -> int:
        """The bound HTTP port (useful with port 0)."""
        if self._server is None:
            raise RuntimeError("the gateway is not running")
        return self._server.port

    async def __aenter__(self) -> GatewayService:
        settings = self.settings
        pacer = FetchPacer.from_settings(settings.kafka, name="gateway-fanout")
        self.hub = _new_hub(settings, on_activity=pacer.touch)
        self.owners = OwnershipMap(settings.ownership_max_sessions)
        await ensure_topics(settings.kafka)
        async with AsyncExitStack() as stack:
            memory = MemoryClient(settings.memory)
            stack.push_async_callback(memory.aclose)
            watch = BrokerWatch(
                kafka_probe(settings.kafka),
                interval_s=settings.broker_check_s,
                stop_timeout_s=STOP_TIMEOUT_S,
            )
            producer = await stack.enter_async_context(
                kafka_producer(settings.kafka, name="gateway", stop_timeout_s=STOP_TIMEOUT_S)
            )
            publisher = KafkaPublisher(
                producer,
                settings.kafka.user_messages_topic,
                timeout_s=settings.publish_timeout_s,
                broker_up=lambda: watch.up,
            )
            fanout = await stack.enter_async_context(
                ResponseFanout(
                    settings.kafka,
                    self.hub,
                    owners=self.owners if settings.auth == "jwt" else None,
                    backfill_records=settings.backfill_max_records,
                    backfill_age_s=settings.replay_max_age_s,
                    pacer=pacer,
                    stop_timeout_s=STOP_TIMEOUT_S,
                )
            )

            async def recreate_topics() -> None:
                # A broker without durable storage comes back empty.
                await ensure_topics(settings.kafka, attempts=1, repair=True)

            watch.add_recovery(recreate_topics)
            watch.add_recovery(fanout.restart)
            await stack.enter_async_context(watch)
            self.watch = watch
            readiness = Readiness(
                producer_up=lambda: publisher.running and watch.up,
                fanout_ready=lambda: fanout.ready,
                broker_probe=kafka_probe(settings.kafka),
                cache_s=settings.ready_cache_s,
            )
            app = create_app(
                settings,
                publisher=publisher,
                hub=self.hub,
                readiness=readiness,
                owners=self.owners,
                memory=memory if memory.enabled else None,
                broker_down_for=watch.down_for,
            )
            server = HttpServer(
                app,
                settings.host,
                settings.port,
                name="gateway",
                forwarded_allow_ips=settings.forwarded_allow_ips,
            )
            await server.start()
            stack.push_async_callback(server.stop)
            stack.callback(self.hub.close)
            # First thing on exit: /ready turns 503 and new messages are refused.
            stack.callback(setattr, publisher, "running", False)
            self._server = server
            self._stack = stack.pop_all()
        log.info("gateway ready", port=self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = None
        self._server = None
        log.info("gateway stopped")


def _new_hub(
    settings: GatewaySettings, *, on_activity: Callable[[], None] = lambda: None
) -> FanoutHub:
    buffer = ReplayBuffer(
        max_events_per_session=settings.replay_max_events,
        max_sessions=settings.replay_max_sessions,
        max_age_s=settings.replay_max_age_s,
        max_bytes_per_session=settings.replay_max_bytes,
        max_total_bytes=budget_of(settings).replay_max_total_bytes,
    )
    return FanoutHub(
        buffer,
        max_pending=settings.stream_queue_size,
        max_pending_bytes=settings.stream_queue_bytes,
        on_activity=on_activity,
    )


async def serve(settings: GatewaySettings, stop: asyncio.Event) -> None:
    """Run the gateway until `stop` is set."""
    async with GatewayService(settings):
        await stop.wait()
