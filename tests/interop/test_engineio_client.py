"""Interop with the official ``engine.io-client`` 6.x from npm, against both servers.

Each test runs ``tests/js/eio_client.mjs`` (one JSON object per line for everything the client
observes) against an :class:`aiosio.EngineServer` served natively and under uvicorn, and checks
both sides. The expected outcomes were checked against the reference ``engine.io`` 6.6 server
with the same client script.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from aiosio import EngineServer
from aiosio import EngineSocket
from aiosio import HttpRequest
from conftest import ServeFn
from conftest import run_node

pytestmark = pytest.mark.interop

SCRIPT = "eio_client.mjs"

# The messages of the script's ``echo`` scenario, in order (text, unicode, empty, binary).
MESSAGES: list[str | bytes] = [
    "hello",
    "héllo",
    "😀 emoji",
    "",
    b"\x00\x01\x02\x03\xff",
    bytes(range(256)),
    b"",
    "last",
]
# engine.io-parser decodes the empty text message ("4") to undefined, which the script prints as
# null; it does the same against the reference server.
ECHOED = [None if m == "" else m for m in MESSAGES]

CLIENT_CLOSE_DESCRIPTION = {
    "polling": "transport closed by the server",
    "websocket": "websocket connection closed",
}

Data = str | bytes


class Sessions:
    """What the server side of every session sees. By default it echoes each message."""

    def __init__(
        self,
        engine: EngineServer,
        *,
        on_connection: Callable[[EngineSocket], None] | None = None,
        on_message: Callable[[EngineSocket, Data], None] | None = None,
    ) -> None:
        self.sockets: dict[str, EngineSocket] = {}
        self.received: dict[str, list[Data]] = {}
        self.upgrades: dict[str, list[str]] = {}
        self.closed: dict[str, tuple[str, Any]] = {}
        self.opened_at: dict[str, float] = {}
        self.closed_at: dict[str, float] = {}
        self._on_connection = on_connection
        self._on_message = on_message or (lambda socket, data: socket.send(data))
        engine.on("connection", self._connection)

    def _connection(self, socket: EngineSocket) -> None:
        sid = socket.id
        loop = asyncio.get_running_loop()
        self.sockets[sid] = socket
        self.received[sid] = []
        self.upgrades[sid] = []
        self.opened_at[sid] = loop.time()

        def message(data: Data) -> None:
            self.received[sid].append(data)
            self._on_message(socket, data)

        def upgrade() -> None:
            self.upgrades[sid].append(socket.transport)

        def close(reason: str, description: Any) -> None:
            self.closed[sid] = (reason, description)
            self.closed_at[sid] = loop.time()

        socket.on("message", message)
        socket.on("upgrade", upgrade)
        socket.on("close", close)
        if self._on_connection is not None:
            self._on_connection(socket)

    async def close_reason(self, sid: str) -> str:
        """The reason the server closed ``sid`` for (waiting a little for it)."""
        await until(lambda: sid in self.closed, f"the server never closed session {sid}")
        return self.closed[sid][0]


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"after {timeout}s: {what}")
        await asyncio.sleep(0.01)


def of(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == name]


def data(event: dict[str, Any]) -> Data | None:
    """The message an event of the script carries (binary is base64 with its length)."""
    if not event["binary"]:
        text: str | None = event["data"]
        return text
    raw = base64.b64decode(event["data"])
    assert len(raw) == event["length"]
    return raw


def client_args(url: str, transports: str, scenario: str, *more: str) -> list[str]:
    upgrade = "true" if "," in transports else "false"
    return [
        "--url",
        url,
        "--transports",
        transports,
        "--upgrade",
        upgrade,
        "--scenario",
        scenario,
        *more,
    ]


def the_close(events: list[dict[str, Any]]) -> dict[str, Any]:
    assert events, "the client printed nothing"
    assert events[-1]["event"] == "close", events
    assert len(of(events, "close")) == 1
    return events[-1]


# -- echo, upgrade, client-initiated close --------------------------------------------------------


@pytest.mark.parametrize(
    "transports", ["polling", "websocket", "polling,websocket"], ids=["polling", "ws", "upgrade"]
)
async def test_echo_text_and_binary(serve: ServeFn, transports: str) -> None:
    engine = EngineServer()
    sessions = Sessions(engine)
    posts: list[bytes] = []  # the bodies of the polling POSTs

    @engine.on("headers")
    def on_headers(headers: list[tuple[str, str]], request: HttpRequest) -> None:
        if request.method == "POST":
            posts.append(request.body)

    url = await serve(engine)
    events = await run_node(SCRIPT, *client_args(url, transports, "echo"))

    opened = of(events, "open")
    assert len(opened) == 1
    first = transports.split(",")[0]
    assert opened[0]["transport"] == first
    # The client runs with the server's settings, from the OPEN packet.
    assert opened[0]["pingInterval"] == 25000
    assert opened[0]["pingTimeout"] == 20000
    assert opened[0]["maxPayload"] == 1_000_000
    assert opened[0]["upgrades"] == (["websocket"] if first == "polling" else [])
    sid = opened[0]["sid"]
    upgrading = transports == "polling,websocket"
    batches = 2 if upgrading else 1
    sent = of(events, "sent")
    assert [data(e) for e in sent] == MESSAGES * batches
    assert all(e["transport"] == first for e in sent[: len(MESSAGES)])
    # Every message, text or binary, came back exactly and in order.
    assert [data(e) for e in of(events, "message")] == ECHOED * batches
    assert sessions.received[sid] == MESSAGES * batches
    assert all(
        type(got) is type(want)
        for got, want in zip(sessions.received[sid], MESSAGES * batches, strict=True)
    )

    if upgrading:
        assert of(events, "upgrade") == [{"event": "upgrade", "transport": "websocket"}]
        assert all(e["transport"] == "websocket" for e in sent[len(MESSAGES) :])
        assert sessions.upgrades[sid] == ["websocket"]
        assert sessions.sockets[sid].transport == "websocket"
    else:
        assert of(events, "upgrade") == []
        assert sessions.upgrades[sid] == []
        assert sessions.sockets[sid].transport == first
    if transports == "polling":
        # The messages sent while a POST was in flight went out together in the next one.
        assert len(posts) < len(MESSAGES)
        assert any(body.count(b"\x1e") >= 3 for body in posts), posts
    assert of(events, "error") == []

    # The client closed (socket.close()): the server sees "transport close".
    assert the_close(events) == {"event": "close", "reason": "forced close", "description": None}
    assert await sessions.close_reason(sid) == "transport close"
    assert sessions.sockets[sid].ready_state == "closed"
    assert engine.clients_count == 0


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
@pytest.mark.parametrize("transports", ["websocket", "polling,websocket"], ids=["ws", "upgrade"])
async def test_per_message_deflate(serve: ServeFn, transports: str, binary: bool) -> None:
    """With per_message_deflate on, the client (ws) compresses messages over 1024 bytes; large
    compressible messages still arrive intact both ways."""
    engine = EngineServer(per_message_deflate=True)
    sessions = Sessions(engine)
    url = await serve(engine)
    args = client_args(url, transports, "big", "--size", "20000", "--count", "3")
    events = await run_node(SCRIPT, *args, "--binary", str(binary).lower())

    sid = events[0]["sid"]
    expected: Data = bytes([7]) * 20000 if binary else "x" * 20000
    assert [data(e) for e in of(events, "message")] == [expected] * 3
    assert sessions.received[sid] == [expected] * 3
    if transports == "polling,websocket":
        assert sessions.upgrades[sid] == ["websocket"]
    assert the_close(events)["reason"] == "forced close"
    assert await sessions.close_reason(sid) == "transport close"


# -- server-initiated close -----------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["polling", "websocket"])
@pytest.mark.parametrize("when", ["on-connection", "after-message"])
async def test_server_close(serve: ServeFn, transport: str, when: str) -> None:
    engine = EngineServer()
    if when == "on-connection":
        sessions = Sessions(engine, on_connection=lambda socket: socket.close())
        more: tuple[str, ...] = ()
    else:

        def echo_then_close(socket: EngineSocket, data: Data) -> None:
            socket.send(data)
            socket.close()  # after the packets already buffered, like the reference

        sessions = Sessions(engine, on_message=echo_then_close)
        more = ("--send", "bye")
    url = await serve(engine)
    events = await run_node(SCRIPT, *client_args(url, transport, "wait-close", *more))

    assert events[0]["event"] == "open"
    assert events[0]["transport"] == transport
    sid = events[0]["sid"]
    expected_echo = [] if when == "on-connection" else ["bye"]
    assert [data(e) for e in of(events, "message")] == expected_echo
    assert the_close(events) == {
        "event": "close",
        "reason": "transport close",
        "description": CLIENT_CLOSE_DESCRIPTION[transport],
    }
    assert await sessions.close_reason(sid) == "forced close"


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_server_burst_then_close(serve: ServeFn, transport: str) -> None:
    """300 messages sent at once, then close(): every one arrives, in order, before the close."""
    burst: list[Data] = [f"m{i}" if i % 2 else bytes([i % 256]) * (i % 7) for i in range(300)]

    def send_all_and_close(socket: EngineSocket) -> None:
        for message in burst:
            socket.send(message)
        socket.close()

    engine = EngineServer()
    sessions = Sessions(engine, on_connection=send_all_and_close)
    url = await serve(engine)
    events = await run_node(SCRIPT, *client_args(url, transport, "wait-close"))

    sid = events[0]["sid"]
    assert [data(e) for e in of(events, "message")] == burst
    assert the_close(events) == {
        "event": "close",
        "reason": "transport close",
        "description": CLIENT_CLOSE_DESCRIPTION[transport],
    }
    assert await sessions.close_reason(sid) == "forced close"


# -- heartbeat ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "transports", ["polling", "websocket", "polling,websocket"], ids=["polling", "ws", "upgrade"]
)
async def test_heartbeat_keeps_session_alive(serve: ServeFn, transports: str) -> None:
    """With pingInterval 100 ms and pingTimeout 100 ms a client that answers stays connected
    for a second (about ten ping cycles, across the upgrade), then echoes as usual."""
    engine = EngineServer(ping_interval=0.1, ping_timeout=0.1)
    sessions = Sessions(engine)
    url = await serve(engine)
    client = asyncio.create_task(
        run_node(SCRIPT, *client_args(url, transports, "echo", "--start-on", "go"))
    )
    try:
        await until(lambda: len(sessions.sockets) == 1, "the client never connected")
        (sid,) = sessions.sockets
        await asyncio.sleep(1.0)
        assert sid not in sessions.closed
        assert sessions.sockets[sid].ready_state == "open"
    finally:
        if sessions.sockets:
            next(iter(sessions.sockets.values())).send("go")
        events = await client
    assert len(of(events, "ping")) >= 5
    batches = 2 if "," in transports else 1
    assert [data(e) for e in of(events, "message")] == ["go", *ECHOED * batches]
    assert the_close(events)["reason"] == "forced close"
    assert await sessions.close_reason(sid) == "transport close"


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_heartbeat_timeout_seen_by_server(serve: ServeFn, transport: str) -> None:
    """The client receives pings but never answers: the server closes with "ping timeout"."""
    engine = EngineServer(ping_interval=0.2, ping_timeout=0.2)
    sessions = Sessions(engine)
    url = await serve(engine)
    events = await run_node(SCRIPT, *client_args(url, transport, "no-pong"))

    sid = events[0]["sid"]
    assert (events[0]["pingInterval"], events[0]["pingTimeout"]) == (200, 200)
    assert of(events, "ping"), "the server never pinged"
    assert the_close(events) == {
        "event": "close",
        "reason": "transport close",
        "description": CLIENT_CLOSE_DESCRIPTION[transport],
    }
    assert await sessions.close_reason(sid) == "ping timeout"
    # pingInterval + pingTimeout after the open (the timers are never early).
    assert sessions.closed_at[sid] - sessions.opened_at[sid] >= 0.39


class FreezingProxy:
    """A TCP proxy on 127.0.0.1 in front of a server. Once frozen it drops every byte the server
    sends, as if the server had hung; what the client sends still reaches the server."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.frozen = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}"

    async def _connection(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(client_writer)
        try:
            server_reader, server_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
            self._writers.append(server_writer)
            await asyncio.gather(
                self._pump(client_reader, server_writer, from_server=False),
                self._pump(server_reader, client_writer, from_server=True),
            )
        finally:
            client_writer.close()
            self._tasks.discard(task)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, from_server: bool
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if from_server and self.frozen:
                    continue
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        # A hung server does not close connections either: once frozen, the client's end stays
        # open until the client closes it.
        if not (from_server and self.frozen):
            writer.close()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        await self._server.wait_closed()


@pytest.fixture
async def proxy_factory() -> AsyncIterator[Callable[[str], Any]]:
    proxies: list[FreezingProxy] = []

    async def start(url: str) -> tuple[FreezingProxy, str]:
        proxy = FreezingProxy(int(url.rsplit(":", 1)[1]))
        proxies.append(proxy)
        return proxy, await proxy.start()

    yield start
    for proxy in proxies:
        await proxy.close()


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_heartbeat_timeout_seen_by_client(
    serve: ServeFn, proxy_factory: Callable[[str], Any], transport: str
) -> None:
    """The server's bytes stop reaching the client (a proxy drops them once the client said
    "freeze"): no ping arrives within pingInterval + pingTimeout, the client closes with
    "ping timeout"."""
    engine = EngineServer(ping_interval=0.2, ping_timeout=0.2)
    proxy: FreezingProxy | None = None

    def freeze(socket: EngineSocket, data: Data) -> None:
        assert proxy is not None
        if data == "freeze":
            proxy.frozen = True

    sessions = Sessions(engine, on_message=freeze)
    url = await serve(engine)
    proxy, proxy_url = await proxy_factory(url)
    events = await run_node(SCRIPT, *client_args(proxy_url, transport, "server-timeout"))

    sid = events[0]["sid"]
    assert (events[0]["pingInterval"], events[0]["pingTimeout"]) == (200, 200)
    assert sessions.received[sid] == ["freeze"]
    close = the_close(events)
    assert close["reason"] == "ping timeout"
    # The server stops hearing pongs at the same time; which side gives up first is a race.
    assert await sessions.close_reason(sid) in ("ping timeout", "transport close")


# -- maxPayload -----------------------------------------------------------------------------------

LIMIT = 1000


@pytest.mark.parametrize(
    ("size", "binary", "char", "accepted"),
    [
        (LIMIT - 1, False, "x", True),  # "4" + 999 characters: a 1000-byte frame, at the limit
        (LIMIT, False, "x", False),  # a 1001-byte frame
        (LIMIT, True, "x", True),  # binary frames carry the bytes alone
        (LIMIT + 1, True, "x", False),
        (LIMIT // 2, False, "é", False),  # 501 characters but 1001 bytes: the limit is in bytes
    ],
    ids=["text-at-limit", "text-over", "binary-at-limit", "binary-over", "unicode-over"],
)
async def test_max_payload_websocket(
    serve: ServeFn,
    size: int,
    binary: bool,
    char: str,
    accepted: bool,
) -> None:
    """A WebSocket message over max_http_buffer_size (advertised to the client as maxPayload)
    ends that session with "transport error"; another session is unaffected."""
    engine = EngineServer(max_http_buffer_size=LIMIT)
    sessions = Sessions(engine)
    url = await serve(engine)

    # A bystander session, open during the big message, which echoes once told "go".
    bystander = asyncio.create_task(
        run_node(SCRIPT, *client_args(url, "websocket", "echo", "--start-on", "go"))
    )
    try:
        await until(lambda: len(sessions.sockets) == 1, "the bystander never connected")
        (bystander_sid,) = sessions.sockets
        events = await run_node(
            SCRIPT,
            *client_args(url, "websocket", "big", "--size", str(size), "--char", char),
            *("--binary", str(binary).lower()),
        )
        sid = events[0]["sid"]
        assert events[0]["transport"] == "websocket"
        assert events[0]["maxPayload"] == LIMIT
        (sent,) = of(events, "sent")
        assert sent["bytes"] == (size if binary else len((char * size).encode()))
        if accepted:
            (echo,) = of(events, "message")
            assert data(echo) == (bytes([7]) * size if binary else char * size)
            assert the_close(events)["reason"] == "forced close"
            assert await sessions.close_reason(sid) == "transport close"
        else:
            assert of(events, "message") == []
            assert the_close(events) == {
                "event": "close",
                "reason": "transport close",
                "description": "websocket connection closed",
            }
            assert await sessions.close_reason(sid) == "transport error"
            assert sessions.received[sid] == []
        assert bystander_sid not in sessions.closed
    finally:
        if sessions.sockets:
            next(iter(sessions.sockets.values())).send("go")
        bystander_events = await bystander
    assert [data(e) for e in of(bystander_events, "message")] == ["go", *ECHOED]
    assert the_close(bystander_events)["reason"] == "forced close"
    assert await sessions.close_reason(bystander_sid) == "transport close"


async def test_max_payload_polling_client(serve: ServeFn) -> None:
    """Over polling the client sends one message over maxPayload all the same (it only splits
    batches): the POST gets 413, the client closes with "transport error" and says so to the
    server with a close packet, as against the reference server."""
    engine = EngineServer(max_http_buffer_size=LIMIT)
    sessions = Sessions(engine)
    url = await serve(engine)
    events = await run_node(SCRIPT, *client_args(url, "polling", "big", "--size", str(LIMIT)))

    sid = events[0]["sid"]
    assert events[0]["maxPayload"] == LIMIT
    assert of(events, "message") == []
    assert of(events, "error") == [{"event": "error", "message": "xhr post error: 413"}]
    assert the_close(events) == {
        "event": "close",
        "reason": "transport error",
        "description": "xhr post error: 413",
    }
    assert await sessions.close_reason(sid) == "transport close"
    assert sessions.received[sid] == []


async def test_max_payload_polling_client_splits_batches(serve: ServeFn) -> None:
    """Over polling the client keeps each POST of several packets under the maxPayload the
    server advertised: four 400-byte messages sent at once arrive in POSTs of at most 1000
    bytes, none refused."""
    engine = EngineServer(max_http_buffer_size=LIMIT)
    sessions = Sessions(engine)
    posts: list[bytes] = []

    @engine.on("headers")
    def on_headers(headers: list[tuple[str, str]], request: HttpRequest) -> None:
        if request.method == "POST":
            posts.append(request.body)

    url = await serve(engine)
    args = client_args(url, "polling", "big", "--size", "400", "--count", "4")
    events = await run_node(SCRIPT, *args)

    sid = events[0]["sid"]
    assert events[0]["maxPayload"] == LIMIT
    assert [data(e) for e in of(events, "message")] == ["x" * 400] * 4
    assert of(events, "error") == []
    assert the_close(events)["reason"] == "forced close"
    assert sessions.received[sid] == ["x" * 400] * 4
    message_posts = [body for body in posts if body != b"1"]  # not the final close packet
    assert len(message_posts) >= 3, message_posts
    assert all(len(body) <= LIMIT for body in message_posts)
    assert await sessions.close_reason(sid) == "transport close"


async def test_max_payload_polling_http_413(serve: ServeFn) -> None:
    """A POST body over max_http_buffer_size gets 413, declared or chunked, and the session
    goes on (the reference only ends that request); a body at the limit is accepted."""
    engine = EngineServer(max_http_buffer_size=LIMIT)
    sessions = Sessions(engine)
    url = await serve(engine)

    async def chunked(body: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(body), 100):
            yield body[start : start + 100]

    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        handshake = await client.get("/engine.io/", params={"EIO": "4", "transport": "polling"})
        assert handshake.status_code == 200
        assert handshake.text.startswith("0")
        open_packet = json.loads(handshake.text[1:])
        assert open_packet["maxPayload"] == LIMIT
        sid = open_packet["sid"]
        params = {"EIO": "4", "transport": "polling", "sid": sid}

        over = b"4" + b"x" * LIMIT
        declared = await client.post("/engine.io/", params=params, content=over)
        assert declared.status_code == 413
        streamed = await client.post("/engine.io/", params=params, content=chunked(over))
        assert streamed.status_code == 413

        at_limit = await client.post(
            "/engine.io/", params=params, content=b"4" + b"y" * (LIMIT - 1)
        )
        assert (at_limit.status_code, at_limit.text) == (200, "ok")
        assert sessions.received[sid] == ["y" * (LIMIT - 1)]
        echo = await client.get("/engine.io/", params=params)
        assert (echo.status_code, echo.text) == (200, "4" + "y" * (LIMIT - 1))
        assert sid not in sessions.closed
