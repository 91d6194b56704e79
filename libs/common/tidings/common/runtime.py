"""Running a service: signal handling and an embedded HTTP server that we stop ourselves.

Every service's entry point is `async def serve(settings, stop: asyncio.Event)`. The CLI
runs it with `run_service`, which turns SIGTERM and SIGINT into `stop.set()`; tests run it
as a task and set the event themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from starlette.types import ASGIApp

from tidings.common.logging import get_logger

log = get_logger(__name__)

# Set while `run_service` runs a service in its own process: only then may the service tune
# the process-wide garbage collector (not inside a test process that runs services in-process).
_OWN_PROCESS: contextvars.ContextVar[bool] = contextvars.ContextVar("own_process", default=False)

# The collector's first generation is collected after this many more container allocations
# than deallocations (CPython's default is 700).
GC_GEN0_THRESHOLD = 10_000


def settle_heap() -> None:
    """Once a service has started: collect, freeze what start-up built, collect less often.

    Everything alive after start-up (modules, the app and its routes, schemas, clients,
    models) lives as long as the process. `gc.freeze()` moves it out of the collector's
    sight, so a full collection no longer walks ~100k objects (37 ms each in the gateway
    under load: 2.1 s of CPU during 16 s of `POST /chat` load). The higher first-generation
    threshold stops the collector running every few requests: the objects of a request are
    freed by reference counting, and cycles are still collected once they add up.
    Measured and described in docs/operations.md ("Garbage collector settings").
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def run_service(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)` until it returns; SIGTERM/SIGINT set `stop` (a second one kills)."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(sig: signal.Signals) -> None:
            if stop.is_set():
                log.warning("second signal, exiting now", signal=sig.name)
                raise SystemExit(128 + sig.value)
            log.info("shutting down", signal=sig.name)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
        _OWN_PROCESS.set(True)
        await main(stop)

    loop_factory = _loop_factory()
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=loop_factory) as run:
        run.run(runner())


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (it is a dependency on Linux), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the service decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class PortInUseError(OSError):
    """The port a server should listen on is taken by another process."""

    def __init__(self, name: str, host: str, port: int) -> None:
        super().__init__(
            f"{name}: port {port} on {host} is already in use. Stop the other process or "
            f"choose another port."
        )
        self.port = port


class HttpServer:
    """An ASGI app served by uvicorn inside the service's event loop."""

    def __init__(
        self,
        app: ASGIApp,
        host: str,
        port: int,
        *,
        name: str,
        forwarded_allow_ips: str = "127.0.0.1",
    ) -> None:
        # `forwarded_allow_ips`: proxies whose X-Forwarded-For/-Proto are believed, so that
        # the client address (rate limits, logs) is the user's, not the ingress controller's.
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
            proxy_headers=True,
            forwarded_allow_ips=forwarded_allow_ips,
        )
        self._server = _Server(config)
        self._name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        sockets = self._server.servers[0].sockets if self._server.servers else []
        return int(sockets[0].getsockname()[1]) if sockets else self._server.config.port

    async def start(self) -> None:
        """Bind and start serving; raises `PortInUseError` when the port is taken."""
        # Bind here rather than inside uvicorn, which answers a taken port with sys.exit().
        config = self._server.config
        sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((config.host, config.port))
        except OSError as exc:
            sock.close()
            raise PortInUseError(self._name, config.host, config.port) from exc
        sock.set_inheritable(True)
        self._task = asyncio.create_task(
            self._server.serve(sockets=[sock]), name=f"http-{self._name}"
        )
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError(f"{self._name}: HTTP server stopped while starting")
            await asyncio.sleep(0.02)
        log.info("listening", server=self._name, host=self._server.config.host, port=self.port)
        if _OWN_PROCESS.get():
            # A service starts its HTTP server once the rest of it is up.
            settle_heap()

    async def stop(self) -> None:
        """Stop accepting, let open requests finish briefly, then return."""
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, SystemExit):
            await self._task
        self._task = None
