"""Every way a connection attempt fails gives the documented :class:`aiosio.ConnectError`: the
stage that failed, socket.io-client's message where it has one, and a hint that names the likely
cause. Each test builds the failure from real components on 127.0.0.1: a closed port, a name under
``.invalid``, our native server with a self-signed certificate, a wrong path, a plain WebSocket
server, a server refusing the protocol version, two servers behind a round-robin proxy without
sticky sessions, a middleware refusal, a server that never answers. Plus the debug trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import ssl
import sys
import time
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed

import aiosio
from aiosio import ConnectError
from aiosio import Stage
from aiosio.client.http import WebSocketConnection
from conftest import ServeFn
from conftest import free_port

pytestmark = pytest.mark.interop


@pytest.fixture(autouse=True)
async def _client_websockets_closed() -> AsyncIterator[None]:
    """After each test (and its servers), wait for the client WebSockets still closing on this
    loop: WebSocketConnection.close() ends by a 1 s timer that disconnect() does not wait for
    (see test_sync_client_disconnect_closes_everything), and a loop closed before it fires leaks
    the socket into whichever test runs when the garbage collector does."""
    yield
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        closing = [
            o
            for o in gc.get_objects()
            if type(o) is WebSocketConnection and not o.closed and o.loop is loop
        ]
        if not closing:
            return
        await asyncio.sleep(0.05)


async def failure(url: str, **options: Any) -> tuple[ConnectError, float, list[Any]]:
    """Connect once (no reconnection); return the error, the time it took and what the
    ``connect_error`` handlers received."""
    client = aiosio.Client(url, reconnection=False, **options)
    seen: list[Any] = []
    client.on("connect_error", seen.append)
    started = time.monotonic()
    try:
        with pytest.raises(ConnectError) as caught:
            await asyncio.wait_for(client.connect(), 15)
    finally:
        await client.disconnect()
    return caught.value, time.monotonic() - started, seen


def check(error: ConnectError, stage: Stage, *hint_words: str) -> None:
    assert error.stage is stage, repr(error)
    assert error.message
    assert error.hint, repr(error)
    for word in hint_words:
        assert word.lower() in error.hint.lower(), (word, error.hint)
    assert stage.value in str(error)  # str() names the stage, the message and the hint
    assert error.hint in str(error)


async def until(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@contextlib.contextmanager
def contained_leaks() -> Iterator[list[str]]:
    """Collect what is left unclosed (ResourceWarnings raised in ``__del__`` reach
    ``sys.unraisablehook`` whenever the garbage collector runs) instead of failing whichever test
    runs at that moment."""
    found: list[str] = []
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: found.append(repr(unraisable.exc_value))
    try:
        yield found
    finally:
        gc.collect()
        sys.unraisablehook = hook


class TcpServer:
    """A raw TCP server: ``handler(reader, writer)`` per connection; closed at the end."""

    def __init__(self, handler: Callable[..., Awaitable[None]]) -> None:
        self.handler = handler
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                await self.handler(reader, writer)
        finally:
            self.writers.discard(writer)
            writer.close()

    async def close(self) -> None:
        for writer in list(self.writers):
            writer.transport.abort()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def tcp_server() -> AsyncIterator[Callable[..., Awaitable[int]]]:
    made: list[TcpServer] = []

    async def start(handler: Callable[..., Awaitable[None]]) -> int:
        server = TcpServer(handler)
        made.append(server)
        return await server.start()

    yield start
    for server in made:
        await server.close()


# -- resolve, TCP, TLS ----------------------------------------------------------------------------


async def test_unreachable_port() -> None:
    port = free_port()
    error, _, seen = await failure(f"http://127.0.0.1:{port}")
    check(error, Stage.TCP, "server running", "port")
    assert f"127.0.0.1:{port}" in error.message
    assert isinstance(error.description, ConnectionRefusedError)
    assert seen == [error]  # connect_error got the same error


async def test_unresolvable_host() -> None:
    error, _, _ = await failure("http://aiosio-no-such-host.invalid:3000", timeout=10.0)
    check(error, Stage.RESOLVE, "host name")  # not TIMEOUT: it fails at once, even offline
    assert "aiosio-no-such-host.invalid" in error.message


async def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl CLI."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    proc = await asyncio.create_subprocess_exec(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(cert),
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, stderr.decode()
    return cert, key


async def test_tls_with_a_self_signed_certificate(tmp_path: Path, serve_native: ServeFn) -> None:
    cert, key = await make_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sio = aiosio.Server()
    sio.on("echo", lambda _socket, *args: args)
    url = await serve_native(sio, ssl=context)
    assert url.startswith("https://")

    error, _, _ = await failure(url, transports=["polling"])
    check(error, Stage.TLS, "self-signed", "ssl=", "cafile")
    assert "certificate verify failed" in str(error.description)
    error, _, _ = await failure(url.replace("https", "wss"), transports=["websocket"])
    check(error, Stage.TLS, "cafile")

    # ssl=False (no verification) and a context that trusts the certificate both connect.
    trusting = ssl.create_default_context(cafile=str(cert))
    for option in (False, trusting):
        client = aiosio.Client(url, ssl=option, reconnection=False)
        try:
            await asyncio.wait_for(client.connect(), 10)
            assert await client.emit_with_ack("echo", "over tls") == "over tls"
            await until(
                lambda c=client: c.io.engine is not None and c.io.engine.transport == "websocket"
            )
        finally:
            await client.disconnect()


async def test_http_to_a_tls_port(tmp_path: Path, serve_native: ServeFn) -> None:
    cert, key = await make_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    url = await serve_native(aiosio.Server(), ssl=context)
    error, _, _ = await failure(url.replace("https://", "http://"), transports=["polling"])
    # A TLS server answers plain HTTP with garbage or closes the connection.
    assert error.stage in (Stage.HTTP, Stage.PROTOCOL)
    assert error.hint


# -- HTTP: path, version, plain WebSocket servers -------------------------------------------------


async def test_wrong_path(serve: ServeFn, server_kind: str) -> None:
    url = await serve(aiosio.Server())
    error, _, _ = await failure(url, path="/wrong/", transports=["polling"])
    assert error.status == 404
    check(error, Stage.HTTP, "`path`")
    assert "404" in error.message
    assert "/socket.io/" in error.hint  # the default the server uses

    error, _, _ = await failure(url, path="/wrong/", transports=["websocket"])
    if server_kind == "native":
        assert error.status == 404
        check(error, Stage.WEBSOCKET, "`path`")
    else:
        # Under uvicorn a WebSocket the app does not accept is refused with 403 (the ASGI app
        # closes it before accepting), so the client cannot tell a wrong path.
        assert error.status == 403
        check(error, Stage.WEBSOCKET)


async def greeting_ws(ws: ServerConnection) -> None:
    await ws.send("hello, I am not Socket.IO")
    async for _ in ws:
        pass


async def echo_ws(ws: ServerConnection) -> None:
    with contextlib.suppress(ConnectionClosed):  # a client may go away without a close frame
        async for message in ws:
            await ws.send(message)


@pytest.fixture
async def plain_ws() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    servers: list[Any] = []

    async def start(handler: Callable[[ServerConnection], Awaitable[None]]) -> str:
        server = await ws_serve(handler, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_plain_websocket_server_over_websocket(
    plain_ws: Callable[..., Awaitable[str]],
) -> None:
    url = await plain_ws(greeting_ws)
    error, _, _ = await failure(url, transports=["websocket"], timeout=2.0)
    check(error, Stage.PROTOCOL, "plain WebSocket")  # named, not left to time out
    assert "hello, I am not Socket.IO" in error.message


async def test_silent_plain_websocket_server_over_websocket(
    plain_ws: Callable[..., Awaitable[str]],
) -> None:
    url = await plain_ws(echo_ws)
    with contained_leaks():
        try:
            error, _, _ = await failure(url, transports=["websocket"], timeout=1.0)
        finally:
            await reap_leaked_websockets()
    check(error, Stage.PROTOCOL, "plain WebSocket")


async def reap_leaked_websockets() -> None:
    """Cancel the reader tasks of WebSockets a timed-out connect could leave open, within the
    test (test_connect_timeout_* check that none is left)."""
    tasks = [t for t in asyncio.all_tasks() if "WebSocketConnection._read" in repr(t.get_coro())]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_plain_websocket_server_over_polling(
    plain_ws: Callable[..., Awaitable[str]],
) -> None:
    url = await plain_ws(echo_ws)
    error, _, _ = await failure(url, transports=["polling"])
    assert error.stage is Stage.HTTP
    assert error.status == 426
    assert error.message == "HTTP 426 Upgrade Required"
    assert error.body is not None
    assert b"WebSocket" in error.body  # the evidence is kept for the user


async def test_plain_websocket_server_over_polling_is_named(
    plain_ws: Callable[..., Awaitable[str]],
) -> None:
    url = await plain_ws(echo_ws)
    error, _, _ = await failure(url, transports=["polling"])
    check(error, Stage.HTTP, "WebSocket")


async def test_unsupported_protocol_version(tcp_server: Callable[..., Awaitable[int]]) -> None:
    """The reference server's answer to a client of another protocol revision (code 5). No
    socket.io 2.x server is installed (only the 2.x client), so a small HTTP server gives it."""
    requests: list[str] = []
    body = b'{"code":5,"message":"Unsupported protocol version"}'

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        requests.append(head.decode("latin-1").split("\r\n", 1)[0])
        writer.write(
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()

    port = await tcp_server(handler)
    # The client always sends EIO=4, as socket.io-client does: a user query cannot change it.
    error, _, _ = await failure(
        f"http://127.0.0.1:{port}", transports=["polling"], query={"EIO": "3", "x": "1"}
    )
    check(error, Stage.HTTP, "protocol", "2.x", "EIO=4")
    assert "code 5" in error.message
    assert "Unsupported protocol version" in error.message
    assert error.status == 400
    assert error.body == body
    assert len(requests) == 1
    # The user's key order is kept and EIO keeps its place (JS object semantics, as the reference).
    assert requests[0].startswith("GET /socket.io/?EIO=4&x=1&transport=polling&t=")


# -- sessions and namespaces ----------------------------------------------------------------------


class RoundRobin:
    """A TCP proxy sending each new connection to the next server: a load balancer without
    sticky sessions."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = itertools.cycle(ports)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", next(self.ports))
        self.writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self.writers -= {writer, up_writer}
            writer.transport.abort()
            up_writer.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()

    async def close(self) -> None:
        for writer in list(self.writers):
            writer.transport.abort()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def no_sticky_sessions(serve_native: ServeFn) -> AsyncIterator[str]:
    """Two of our servers behind a round-robin proxy."""
    urls = [await serve_native(aiosio.Server()) for _ in range(2)]
    proxy = RoundRobin([int(url.rsplit(":", 1)[1]) for url in urls])
    yield await proxy.start()
    await proxy.close()


async def test_unknown_session_names_sticky_sessions(
    no_sticky_sessions: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="aiosio.server")  # the servers log the refusals
    client = aiosio.Client(no_sticky_sessions, transports=["polling"], reconnection=False)
    disconnects: list[tuple[str, Any]] = []
    client.on("disconnect", lambda reason, description: disconnects.append((reason, description)))
    try:
        await client.connect(wait=False)
        await until(lambda: disconnects)
    finally:
        await client.disconnect()
    # The session was opened on one server; the next request reached the other.
    reason, error = disconnects[0]
    assert reason == "transport error"
    assert isinstance(error, ConnectError)
    check(error, Stage.TRANSPORT, "sticky session")
    assert "code 1" in error.message
    assert "Session ID unknown" in error.message
    assert error.status == 400
    assert not client.connected


async def test_unknown_session_fails_connect(no_sticky_sessions: str) -> None:
    client = aiosio.Client(
        no_sticky_sessions,
        transports=["polling"],
        reconnection_delay=0.1,
        reconnection_delay_max=0.2,
    )
    errors: list[Any] = []
    client.on("connect_error", errors.append)
    try:
        with pytest.raises(ConnectError) as caught:
            await asyncio.wait_for(client.connect(), 3)
    finally:
        await client.disconnect()
    check(caught.value, Stage.TRANSPORT, "sticky session")
    assert errors


async def test_namespace_refused(serve: ServeFn) -> None:
    sio = aiosio.Server()

    def middleware(socket: aiosio.Socket) -> None:
        if socket.handshake.auth.get("token") != "good":
            raise aiosio.ConnectionRefused("not authorized", data={"reason": "bad token"})

    sio.of("/private").use(middleware)
    url = await serve(sio)

    # (polling only: no upgrade in flight when the refusal closes the connection; see
    # test_disconnect_during_the_upgrade_is_prompt in test_client.py)
    error, _, seen = await failure(url + "/private", auth={"token": "bad"}, transports=["polling"])
    check(error, Stage.NAMESPACE, "auth")
    assert error.message == "not authorized"
    assert error.data == {"reason": "bad token"}
    assert seen == [error]

    error, _, _ = await failure(url + "/nowhere", transports=["polling"])
    check(error, Stage.NAMESPACE, "namespace")
    assert error.message == "Invalid namespace"
    assert error.data is None

    client = aiosio.Client(
        url + "/private", auth={"token": "good"}, reconnection=False, transports=["websocket"]
    )
    try:
        await asyncio.wait_for(client.connect(), 5)
        assert client.connected
    finally:
        await client.disconnect()


async def never_answers(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the client goes away


async def test_connect_timeout(tcp_server: Callable[..., Awaitable[int]]) -> None:
    port = await tcp_server(never_answers)
    error, elapsed, _ = await failure(
        f"http://127.0.0.1:{port}", transports=["polling"], timeout=0.5
    )
    check(error, Stage.TIMEOUT, "timeout")
    assert "0.5" in error.message
    assert elapsed > 0.4  # the timeout given, not an earlier one (timers are never early)


async def test_connect_timeout_over_websocket_closes_the_connection(
    tcp_server: Callable[..., Awaitable[int]],
) -> None:
    connections: list[asyncio.StreamWriter] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await never_answers(reader, writer)

    port = await tcp_server(handler)
    with contained_leaks() as leaks:
        error, elapsed, _ = await failure(
            f"http://127.0.0.1:{port}", transports=["websocket"], timeout=0.5
        )
        check(error, Stage.TIMEOUT, "timeout")
        assert elapsed > 0.4  # the timeout given, not an earlier one (timers are never early)
        await asyncio.sleep(0.5)
        closed = [w.transport.is_closing() for w in connections]
    assert leaks == []
    assert closed == [True]


async def test_connect_timeout_after_the_websocket_opened_closes_it(
    plain_ws: Callable[..., Awaitable[str]],
) -> None:
    open_connections: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        open_connections.add(ws)
        try:
            await echo_ws(ws)
        finally:
            open_connections.discard(ws)

    url = await plain_ws(handler)
    with contained_leaks():
        try:
            await failure(url, transports=["websocket"], timeout=0.5)
            await until(lambda: not open_connections, 2.0)
        finally:
            await reap_leaked_websockets()


# -- debug trace ----------------------------------------------------------------------------------


async def test_debug_trace(serve: ServeFn, caplog: pytest.LogCaptureFixture) -> None:
    url = await serve(aiosio.Server())
    for name in ("aiosio.client.trace", "aiosio.client.manager", "aiosio.client.socket"):
        caplog.set_level(logging.DEBUG, logger=name)
    client = aiosio.Client(url, transports=["polling"], reconnection=False)
    try:
        await asyncio.wait_for(client.connect(), 5)
    finally:
        sid = client.id
        await client.disconnect()
    trace = [r.getMessage() for r in caplog.records if r.name == "aiosio.client.trace"]
    manager = [r.getMessage() for r in caplog.records if r.name == "aiosio.client.manager"]
    socket = [r.getMessage() for r in caplog.records if r.name == "aiosio.client.socket"]
    port = url.rsplit(":", 1)[1]
    assert any(m.startswith("* connected to 127.0.0.1 port " + port) for m in trace), trace
    assert any(
        m.startswith("> GET /socket.io/?EIO=4&transport=polling&t=") and m.endswith(" HTTP/1.1")
        for m in trace
    ), trace
    assert f"> Host: 127.0.0.1:{port}" in trace
    assert "< HTTP/1.1 200" in trace
    assert any(m.startswith('< 0{"sid":"') and '"pingInterval":' in m for m in trace), trace
    assert any(m.startswith("> POST /socket.io/?EIO=4&transport=polling&t=") for m in trace)
    assert any(m.startswith(f"opening http://127.0.0.1:{port}") for m in manager), manager
    assert "open" in manager
    assert f"socket connected with id {sid}" in socket
    assert "performing disconnect (/)" in socket


async def test_no_trace_unless_debug_is_on(
    serve: ServeFn, caplog: pytest.LogCaptureFixture
) -> None:
    url = await serve(aiosio.Server())
    caplog.set_level(logging.INFO, logger="aiosio.client")
    client = aiosio.Client(url, transports=["polling"], reconnection=False)
    try:
        await asyncio.wait_for(client.connect(), 5)
    finally:
        await client.disconnect()
    assert not [r for r in caplog.records if r.name == "aiosio.client.trace"]
