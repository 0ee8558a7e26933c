"""The client's own mistakes and its users': options refused at construction, event names refused
at the emit, an auth callable that raises (sync or async), handlers that raise, a volatile emit
while disconnected, a disconnect() from the disconnect handler, and acknowledgements retried
until the last try times out. Against aiosio's native server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import aiosio
from aiosio import AckTimeout
from aiosio import ConnectError
from aiosio import Stage
from conftest import ServeFn

TIMEOUT = 10.0


def echo_server() -> aiosio.Server:
    sio = aiosio.Server()
    sio.on("echo", lambda _socket, *args: args)
    sio.on("silence", lambda _socket: None)
    return sio


def test_options_refused_at_construction() -> None:
    with pytest.raises(ValueError, match=r"url must start with http://.*got 'ftp://host'"):
        aiosio.Client("ftp://host")
    with pytest.raises(TypeError, match="transports must be a sequence of names"):
        aiosio.Client("http://127.0.0.1:1", transports="websocket")


def test_event_names_refused_at_the_emit() -> None:
    client = aiosio.Client("http://127.0.0.1:1")
    with pytest.raises(TypeError, match="event name must be a string, got int"):
        client.emit(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'disconnect' is a reserved event name"):
        client.emit("disconnect")


async def test_an_auth_callable_that_raises(serve_native: ServeFn, clients: Any) -> None:
    url = await serve_native(echo_server())

    def broken() -> dict[str, str]:
        raise LookupError("no token stored")

    async def broken_later() -> dict[str, str]:
        await asyncio.sleep(0)
        raise PermissionError("token store locked")

    for auth, words in (
        (broken, "the auth callable raised LookupError: no token stored"),
        (broken_later, "the auth callable raised PermissionError: token store locked"),
    ):
        client = clients(url, auth=auth)
        seen: list[ConnectError] = []
        client.on("connect_error", seen.append)
        with pytest.raises(ConnectError) as caught:
            await asyncio.wait_for(client.connect(), TIMEOUT)
        assert caught.value.stage is Stage.NAMESPACE
        assert caught.value.message == words
        assert caught.value.hint == "fix the function given as auth="
        assert seen == [caught.value]


async def test_an_async_auth_callable(serve_native: ServeFn, clients: Any) -> None:
    sio = echo_server()
    tokens: list[str] = []
    sio.on("connection", lambda socket: tokens.append(socket.handshake.auth["token"]))
    url = await serve_native(sio)

    async def token() -> dict[str, str]:
        await asyncio.sleep(0)
        return {"token": "t-1"}

    client = clients(url, auth=token)
    await asyncio.wait_for(client.connect(), TIMEOUT)
    assert tokens == ["t-1"]


async def test_handlers_that_raise_are_logged(
    serve_native: ServeFn, clients: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="aiosio.client")
    sio = echo_server()
    url = await serve_native(sio)
    client = clients(url, transports=["websocket"])

    def fails(*_args: Any) -> None:
        raise RuntimeError("handler bug")

    async def fails_later(*_args: Any) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("async handler bug")

    async def answers_later(value: int) -> int:
        await asyncio.sleep(0)
        return value + 1

    client.on("news", fails)
    client.on("news", fails_later)
    client.on("question", answers_later)
    await asyncio.wait_for(client.connect(), TIMEOUT)
    (socket,) = await sio.fetch_sockets()
    socket.emit("news", 1)
    assert await socket.timeout(TIMEOUT).emit_with_ack("question", 41) == 42
    raised = [r for r in caplog.records if "raised" in r.getMessage()]
    assert [str(r.exc_info[1]) for r in raised if r.exc_info] == [
        "handler bug",
        "async handler bug",
    ]
    assert client.connected  # a handler's error is logged, never fatal


async def test_a_volatile_emit_while_disconnected_is_dropped(
    serve_native: ServeFn, clients: Any
) -> None:
    sio = echo_server()
    received: list[Any] = []
    sio.on("note", lambda _socket, text: received.append(text))
    url = await serve_native(sio)
    client = clients(url, transports=["websocket"])
    client.volatile.emit("note", "dropped")  # not connected: not buffered
    client.emit("note", "buffered")
    await asyncio.wait_for(client.connect(), TIMEOUT)
    assert await client.emit_with_ack("echo", "after", timeout=TIMEOUT) == "after"
    assert received == ["buffered"]


async def test_disconnect_from_the_disconnect_handler(serve_native: ServeFn, clients: Any) -> None:
    sio = echo_server()
    url = await serve_native(sio)
    client = clients(url, transports=["websocket"])
    reasons: list[str] = []

    async def on_disconnect(reason: str, *_: Any) -> None:
        reasons.append(reason)
        await client.disconnect()  # already disconnecting: returns at once

    client.on("disconnect", on_disconnect)
    await asyncio.wait_for(client.connect(), TIMEOUT)
    (socket,) = await sio.fetch_sockets()
    socket.disconnect()
    async with asyncio.timeout(TIMEOUT):
        while not reasons:
            await asyncio.sleep(0.01)
    assert reasons == ["io server disconnect"]
    assert not client.connected


async def test_retried_acknowledgements_time_out_after_the_last_try(
    serve_native: ServeFn, clients: Any
) -> None:
    sio = aiosio.Server()
    tries: list[str] = []
    release = asyncio.Event()

    @sio.on("unanswered")
    async def unanswered(_socket: aiosio.Socket, text: str) -> None:
        tries.append(text)
        await release.wait()  # acknowledged only once the client gave up

    url = await serve_native(sio)
    client = clients(url, transports=["websocket"], retries=2, ack_timeout=0.2)
    await asyncio.wait_for(client.connect(), TIMEOUT)
    with pytest.raises(AckTimeout, match=r"'unanswered' was not acknowledged within 0\.2s"):
        await asyncio.wait_for(client.emit_with_ack("unanswered", "x"), TIMEOUT)
    assert tries == ["x", "x", "x"]  # the first try and two retries
    release.set()
