"""Limits from docs/limits.md that had no test at their bound: each is taken exactly to its value
(accepted) and one step past it (refused, with what the client sees), over real sockets on
127.0.0.1.

- ``ServerLimits.max_header_count`` and ``max_header_size`` (native): the request with exactly
  that many headers, that many bytes of head, is served; one more is 431; a request line alone
  over ``max_header_size`` is 414.
- ``ServerLimits.websocket_close_timeout`` (native): a peer that never answers the server's close
  frame is dropped after it, and not before.
- ``EngineServer(max_payload_packets=...)``, and ``aiosio.Server``'s: a POST of exactly that many
  packets is taken, one more closes the session with ``parse error`` (both servers).
- The client's ``reconnection_attempts``: exactly that many tries, then ``reconnect_failed`` and
  no more.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from _eio import TIMEOUT
from _eio import RawConnection
from _eio import assert_serving
from _eio import eventually
from _eio import handshake
from _eio import host_port
from _eio import poll
from _eio import post
from _eio import recorder
from _eio import request_bytes

import aiosio

TEXT = "text/plain;charset=UTF-8"
HANDSHAKE = "/engine.io/?EIO=4&transport=polling"


@pytest.fixture(autouse=True)
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Fails the test if anything reached the event loop's exception handler (HARDENING 14)."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    yield seen
    loop.set_exception_handler(previous)
    assert seen == [], seen


async def status_of(base: str, head: bytes) -> int:
    async with await RawConnection.open(base) as conn:
        await conn.send(head)
        return (await conn.response()).status


# -- ServerLimits.max_header_count, max_header_size ------------------------------------------


async def test_max_header_count_at_and_past_its_bound(serve_native: Any) -> None:
    base = await serve_native(
        aiosio.EngineServer(), limits=aiosio.ServerLimits(max_header_count=20)
    )
    # request_bytes writes Host first: Host and 19 more is 20 headers
    at_bound = request_bytes("GET", HANDSHAKE, base, [(f"X-H{i}", "v") for i in range(19)])
    assert await status_of(base, at_bound) == 200
    past = request_bytes("GET", HANDSHAKE, base, [(f"X-H{i}", "v") for i in range(20)])
    async with await RawConnection.open(base) as conn:
        await conn.send(past)
        response = await conn.response()
        assert response.status == 431
        assert b"max_header_count=20" in response.body
        assert await conn.at_eof()
    await assert_serving(base)


async def test_max_header_size_at_and_past_its_bound(serve_native: Any) -> None:
    limit = 4096
    base = await serve_native(
        aiosio.EngineServer(), limits=aiosio.ServerLimits(max_header_size=limit)
    )

    def head_of(size: int) -> bytes:
        # the size counted: the request target, then each header's name and value plus 4
        host, port = host_port(base)
        used = len(HANDSHAKE) + len("Host") + len(f"{host}:{port}") + 4
        filler = size - used - len("X-Fill") - 4
        return request_bytes("GET", HANDSHAKE, base, [("X-Fill", "f" * filler)])

    assert await status_of(base, head_of(limit)) == 200
    async with await RawConnection.open(base) as conn:
        await conn.send(head_of(limit + 1))
        response = await conn.response()
        assert response.status == 431
        assert f"max_header_size={limit}".encode() in response.body
        assert await conn.at_eof()
    # a request line alone over the bound is 414 URI Too Long
    long_target = HANDSHAKE + "&x=" + "a" * limit
    assert await status_of(base, request_bytes("GET", long_target, base)) == 414
    await assert_serving(base)


# -- ServerLimits.websocket_close_timeout ------------------------------------------------------


async def _silent_websocket(base: str) -> tuple[RawConnection, str]:
    """A WebSocket session whose client reads but will never answer a close frame."""
    host, port = host_port(base)
    conn = await RawConnection.open(base)
    key = base64.b64encode(os.urandom(16)).decode()
    await conn.send(
        f"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    async with asyncio.timeout(TIMEOUT):
        head = await conn.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        first, size = await conn.reader.readexactly(2)
        assert first == 0x81  # the open packet, a text frame
        opened = (await conn.reader.readexactly(size)).decode()
    sid = opened.split('"sid":"', 1)[1].split('"', 1)[0]
    return conn, sid


@pytest.mark.parametrize("close_timeout", [0.3, 30.0])
async def test_websocket_close_timeout(serve_native: Any, close_timeout: float) -> None:
    rec = recorder()
    limits = aiosio.ServerLimits(websocket_close_timeout=close_timeout)
    base = await serve_native(rec.engine, limits=limits)
    conn, sid = await _silent_websocket(base)
    try:
        await eventually(lambda: sid in rec.sockets)
        rec.sockets[sid].close()
        async with asyncio.timeout(TIMEOUT):  # the close packet, then the close frame
            received = b""
            while b"\x88" not in received:
                received += await conn.reader.read(4096)
        if close_timeout < 1:
            assert await conn.at_eof(TIMEOUT)  # dropped, though the client never answered
        else:
            assert not await conn.at_eof(0.6)  # still waiting for the client's close frame
    finally:
        await conn.close()
    await assert_serving(base)


# -- EngineServer(max_payload_packets=...) ---------------------------------------------------


async def test_max_payload_packets_at_and_past_its_bound(serve: Any) -> None:
    rec = recorder(max_payload_packets=100)
    base = await serve(rec.engine)
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        sid, _, _ = await handshake(client, base)
        at_bound = "\x1e".join(f"4m{i}" for i in range(100))
        assert (await post(client, base, sid, at_bound, headers={"Content-Type": TEXT})).is_success
        await rec.message(sid, "m99")
        assert sid not in rec.closes
        past = "\x1e".join(f"4n{i}" for i in range(101))
        response = await post(client, base, sid, past, headers={"Content-Type": TEXT})
        assert response.status_code == 400
        assert (await rec.closed(sid))[0] == "parse error"
    # as for any malformed payload, the packets before the fault are delivered; the 101st is not
    delivered = [m for s, m in rec.messages if s == sid]
    assert delivered == [f"m{i}" for i in range(100)] + [f"n{i}" for i in range(100)]
    await assert_serving(base)


async def test_max_payload_packets_through_the_socketio_server(serve: Any) -> None:
    """``aiosio.Server(max_payload_packets=...)`` reaches its engine: a POST of that many
    Socket.IO packets is taken, one more closes the session with ``parse error``."""
    sio = aiosio.Server(max_payload_packets=5)
    got: list[int] = []
    reasons: list[str] = []
    sio.on("m", lambda _socket, n: got.append(n))
    sio.on("disconnect", lambda _socket, reason, _description: reasons.append(reason))
    base = await serve(sio)
    path = "/socket.io/"
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        sid, _, _ = await handshake(client, base, path)
        assert (
            await post(client, base, sid, "40", path, headers={"Content-Type": TEXT})
        ).is_success
        assert (await poll(client, base, sid, path)).text.startswith("40{")
        at_bound = "\x1e".join(f'42["m",{i}]' for i in range(5))
        response = await post(client, base, sid, at_bound, path, headers={"Content-Type": TEXT})
        assert response.is_success
        await eventually(lambda: got == [0, 1, 2, 3, 4])
        assert reasons == []
        past = "\x1e".join(f'42["m",{i}]' for i in range(10, 16))
        response = await post(client, base, sid, past, path, headers={"Content-Type": TEXT})
        assert response.status_code == 400
        await eventually(lambda: reasons == ["parse error"])
    # the packets before the fault are delivered, the 6th is not
    assert got == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]
    await assert_serving(base, path)


# -- the client's reconnection_attempts ------------------------------------------------------


async def test_reconnection_attempts_at_its_bound() -> None:
    sio = aiosio.Server()
    server = await aiosio.serve(sio, "127.0.0.1", 0)
    client = aiosio.Client(
        f"http://127.0.0.1:{server.port}",
        reconnection_attempts=2,
        reconnection_delay=0.05,
        reconnection_delay_max=0.05,
        randomization_factor=0,
        timeout=2,
    )
    attempts: list[int] = []
    failed: list[bool] = []
    client.io.on("reconnect_attempt", attempts.append)
    client.io.on("reconnect_failed", lambda: failed.append(True))
    try:
        await client.connect()
        await server.close()  # the port now refuses connections
        await eventually(lambda: failed == [True])
        await asyncio.sleep(0.3)  # six reconnection delays: no third attempt comes
        assert attempts == [1, 2]
        assert failed == [True]
        assert not client.connected
    finally:
        await client.disconnect()


# -- the client's ack_timeout ------------------------------------------------------------------


async def test_client_ack_timeout(serve: Any) -> None:
    """``Client(ack_timeout=s)`` bounds every ``emit_with_ack`` that gives no timeout of its own
    (without ``retries``): an acknowledgement that never comes raises AckTimeout and is
    forgotten; one that comes is returned; ``emit_with_ack(timeout=...)`` overrides it."""
    sio = aiosio.Server()
    sio.on("echo", lambda _socket, value: value)  # "silent" has no handler: never acknowledged
    base = await serve(sio)
    client = aiosio.Client(base, reconnection=False, ack_timeout=0.3)
    try:
        await client.connect()
        unanswered = client.emit_with_ack("silent", 1)
        assert client.pending_acks == 1
        with pytest.raises(aiosio.AckTimeout, match=r"within 0\.3s"):
            await asyncio.wait_for(unanswered, TIMEOUT)
        assert await client.emit_with_ack("echo", "answered") == "answered"
        with pytest.raises(aiosio.AckTimeout, match=r"within 0\.1s"):
            await asyncio.wait_for(client.emit_with_ack("silent", 2, timeout=0.1), TIMEOUT)
        assert client.pending_acks == 0
        assert client.connected
    finally:
        await client.disconnect()
