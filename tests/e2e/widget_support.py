"""Helpers of the widget's browser tests: starting a stack, reading the widget's Shadow DOM."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.async_api import Page

from tidings.common.memory_api import MemoryApiSettings
from tidings.common.settings import KafkaSettings, LLMSettings, QdrantSettings
from tidings.gateway.service import GatewayService
from tidings.gateway.settings import GatewaySettings

RETURNS_ANSWER = "We accept returns within 30 days. Books must be in original condition."
SHIPPING_FRAGMENT = "5-7 business days"
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

# The widget's open Shadow DOM root, from page scripts.
JS_WIDGET_ROOT = "document.querySelector('#tidings-widget').shadowRoot"


@dataclass
class Stack:
    base_url: str
    kafka: KafkaSettings
    gateway: GatewayService


def module_kafka(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        topic_prefix=f"w{uuid.uuid4().hex[:10]}-",
        topic_partitions=3,
    )


def faq_with_extra_intents(path: Path, extra: list[dict[str, Any]]) -> Path:
    """The packaged bookstore FAQ plus `extra` intents, written to `path`."""
    import yaml

    from tidings.responder.faq import catalog

    packaged = (Path(catalog.__file__).parent / catalog.PACKAGED_FAQ).read_text()
    document = yaml.safe_load(packaged)
    document["intents"] = extra + document["intents"]
    path.write_text(json.dumps(document))  # JSON is YAML
    return path


async def start_full_stack(
    services: AsyncExitStack,
    *,
    kafka: KafkaSettings,
    llm_base_url: str,
    embedder: Any,
    workdir: Path,
    faq_path: Path | None = None,
    cors_origins: list[str] | None = None,
    max_tokens: int = 64,
    store_api_url: str | None = None,
) -> Stack:
    """Memory, responder and gateway on `kafka`'s topics, like `tidings dev` runs them."""
    from tidings.cli.infra import LLAMA_MODEL_ALIAS
    from tidings.memory.service import MemoryService
    from tidings.memory.settings import MemorySettings
    from tidings.responder.service import ResponderService
    from tidings.responder.settings import ResponderSettings

    memory = await services.enter_async_context(
        MemoryService(
            MemorySettings(
                host="127.0.0.1",
                port=0,
                group_id=f"{kafka.topic_prefix}memory",
                kafka=kafka,
                qdrant=QdrantSettings(path=workdir / "qdrant", collection="widget_memory"),
            ),
            embedder=embedder,
        )
    )
    await services.enter_async_context(
        ResponderService(
            ResponderSettings(
                host="127.0.0.1",
                port=0,
                group_id=f"{kafka.topic_prefix}responder",
                kafka=kafka,
                faq_path=faq_path,
                store_api_url=store_api_url,
                memory=MemoryApiSettings(url=f"http://127.0.0.1:{memory.port}"),
                llm=LLMSettings(
                    llm_backend="openai",
                    openai_base_url=llm_base_url,
                    openai_model=LLAMA_MODEL_ALIAS,
                    llm_max_tokens=max_tokens,
                    llm_timeout=60.0,
                ),
            )
        )
    )
    gateway = await services.enter_async_context(
        GatewayService(
            GatewaySettings(
                host="127.0.0.1",
                port=0,
                kafka=kafka,
                memory=MemoryApiSettings(url=f"http://127.0.0.1:{memory.port}"),
                cors_origins=cors_origins or [],
                # The tests send quickly from one address; the limits have their own tests.
                rate_per_s=50.0,
                rate_burst=100,
                request_rate_per_s=50.0,
                request_burst=100,
            )
        )
    )
    return Stack(f"http://127.0.0.1:{gateway.port}", kafka, gateway)


async def start_gateway_only(services: AsyncExitStack, *, kafka: KafkaSettings) -> Stack:
    """A gateway without workers: enough to serve the page when the API is mocked per test."""
    gateway = await services.enter_async_context(
        GatewayService(
            GatewaySettings(
                host="127.0.0.1",
                port=0,
                kafka=kafka,
                memory=MemoryApiSettings(url=""),
            )
        )
    )
    return Stack(f"http://127.0.0.1:{gateway.port}", kafka, gateway)


async def widget_eval(page: Page, body: str, arg: Any = None) -> Any:
    """Evaluate `body` (a function of `root`, the widget's shadow root, and `arg`)."""
    return await page.evaluate(f"(arg) => {{ const root = {JS_WIDGET_ROOT}; {body} }}", arg)


async def focused_in_widget(page: Page) -> str | None:
    """A short description of the focused element inside the widget, or None if outside."""
    result: str | None = await widget_eval(
        page,
        """
        if (document.activeElement !== root.host) return null;
        const el = root.activeElement;
        if (!el) return null;
        const inPanel = Boolean(el.closest('.panel'));
        return `${inPanel ? 'panel' : 'outside'}:${el.tagName.toLowerCase()}.${el.className}`;
        """,
    )
    return result


def words(text: str) -> list[str]:
    """The words of a text, so Markdown syntax removed by rendering does not matter."""
    return re.findall(r"\w+", text)


class CuttableProxy:
    """A TCP proxy in front of the gateway whose network can be "lost" and given back.

    `cut()` resets every open connection and makes new ones close at once, like a dropped
    Wi-Fi; `restore()` lets connections through again.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.down = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> CuttableProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def cut(self) -> None:
        self.down = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.down = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            self._tasks.discard(task)
            return
        self._writers.update({writer, up_writer})
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for end in (writer, up_writer):
                self._writers.discard(end)
                end.transport.abort()
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()
