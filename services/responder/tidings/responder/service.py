"""The responder service: Kafka clients, the consumer loop and the ops HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any

from tidings.common.kafka import ensure_topics, kafka_consumer, kafka_producer
from tidings.common.logging import get_logger
from tidings.common.memory_api import MemoryClient
from tidings.common.ops import ops_app
from tidings.common.pacing import FetchPacer
from tidings.common.runtime import HttpServer
from tidings.common.store_api import StoreClient
from tidings.responder.answers.engine import EngineConfig
from tidings.responder.answers.evidence import EvidenceLimits
from tidings.responder.cancels import CancelRegistry
from tidings.responder.consumer import ResponderConsumer
from tidings.responder.faq import FaqStore
from tidings.responder.handler import MessageHandler
from tidings.responder.llm import LLMBackend, create_backend
from tidings.responder.memory import ContextSource
from tidings.responder.prompt import PromptLimits
from tidings.responder.router import Router, RouterConfig, Tool
from tidings.responder.settings import ResponderSettings
from tidings.responder.tools import OrderStatusTool, RecommendationTool
from tidings.responder.tools.notes import memory_recent

log = get_logger(__name__)


class ResponderFailedError(RuntimeError):
    """The responder cannot go on (for example the broker stayed unreachable)."""


class ResponderService:
    """Answers `user_messages` until exited; `async with ResponderService(settings): ...`.

    The FAQ file and the LLM backend are checked when the object is created, so a wrong
    RESPONDER_FAQ_PATH or LLM_BACKEND fails at start-up with a clear message.
    """

    def __init__(self, settings: ResponderSettings, *, backend: LLMBackend | None = None) -> None:
        self.settings = settings
        self.faq = FaqStore(settings.faq_path)
        self._backend = backend or create_backend(settings.llm, settings.backends)
        self.fallback_text = settings.fallback_text or self.faq.matcher.fallback
        self.cancels = CancelRegistry()
        self._stack = AsyncExitStack()
        self._consumer: ResponderConsumer | None = None
        self._handler: MessageHandler | None = None
        self._http: HttpServer | None = None
        self._failure: asyncio.Future[None] | None = None

    @property
    def port(self) -> int:
        """The bound port of the ops server (/health, /ready, /metrics)."""
        if self._http is None:
            raise RuntimeError("the responder is not running")
        return self._http.port

    @property
    def assigned_partitions(self) -> list[int]:
        """The `user_messages` partitions this replica answers right now."""
        return [tp.partition for tp in self._consumer.assigned] if self._consumer else []

    async def __aenter__(self) -> ResponderService:
        settings = self.settings
        kafka = settings.kafka
        self._failure = asyncio.get_running_loop().create_future()
        try:
            self._stack.push_async_callback(self._backend.aclose)
            await ensure_topics(kafka)
            producer = await self._stack.enter_async_context(
                kafka_producer(kafka, name="responder")
            )
            consumer = await self._stack.enter_async_context(
                kafka_consumer(
                    kafka,
                    group_id=settings.group_id,
                    name="responder",
                    # How long the group waits for a member to rejoin (the revoke commits).
                    rebalance_timeout_ms=int((settings.revoke_grace_s + 20) * 1000),
                    session_timeout_ms=settings.session_timeout_ms,
                    heartbeat_interval_ms=settings.heartbeat_interval_ms,
                )
            )
            context = await self._context_source()
            router = Router(
                self.faq,
                self._backend,
                self.router_config(),
                tools=self._tools(context),
                context=context,
            )
            self._handler = handler = MessageHandler(
                router,
                producer,
                kafka,
                group_id=settings.group_id,
                max_attempts=settings.max_attempts,
                max_concurrency=settings.max_concurrency,
                cancels=self.cancels,
                max_age_s=settings.max_message_age_s,
            )
            self._consumer = ResponderConsumer(
                consumer,
                kafka.user_messages_topic,
                handler,
                max_in_flight=settings.max_in_flight,
                max_backlog=settings.max_backlog,
                revoke_grace_s=settings.revoke_grace_s,
                on_crash=self._crashed,
                cancels=self.cancels,
                pacer=FetchPacer.from_settings(kafka, name="responder"),
            )
            self._consumer.start()
            self._http = HttpServer(
                ops_app("responder", self._ready), settings.host, settings.port, name="responder"
            )
            await self._http.start()
        except BaseException:
            await self._close()
            raise
        log.info(
            "responder started",
            topic=kafka.user_messages_topic,
            group=settings.group_id,
            llm_backend=self._backend.name,
            model=self._backend.model,
            faq_intents=len(self.faq.matcher.intents),
            max_concurrency=settings.max_concurrency,
            orders_tool=(settings.orders_api_url or settings.store_api_url) is not None,
            store=settings.store_api_url or "off",
            memory=settings.memory.url or "off",
        )
        return self

    def router_config(self) -> RouterConfig:
        """How the router answers: the answer engine's limits and the streaming knobs."""
        settings = self.settings
        llm = settings.llm
        backends = len(getattr(self._backend, "backends", (self._backend,)))
        return RouterConfig(
            fallback_text=settings.fallback_text,
            flush_ms=settings.flush_ms,
            flush_chars=settings.flush_chars,
            flush_first=settings.flush_first,
            start_grace_ms=settings.start_grace_ms,
            # Each backend has LLM_TIMEOUT; this only backstops the whole chain.
            llm_timeout_s=llm.llm_timeout * backends + 5,
            engine=EngineConfig(
                mode=settings.answer_mode,
                faq_min_similarity=settings.faq_min_similarity,
                evidence=EvidenceLimits(
                    min_similarity=settings.evidence_min_similarity,
                    foreign_word_penalty=settings.foreign_word_penalty,
                    chunks=settings.evidence_chunks,
                    sure_margin=settings.evidence_sure_margin,
                ),
                general_prompt=llm.llm_system_prompt,
                limits=PromptLimits(
                    budget_tokens=max(
                        64, settings.backends.llm_context_tokens - llm.llm_max_tokens
                    ),
                    max_turns=settings.context_turns,
                    max_chunks=settings.context_chunks,
                ),
            ),
        )

    def _tools(self, context: ContextSource | None) -> list[Tool]:
        settings = self.settings
        tools: list[Tool] = []
        orders_url = settings.orders_api_url or settings.store_api_url
        if orders_url is not None:
            orders = self._store_client(orders_url, settings.orders_timeout_s)
            recent = memory_recent(context) if context is not None else None
            tools.append(OrderStatusTool(orders, limit=settings.order_lookup_limit, recent=recent))
        if settings.store_api_url is not None:
            store = self._store_client(settings.store_api_url, settings.orders_timeout_s)
            embed = context.embed if context is not None else None
            books = RecommendationTool(store, embed, max_candidates=settings.recommend_candidates)
            tools.append(books)
            # The catalogue's vectors before the first request (best effort, in the background).
            warming = asyncio.create_task(books.warm(), name="warm-catalogue")
            self._stack.callback(warming.cancel)
        return tools

    def _store_client(self, url: str, timeout_s: float) -> StoreClient:
        client = StoreClient(url, token=self.settings.store_api_token, timeout_s=timeout_s)
        self._stack.push_async_callback(client.aclose)
        return client

    async def _context_source(self) -> ContextSource | None:
        memory = self.settings.memory
        if not memory.url:
            return None
        source = ContextSource(MemoryClient(memory), retry_s=self.settings.memory_retry_s)
        self._stack.push_async_callback(source.aclose)
        return source

    def reload_faq(self) -> bool:
        """Reload RESPONDER_FAQ_PATH (SIGHUP); the old FAQ stays when the file is invalid."""
        return self.faq.reload()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        # Order matters: finish answers while the producer is still open, commit, then
        # leave the group (consumer stop), close the producer, and last the ops server.
        try:
            if self._handler is not None:
                self._handler.drain()
            if self._consumer is not None:
                await self._consumer.shutdown(self.settings.grace_s)
        finally:
            try:
                await self._stack.aclose()
            finally:
                if self._http is not None:
                    await self._http.stop()
                    self._http = None
                log.info("responder stopped")

    async def run_until(self, stop: asyncio.Event) -> None:
        """Return when `stop` is set; raise `ResponderFailedError` if the responder fails first."""
        assert self._failure is not None, "use inside `async with`"
        stopped = asyncio.create_task(stop.wait())
        waited: set[asyncio.Future[Any]] = {stopped, self._failure}
        try:
            await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopped
        if self._failure.done():
            error = self._failure.exception()
            raise ResponderFailedError(f"the responder stopped working: {error!r}") from error

    def _crashed(self, error: BaseException) -> None:
        if self._failure is not None and not self._failure.done():
            self._failure.set_exception(error)
            # Retrieved here so asyncio does not report it as never retrieved.
            self._failure.exception()

    async def _ready(self) -> dict[str, bool]:
        failed = self._failure is None or self._failure.done()
        return {
            "consumer": self._consumer is not None and self._consumer.running,
            "healthy": not failed,
        }


async def serve(settings: ResponderSettings, stop: asyncio.Event) -> None:
    """Run the responder until `stop` is set (the CLI sets it on SIGTERM/SIGINT).

    SIGHUP reloads the FAQ file.
    """
    loop = asyncio.get_running_loop()
    async with ResponderService(settings) as service:
        hup = getattr(signal, "SIGHUP", None)
        if hup is not None:
            loop.add_signal_handler(hup, service.reload_faq)
        try:
            await service.run_until(stop)
        finally:
            if hup is not None:
                loop.remove_signal_handler(hup)
