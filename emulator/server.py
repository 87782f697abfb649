"""Run the emulator in-process: in the caller's event loop, or in a thread of its own.

In the caller's loop (async tests, benchmarks)::

    async with EmulatorServer(config, inventory) as server:   # 127.0.0.1, free port
        ...  # aiohttp calls to server.url; SDK calls too:
        await asyncio.to_thread(sdk_client.tag_resources, request)   # blocking SDK call
        await sdk_client.tag_resources_async(request)                # Alibaba async SDK

Blocking SDK calls must not run on the loop that serves them (the loop would wait for
itself): send them through ``asyncio.to_thread``, or use :class:`ThreadedEmulatorServer`,
which serves from its own thread so that plain synchronous code can call it::

    with ThreadedEmulatorServer(config, inventory) as server:
        sdk_client.tag_resources(request)
        server.call(lambda: server.emulator.tags_of("aliyun", region, "key", key_id))
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from aiohttp import web

from emulator.app import EMULATOR, build_app
from emulator.config import EmulatorConfig
from emulator.core import Emulator
from emulator.inventory import Inventory

T = TypeVar("T")

LOOPBACK = "127.0.0.1"


class EmulatorServer:
    """The emulator on a TCP port of this process's running event loop."""

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        inventory: Inventory | None = None,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        access_log: bool = False,
        shutdown_timeout: float = 1.0,
    ) -> None:
        self.app = build_app(config, inventory)
        self.host = host
        self._requested_port = port
        self._access_log = access_log
        # Handlers still hanging (a "timeout" fault) are cancelled this long after stop().
        self._shutdown_timeout = shutdown_timeout
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def emulator(self) -> Emulator:
        return self.app[EMULATOR]

    @property
    def config(self) -> EmulatorConfig:
        return self.emulator.config

    @property
    def inventory(self) -> Inventory:
        return self.emulator.inventory

    @property
    def url(self) -> str:
        """``http://host:port``, without a trailing slash."""
        if not self.port:
            raise RuntimeError("the emulator is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def endpoint(self) -> str:
        """``host:port``: the form the Alibaba SDK's ``Config.endpoint`` takes
        (with ``protocol='http'``, sdk-wire.md §1.1)."""
        return self.url.removeprefix("http://")

    async def start(self) -> None:
        # aiohttp logs every request at INFO unless access_log is None: far too chatty for a
        # benchmark, so it is opt-in.
        if self._access_log:
            runner = web.AppRunner(self.app, shutdown_timeout=self._shutdown_timeout)
        else:
            runner = web.AppRunner(
                self.app, shutdown_timeout=self._shutdown_timeout, access_log=None
            )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> EmulatorServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class ThreadedEmulatorServer:
    """The emulator on an event loop of its own, in a daemon thread, for synchronous callers.

    Read or change the emulator's objects only through :meth:`call`, which runs a function on
    the serving loop's thread.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        inventory: Inventory | None = None,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        access_log: bool = False,
        shutdown_timeout: float = 1.0,
    ) -> None:
        self._server = EmulatorServer(
            config,
            inventory,
            host=host,
            port=port,
            access_log=access_log,
            shutdown_timeout=shutdown_timeout,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def emulator(self) -> Emulator:
        return self._server.emulator

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def endpoint(self) -> str:
        return self._server.endpoint

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="bulktag-emulator", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            try:
                loop.run_until_complete(self._server.start())
            except BaseException as exc:
                self._error = exc
                return
            self._loop = loop
            self._ready.set()
            loop.run_forever()
            loop.run_until_complete(self._server.stop())
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            self._ready.set()
            loop.close()

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` on the serving loop's thread and return its result."""
        if self._loop is None:
            raise RuntimeError("the emulator is not started")

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop = None

    def __enter__(self) -> ThreadedEmulatorServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
