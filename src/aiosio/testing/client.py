""":class:`TestClient`: the real :class:`aiosio.Client`, connected to a :class:`aiosio.Server` in
the same process through :class:`~aiosio.testing.memory.ServerOpener` (no port, no socket), and
recording what the server sends so that a test can assert on it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import NamedTuple
from typing import ParamSpec

from aiosio.client.errors import ConnectError
from aiosio.client.errors import Stage
from aiosio.client.socket import Auth
from aiosio.client.socket import Client
from aiosio.engine.http import HttpApp
from aiosio.errors import AiosioError
from aiosio.errors import Disconnected
from aiosio.testing.memory import ServerOpener

__all__ = ["ClientFactory", "Received", "TestClient", "WaitTimeout", "connect", "open_client"]

# Options of aiosio.Client that make no sense in memory: the transport is a WebSocket, and the
# connection is the client's own.
_FIXED = frozenset({"transports", "upgrade", "ssl", "force_new", "multiplex", "websocket_opener"})

P = ParamSpec("P")


class Received(NamedTuple):
    """An event the server sent: its name and its arguments (equal to ``(event, args)``)."""

    event: str
    args: list[Any]


class WaitTimeout(AiosioError, TimeoutError):
    """:meth:`TestClient.wait_for` or :meth:`TestClient.wait_disconnected` waited in vain."""


class TestClient(Client):
    """An :class:`aiosio.Client` for ``namespace`` of ``server``, over a WebSocket in memory.

    Everything the real client does, it does (``emit``, ``emit_with_ack``, ``on``, handlers
    that answer the server's acks, ``connect_error`` with the :class:`aiosio.ConnectError` of a
    middleware's refusal); it also keeps what the server sent in :attr:`received` and how the
    connection ended in :attr:`disconnect_reason`. Reconnection is off unless asked for.
    ``headers`` and ``query`` go with the upgrade request (``socket.handshake``)."""

    __test__ = False  # not a test class, for pytest's collection

    def __init__(
        self,
        server: HttpApp,
        namespace: str = "/",
        *,
        auth: Auth = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        client_address: tuple[str, int] = ("127.0.0.1", 0),
        **options: Any,
    ) -> None:
        fixed = sorted(_FIXED.intersection(options))
        if fixed:
            raise TypeError(
                f"TestClient connects over a WebSocket in memory of its own: {', '.join(fixed)} "
                "cannot be set (use aiosio.Client with a server on a port to test them)"
            )
        if not namespace.startswith("/"):
            raise ValueError(f"namespace must start with '/', got {namespace!r}")
        options.setdefault("reconnection", False)
        options.setdefault("path", getattr(server, "path", "/socket.io/"))
        self.opener = ServerOpener(server, client_address=client_address)
        super().__init__(
            "http://testserver" + namespace,
            auth=auth,
            extra_headers=headers,
            query=query,
            transports=("websocket",),
            websocket_opener=self.opener,
            **options,
        )
        self.received: list[Received] = []
        """Every event the server sent to this client, in order."""
        self.disconnect_reason: str | None = None
        """The reason of the last disconnection (``"io server disconnect"`` when the server
        disconnected the socket, ``"transport close"`` when it closed the connection, ``"io
        client disconnect"`` after :meth:`disconnect`), ``None`` before any."""
        self._taken: dict[str, int] = {}  # per event name: received[:n] was looked at by wait_for
        self._changed: asyncio.Future[None] | None = None
        self.on_any(self._record)
        self.on("disconnect", self._on_disconnect)

    def _record(self, event: Any, *args: Any) -> None:
        self.received.append(Received(str(event), list(args)))
        self._wake()

    def _on_disconnect(self, reason: str, _description: Any = None) -> None:
        self.disconnect_reason = reason
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None and not changed.done():
            changed.set_result(None)

    async def _change(self) -> None:
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        await self._changed

    def events(self, event: str) -> list[list[Any]]:
        """The arguments of every ``event`` received so far."""
        return [r.args for r in self.received if r.event == event]

    async def wait_for(self, event: str, *, timeout: float = 5.0) -> list[Any]:
        """The arguments of the next ``event`` not yet returned by ``wait_for``: one received
        already, or the next to come. Raises :class:`WaitTimeout` after ``timeout`` seconds,
        :class:`aiosio.Disconnected` when the connection ends first (and does not reconnect)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    start = self._taken.get(event, 0)
                    for index in range(start, len(self.received)):
                        if self.received[index].event == event:
                            self._taken[event] = index + 1
                            return self.received[index].args
                    self._taken[event] = len(self.received)
                    if not self.connected and not self.io.reconnecting:
                        raise Disconnected(
                            f"disconnected ({self.disconnect_reason or 'never connected'}) "
                            f"while waiting for {event!r}; received: {self._names()}"
                        )
                    await self._change()
        except TimeoutError:
            raise WaitTimeout(
                f"no {event!r} event within {timeout}s; received: {self._names()}"
            ) from None

    async def wait_disconnected(self, *, timeout: float = 5.0) -> str:
        """Wait until the client is disconnected and return the reason (at once if it is)."""
        try:
            async with asyncio.timeout(timeout):
                while self.connected or self.disconnect_reason is None:
                    await self._change()
        except TimeoutError:
            raise WaitTimeout(f"still connected after {timeout}s") from None
        return self.disconnect_reason

    def _names(self) -> str:
        names = [r.event for r in self.received]
        return repr(names) if len(names) <= 20 else f"{names[:20]!r} and {len(names) - 20} more"

    async def __aenter__(self) -> TestClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()


# What the aiosio_client fixture gives: ``await factory(server, namespace, **options)``.
ClientFactory = Callable[..., Awaitable[TestClient]]


async def open_client(
    server: HttpApp,
    namespace: str = "/",
    *,
    auth: Auth = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    **options: Any,
) -> TestClient:
    """A :class:`TestClient` connected to ``namespace`` (see :func:`connect`); raises the
    :class:`aiosio.ConnectError` of a refusal, after ``timeout`` seconds one of stage
    ``TIMEOUT``."""
    options.setdefault("timeout", timeout)
    client = TestClient(server, namespace, auth=auth, headers=headers, query=query, **options)
    try:
        async with asyncio.timeout(timeout):
            await client.connect()
    except TimeoutError:
        await client.disconnect()
        raise ConnectError(
            Stage.TIMEOUT,
            f"namespace {namespace!r} did not answer the CONNECT within {timeout}s",
            hint="a middleware or a connection handler of the server did not return; raise "
            "timeout= if it is just slow",
            description="timeout",
        ) from None
    except BaseException:
        await client.disconnect()
        raise
    return client


def _for_a_block(
    open_: Callable[P, Awaitable[TestClient]],
) -> Callable[P, contextlib.AbstractAsyncContextManager[TestClient]]:
    """``open_`` as an async context manager, with its parameters: the client it opens,
    disconnected at the end of the block."""

    @contextlib.asynccontextmanager
    async def in_a_block(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[TestClient]:
        client = await open_(*args, **kwargs)
        try:
            yield client
        finally:
            await client.disconnect()

    return in_a_block


connect = _for_a_block(open_client)
connect.__name__ = connect.__qualname__ = "connect"
connect.__doc__ = """``async with connect(sio) as client:`` a :class:`TestClient` connected to
``namespace`` of ``server``, disconnected at the end of the block; the parameters are
:func:`open_client`'s: ``connect(server, namespace="/", *, auth=None, headers=None, query=None,
timeout=5.0, **options)``.

A refused connection raises the :class:`aiosio.ConnectError` the real client raises (a
middleware's ``ConnectionRefused`` message and ``data``, an unknown namespace); one not answered
within ``timeout`` seconds a ``ConnectError`` of stage ``TIMEOUT``. ``options`` are
:class:`aiosio.Client`'s (``retries``, ``ack_timeout``, ``reconnection``...)."""
