"""``aiosio.SyncClient``: the async :class:`aiosio.Client` driven from blocking code.

A thin facade, not a second implementation: it runs an event loop in a background thread and
calls the async client there. Handlers registered with :meth:`on` run in that thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from collections.abc import Coroutine
from typing import Any
from typing import TypeVar

from aiosio._events import forward_on
from aiosio.client.socket import Client

__all__ = ["SyncClient"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class SyncClient:
    """Same arguments as :class:`aiosio.Client`; methods block instead of being awaited."""

    def __init__(self, url: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.client: Client = self._run(self._make(url, options))

    @staticmethod
    async def _make(url: str, options: dict[str, Any]) -> Client:
        return Client(url, **options)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def on(self, event: str, handler: F | None = None) -> Any:
        """Register a handler (runs in the client's thread)."""
        return forward_on(self.client.on, event, handler)

    def connect(self, timeout: float | None = None) -> None:
        self._run(self.client.connect(), timeout)

    def emit(self, event: str, *args: Any) -> None:
        self._loop.call_soon_threadsafe(self.client.emit, event, *args)

    def call(self, event: str, *args: Any, timeout: float | None = 60.0) -> Any:
        """Emit and wait for the acknowledgement; returns its first argument."""

        async def call() -> Any:  # emit_with_ack sends at its call: on the client's loop
            return await self.client.emit_with_ack(event, *args, timeout=timeout)

        return self._run(call())

    @property
    def connected(self) -> bool:
        return self.client.connected

    @property
    def id(self) -> str | None:
        return self.client.id

    def disconnect(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self.client.disconnect())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> SyncClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()
