"""The store service: the database, its sample data, and the HTTP server."""

from __future__ import annotations

import asyncio
from types import TracebackType

from tidings.common.logging import get_logger
from tidings.common.runtime import HttpServer
from tidings.common.service_auth import is_loopback
from tidings.store.api import create_app
from tidings.store.catalogue import Links
from tidings.store.db import Database
from tidings.store.seed import ensure_sample_data
from tidings.store.settings import StoreSettings

log = get_logger(__name__)


class StoreService:
    """`async with StoreService(settings) as store:` serves until the block ends."""

    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        self._http: HttpServer | None = None

    @property
    def port(self) -> int:
        if self._http is None:
            raise RuntimeError("the store is not running")
        return self._http.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> StoreService:
        settings = self.settings
        try:
            await asyncio.to_thread(self._prepare)
            links = Links(settings.base_url(settings.port))
            app = create_app(self.db, settings, links)
            self._http = HttpServer(app, settings.host, settings.port, name="store")
            await self._http.start()
            # Port 0 (tests): the links carry the port that was bound.
            links.base = settings.base_url(self._http.port)
        except BaseException:
            await self._close()
            raise
        if settings.api_token is None and not is_loopback(settings.host):
            log.warning("the store API is open to the network without STORE_API_TOKEN")
        log.info("store started", port=self._http.port, database=self.db.engine.url.drivername)
        return self

    def _prepare(self) -> None:
        self.db.create_tables()
        if self.settings.sample_data:
            with self.db.session() as session:
                books, orders = ensure_sample_data(session)
            if books or orders:
                log.info("sample data created", books=books, orders=orders)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        if self._http is not None:
            await self._http.stop()
            self._http = None
        self.db.close()
        log.info("store stopped")


async def serve(settings: StoreSettings, stop: asyncio.Event) -> None:
    """Run the store until `stop` is set."""
    async with StoreService(settings):
        await stop.wait()
