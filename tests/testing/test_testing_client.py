"""aiosio.testing: the real client bound to a Server in memory (issue 17 item 3).

What a test sees through it is what a real client sees: each scenario that matters (acks,
events, rooms and broadcasts, a middleware's refusal, an unknown namespace, the server's
disconnections, a refused upgrade, an oversized message) runs both ways, through
``aiosio.testing`` and through ``aiosio.Client`` against the native server on 127.0.0.1, and
the observations must be equal.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

import aiosio
import aiosio.testing
from aiosio import ConnectError
from aiosio import ConnectionRefused
from aiosio import Disconnected
from aiosio import Stage
from aiosio.testing import Received
from aiosio.testing import TestClient
from aiosio.testing import WaitTimeout
from aiosio.testing.pytest_plugin import aiosio_clients
from conftest import ServeFn

ROOT = Path(__file__).resolve().parent.parent.parent
TIMEOUT = 10.0

# The plugin's fixture (the documented example below loads the plugin itself, with -p).
aiosio_client = pytest_asyncio.fixture(aiosio_clients, name="aiosio_client")

# Connect a client of ``namespace`` to ``server``: in memory, or over TCP to the native server.
Connect = Callable[..., Awaitable[aiosio.Client]]


@pytest.fixture(params=["memory", "tcp"])
async def connect(request: pytest.FixtureRequest, serve_native: ServeFn) -> AsyncIterator[Connect]:
    made: list[aiosio.Client] = []
    urls: dict[int, str] = {}

    async def start(server: aiosio.Server, namespace: str = "/", **options: Any) -> aiosio.Client:
        client: aiosio.Client
        if request.param == "memory":
            client = TestClient(server, namespace, **options)
        else:
            if id(server) not in urls:
                urls[id(server)] = await serve_native(server)
            headers = options.pop("headers", None)
            client = aiosio.Client(
                urls[id(server)] + namespace,
                reconnection=False,
                force_new=True,
                transports=("websocket",),
                extra_headers=headers,
                **options,
            )
        made.append(client)
        await asyncio.wait_for(client.connect(), TIMEOUT)
        return client

    yield start
    for client in made:
        await client.disconnect()


def recorder(client: aiosio.Client) -> list[tuple[str, list[Any]]]:
    seen: list[tuple[str, list[Any]]] = []
    client.on_any(lambda event, *args: seen.append((event, list(args))))
    return seen


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            await asyncio.sleep(0.001)


def chat_server() -> aiosio.Server:
    sio = aiosio.Server()

    @sio.on("connection")
    def hello(socket: aiosio.Socket) -> None:
        socket.emit("hello", socket.handshake.auth, socket.handshake.query.get("room"))

    @sio.on("echo")
    def echo(_socket: aiosio.Socket, *args: Any) -> list[Any]:
        return list(args)

    @sio.on("join")
    def join(socket: aiosio.Socket, room: str) -> str:
        socket.join(room)
        return room

    @sio.on("say")
    def say(socket: aiosio.Socket, room: str, text: str) -> None:
        socket.to(room).emit("said", text)

    @sio.on("announce")
    def announce(_socket: aiosio.Socket, room: str, text: str) -> None:
        sio.to(room).emit("announced", text)

    @sio.on("shout")
    def shout(socket: aiosio.Socket, text: str) -> None:
        socket.broadcast.emit("shouted", text)

    @sio.on("ask")
    async def ask(socket: aiosio.Socket, question: str) -> Any:
        return await socket.timeout(TIMEOUT).emit_with_ack("question", question)

    @sio.on("binary")
    def binary(_socket: aiosio.Socket, data: bytes) -> bytes:
        return data[::-1]

    @sio.on("kick")
    def kick(socket: aiosio.Socket, close: bool) -> None:
        socket.disconnect(close)

    return sio


async def test_acks_events_rooms_and_broadcasts_as_a_real_client_sees_them(
    connect: Connect,
) -> None:
    sio = chat_server()
    alice = await connect(sio, auth={"name": "alice"}, query={"room": "r1"})
    seen_alice = recorder(alice)
    bob = await connect(sio, auth={"name": "bob"})
    seen_bob = recorder(bob)
    carol = await connect(sio)
    seen_carol = recorder(carol)
    assert await alice.emit_with_ack("echo", 1, "two", {"three": [3]}) == [1, "two", {"three": [3]}]
    assert await alice.emit_with_ack("binary", b"\x00\x01\x02") == b"\x02\x01\x00"
    assert await alice.emit_with_ack("join", "r1") == "r1"
    assert await bob.emit_with_ack("join", "r1") == "r1"
    bob.on("question", lambda q: f"bob answers {q}")
    assert await alice.emit_with_ack("say", "r1", "hi room") is None
    assert await alice.emit_with_ack("shout", "hi all") is None
    assert await alice.emit_with_ack("echo", "barrier") == ["barrier"]
    assert await bob.emit_with_ack("ask", "why?") == "bob answers why?"
    await until(lambda: len(seen_carol) == 1 and len(seen_bob) == 3)
    assert seen_alice == []  # the hello came before the recorder; no own room or broadcast
    assert seen_bob == [("said", ["hi room"]), ("shouted", ["hi all"]), ("question", ["why?"])]
    assert seen_carol == [("shouted", ["hi all"])]


@pytest.mark.parametrize(
    ("close", "reason", "server_reason"),
    [
        (False, "io server disconnect", "server namespace disconnect"),
        (True, "io server disconnect", "server namespace disconnect"),
    ],
)
async def test_the_server_disconnecting_gives_the_real_reasons(
    connect: Connect, close: bool, reason: str, server_reason: str
) -> None:
    sio = chat_server()
    server_reasons: list[str] = []
    sio.on("connection", lambda s: s.on("disconnect", lambda r, *_: server_reasons.append(r)))
    client = await connect(sio)
    reasons: list[str] = []
    client.on("disconnect", lambda reason, *_: reasons.append(reason))
    client.emit("kick", close)
    await until(lambda: reasons != [] and server_reasons != [])
    assert reasons == [reason]
    assert not client.connected
    assert server_reasons == [server_reason]


async def test_a_middleware_refusal_is_the_real_connect_error(connect: Connect) -> None:
    sio = aiosio.Server()

    @sio.use
    async def require_token(socket: aiosio.Socket) -> None:
        if socket.handshake.auth.get("token") != "secret":
            raise ConnectionRefused("not authorized", data={"code": 401, "retry": False})

    with pytest.raises(ConnectError) as caught:
        await connect(sio, auth={"token": "wrong"})
    error = caught.value
    assert error.stage is Stage.NAMESPACE
    assert error.message == "not authorized"
    assert error.data == {"code": 401, "retry": False}
    assert error.hint == "refused by the server's middleware; check the auth you send"
    client = await connect(sio, auth={"token": "secret"})
    assert client.connected


async def test_an_unknown_namespace_is_the_real_connect_error(connect: Connect) -> None:
    with pytest.raises(ConnectError) as caught:
        await connect(chat_server(), "/nowhere")
    assert caught.value.stage is Stage.NAMESPACE
    assert caught.value.message == "Invalid namespace"


async def test_a_refused_upgrade_is_the_real_connect_error(connect: Connect) -> None:
    async def allow(request: aiosio.HttpRequest) -> None:
        if request.headers.get("x-tenant") != "acme":
            raise aiosio.ConnectionRefused("tenant unknown")

    sio = aiosio.Server(allow_request=allow)
    with pytest.raises(ConnectError) as caught:
        await connect(sio, headers={"X-Tenant": "other"})
    error = caught.value
    assert error.stage is Stage.WEBSOCKET
    assert error.status == 400
    assert error.body == b"tenant unknown"
    assert error.message == "the WebSocket handshake was answered with HTTP 400 tenant unknown"
    client = await connect(sio, headers={"X-Tenant": "acme"})
    assert client.connected


async def test_max_http_buffer_size_at_its_boundary(connect: Connect) -> None:
    sio = aiosio.Server(max_http_buffer_size=1000)
    sio.on("echo", lambda _s, text: len(text))
    server_reasons: list[str] = []
    sio.on("connection", lambda s: s.on("disconnect", lambda r, *_: server_reasons.append(r)))
    client = await connect(sio)
    overhead = len('42["echo",""]')
    assert await client.emit_with_ack("echo", "a" * (1000 - overhead - 2)) == 1000 - overhead - 2
    reasons: list[str] = []
    client.on("disconnect", lambda reason, *_: reasons.append(reason))
    with pytest.raises(Disconnected):
        await client.emit_with_ack("echo", "a" * (1000 - overhead + 1))
    assert reasons == ["transport close"]
    await until(lambda: server_reasons != [])
    assert server_reasons == ["transport error"]


async def test_the_client_max_http_buffer_size(connect: Connect) -> None:
    sio = aiosio.Server()
    sio.on("send", lambda socket, size: socket.emit("data", "a" * size))
    server_reasons: list[str] = []
    sio.on("connection", lambda s: s.on("disconnect", lambda r, *_: server_reasons.append(r)))
    client = await connect(sio, max_http_buffer_size=200)
    reasons: list[str] = []
    client.on("disconnect", lambda reason, *_: reasons.append(reason))
    seen = recorder(client)
    overhead = len('42["data",""]')
    client.emit("send", 200 - overhead)
    await until(lambda: seen != [])
    client.emit("send", 200 - overhead + 1)
    await until(lambda: reasons != [] and server_reasons != [])
    assert seen == [("data", ["a" * (200 - overhead)])]
    assert reasons == ["transport error"]  # the client refused what came (1009)
    assert server_reasons == ["transport close"]


# -- aiosio.testing's own API ----------------------------------------------------------------------


async def test_received_and_wait_for() -> None:
    sio = chat_server()
    async with aiosio.testing.connect(sio, auth={"name": "x"}, query={"room": "q"}) as client:
        # The hello was sent at the connection: wait_for finds what arrived before the call.
        assert await client.wait_for("hello") == [{"name": "x"}, "q"]
        assert client.received == [("hello", [{"name": "x"}, "q"])]
        assert isinstance(client.received[0], Received)
        await client.emit_with_ack("join", "r")
        client.emit("announce", "r", "one")
        client.emit("announce", "r", "two")
        # Each wait_for returns the next one of that name.
        assert await client.wait_for("announced") == ["one"]
        assert await client.wait_for("announced") == ["two"]
        assert client.events("announced") == [["one"], ["two"]]
        with pytest.raises(WaitTimeout, match=r"no 'announced' event within 0.05s; received: \["):
            await client.wait_for("announced", timeout=0.05)
    assert client.disconnect_reason == "io client disconnect"


async def test_wait_for_raises_when_the_server_disconnects() -> None:
    sio = chat_server()
    async with aiosio.testing.connect(sio) as client:
        client.emit("kick", False)
        with pytest.raises(Disconnected, match=r"disconnected \(io server disconnect\) while "):
            await client.wait_for("never")
        assert await client.wait_disconnected() == "io server disconnect"


async def test_a_clean_disconnect_reaches_the_server_before_the_block_ends() -> None:
    sio = chat_server()
    reasons: list[str] = []
    sio.on("connection", lambda s: s.on("disconnect", lambda r, *_: reasons.append(r)))
    async with aiosio.testing.connect(sio) as client:
        assert client.connected
        with pytest.raises(WaitTimeout, match=r"still connected after 0.01s"):
            await client.wait_disconnected(timeout=0.01)
    assert reasons == ["client namespace disconnect"]
    assert len(sio.engine.clients) == 0


async def test_a_dropped_connection() -> None:
    sio = chat_server()
    reasons: list[str] = []
    sio.on("connection", lambda s: s.on("disconnect", lambda r, *_: reasons.append(r)))
    async with aiosio.testing.connect(sio) as client:
        client.opener.pipes[-1].client.abort()
        assert await client.wait_disconnected() == "transport close"
        await until(lambda: reasons != [])
    assert reasons == ["transport close"]


async def test_a_connect_never_answered_times_out_as_a_connect_error() -> None:
    sio = aiosio.Server()
    never = asyncio.Event()

    @sio.use
    async def stuck(_socket: aiosio.Socket) -> None:
        await never.wait()

    with pytest.raises(ConnectError) as caught:
        await aiosio.testing.open_client(sio, timeout=0.05)
    assert caught.value.stage is Stage.TIMEOUT
    assert caught.value.message == "namespace '/' did not answer the CONNECT within 0.05s"
    never.set()


async def test_headers_query_address_and_path_reach_the_handshake() -> None:
    sio = aiosio.Server(path="/rt/")
    seen: list[aiosio.Handshake] = []
    sio.on("connection", lambda s: seen.append(s.handshake))
    async with aiosio.testing.connect(
        sio, headers={"X-Token": "t1"}, query={"v": "2"}, client_address=("10.0.0.7", 4242)
    ):
        pass
    handshake = seen[0]
    assert handshake.headers["x-token"] == "t1"
    assert handshake.query["v"] == "2"
    assert handshake.query["EIO"] == "4"
    assert handshake.address == "10.0.0.7"
    assert handshake.url.startswith("/rt/?")


async def test_a_wrong_path_is_the_real_404() -> None:
    with pytest.raises(ConnectError) as caught:
        await aiosio.testing.open_client(aiosio.Server(), path="/wrong/")
    assert caught.value.stage is Stage.WEBSOCKET
    assert caught.value.status == 404


async def test_the_servers_backpressure_holds_the_clients_messages() -> None:
    sio = aiosio.Server(max_handlers_per_connection=1)
    started, release = asyncio.Event(), asyncio.Event()
    echoed: list[int] = []

    @sio.on("slow")
    async def slow(_socket: aiosio.Socket) -> str:
        started.set()
        await release.wait()
        return "done"

    @sio.on("echo")
    def echo(_socket: aiosio.Socket, value: int) -> int:
        echoed.append(value)
        return value

    async with aiosio.testing.connect(sio) as client:
        answer = client.emit_with_ack("slow")
        await asyncio.wait_for(started.wait(), TIMEOUT)
        second = client.emit_with_ack("echo", 2)
        for _ in range(20):
            await asyncio.sleep(0)  # turns of the loop: the pipe delivers nothing while paused
        assert echoed == []
        release.set()
        assert await asyncio.wait_for(answer, TIMEOUT) == "done"
        assert await asyncio.wait_for(second, TIMEOUT) == 2
        assert echoed == [2]


def test_options_that_make_no_sense_in_memory_are_refused() -> None:
    with pytest.raises(TypeError, match="transports, upgrade cannot be set"):
        TestClient(aiosio.Server(), transports=("polling",), upgrade=False)
    with pytest.raises(ValueError, match="namespace must start with '/', got 'chat'"):
        TestClient(aiosio.Server(), "chat")


async def test_a_server_first_used_in_another_event_loop_serves_this_one() -> None:
    # As a module-level server serves tests that each get their own loop: with no session
    # left from the first loop, the server takes this one (tests/io/test_server_loops.py).
    sio = chat_server()

    async def first_use() -> None:
        async with aiosio.testing.connect(sio) as client:
            assert await client.emit_with_ack("echo", 1) == [1]

    thread = threading.Thread(target=asyncio.run, args=(first_use(),))
    thread.start()
    await asyncio.to_thread(thread.join, TIMEOUT)
    async with aiosio.testing.connect(sio) as client:
        assert await client.emit_with_ack("echo", 2) == [2]


async def test_the_fixture_connects_and_disconnects(
    aiosio_client: aiosio.testing.ClientFactory,
) -> None:
    sio = chat_server()
    client = await aiosio_client(sio, auth={"name": "f"})
    assert await client.wait_for("hello") == [{"name": "f"}, None]
    assert await client.emit_with_ack("echo", "x") == ["x"]


def test_importing_aiosio_testing_and_its_plugin_imports_no_pytest() -> None:
    # The plugin too: a bare install (no pytest) imports every module of aiosio.
    code = (
        "import sys, aiosio.testing, aiosio.testing.pytest_plugin\n"
        "imported = {'pytest', 'pytest_asyncio', '_pytest'} & set(sys.modules)\n"
        "assert not imported, imported"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


def test_the_documented_example_passes_under_pytest(tmp_path: Path) -> None:
    """docs/testing.md's example is a test file: run it with the configuration the page gives."""
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```\n", text, re.MULTILINE | re.DOTALL)
    tests = [b for b in blocks if "def test_" in b]
    assert tests, "docs/testing.md shows a test"
    config = re.search(r"^```toml\n(.*?)^```\n", text, re.MULTILINE | re.DOTALL)
    assert config is not None, "docs/testing.md shows the pytest configuration"
    (tmp_path / "pyproject.toml").write_text(config.group(1))
    for index, block in enumerate(tests):
        (tmp_path / f"test_example_{index}.py").write_text(block)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    expected = sum(len(re.findall(r"^async def test_|^def test_", b, re.MULTILINE)) for b in tests)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{expected} passed" in done.stdout, done.stdout
