"""The native server's own bounds on bad input (issue 12, section 3; HARDENING 8, 9, 13, 14):
a body deadline, backpressure from a client that does not read what it is sent (pipelined HTTP
requests, WebSocket pings), HEAD on the handshake URL.

Raw clients write bytes by hand over real sockets on 127.0.0.1. What the server holds for a
connection is read through the public counters of :class:`aiosio.HttpConnection`; nothing may
reach the event loop's exception handler, and every test ends with a fresh client served.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import logging
import os
import socket
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from _eio import TIMEOUT
from _eio import RawConnection
from _eio import assert_serving
from _eio import eventually
from _eio import handshake
from _eio import recorder
from _eio import request_bytes

import aiosio


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


async def native(app: Any, **limits: Any) -> aiosio.NativeServer:
    return await aiosio.serve(app, "127.0.0.1", 0, limits=aiosio.ServerLimits(**limits))


def base_of(server: aiosio.NativeServer) -> str:
    return f"http://127.0.0.1:{server.port}"


# -- a body that stops arriving -----------------------------------------------------------------


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_that_stops_arriving_gets_408_and_is_closed(
    framing: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A POST that announces 100,000 bytes and sends 10 stayed open for good (issue 12).
    rec = recorder()
    server = await native(rec.engine, body_timeout=0.3)
    base = base_of(server)
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as c:
            sid, _, _ = await handshake(c, base)
        target = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
        if framing == "content-length":
            head = request_bytes("POST", target, base, [("Content-Length", "100000")])
            sent, expected = b"4" * 10, "10 of 100000 announced bytes"
        else:
            head = request_bytes("POST", target, base, [("Transfer-Encoding", "chunked")])
            sent, expected = b"a\r\n4xxxxxxxxx\r\n", "10 bytes of a chunked body"
        with caplog.at_level(logging.INFO, "aiosio.server.http"):
            for _ in range(2):  # logged once per client host
                async with await RawConnection.open(base) as conn:
                    await conn.send(head + sent)
                    response = await conn.response(timeout=TIMEOUT)
                    assert response.status == 408
                    assert expected in response.body.decode()
                    assert response.header("Connection") == "close"
                    assert await conn.at_eof()
        warnings = [r for r in caplog.records if "body_timeout" in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        message = warnings[0].getMessage()
        assert warnings[0].levelno == logging.WARNING
        assert "127.0.0.1:" in message  # the peer
        assert expected in message  # what arrived of what was announced
        assert "ServerLimits(body_timeout=...)" in message  # the fix
        assert rec.messages == []  # the partial body reached nobody
        await assert_serving(base)
    finally:
        await server.close()


async def test_a_body_sent_in_pieces_within_the_deadline_is_delivered() -> None:
    rec = recorder()
    server = await native(rec.engine, body_timeout=TIMEOUT)
    base = base_of(server)
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as c:
            sid, _, _ = await handshake(c, base)
        target = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
        body = b"4" + b"x" * 99
        async with await RawConnection.open(base) as conn:
            await conn.send(request_bytes("POST", target, base, [("Content-Length", "100")]))
            for i in range(0, 100, 25):
                await conn.send(body[i : i + 25])
                await asyncio.sleep(0.05)
            response = await conn.response()
            assert (response.status, response.body) == (200, b"ok")
            # the deadline ended with the body: the kept-alive connection serves the next one
            await asyncio.sleep(0.1)
            await conn.send(request_bytes("GET", "/engine.io/?transport=udp", base))
            assert (await conn.response()).status == 400
        await rec.message(sid, "x" * 99)
    finally:
        await server.close()


async def test_a_chunked_body_of_tiny_chunks_costs_about_its_size() -> None:
    # HARDENING 8: the bound on a body is a bound on memory. Each chunk was kept as its own
    # bytes object: 2-byte chunks cost 21 times the body (21 MB per connection at the default
    # max_http_buffer_size of 1 MB).
    rec = recorder()
    server = await native(rec.engine)
    base = base_of(server)
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as c:
            sid, _, _ = await handshake(c, base)
        target = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
        async with await RawConnection.open(base) as raw:
            await eventually(lambda: len(server.connections) == 1)
            (conn,) = server.connections
            size = 1 + 2 * 100_000
            gc.collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                await raw.send(
                    request_bytes("POST", target, base, [("Transfer-Encoding", "chunked")])
                    + b"1\r\n4\r\n"
                    + b"2\r\nxx\r\n" * 100_000
                )
                await eventually(lambda: conn.buffered_bytes >= size)
                grown = tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()
            assert grown < 3 * size, grown
            await raw.send(b"0\r\n\r\n")
            response = await raw.response()
            assert (response.status, response.body) == (200, b"ok")
        await rec.message(sid, "x" * (size - 1))
    finally:
        await server.close()


def test_body_timeout_has_a_default_and_must_be_positive() -> None:
    assert aiosio.ServerLimits().body_timeout == 30.0
    for bad in (0, -1.0, "5", True):
        with pytest.raises(ValueError, match=r"ServerLimits\(body_timeout=\.\.\.\) must be a") as e:
            aiosio.ServerLimits(body_timeout=bad)
        assert repr(bad) in str(e.value)


def test_send_timeout_has_a_default_and_must_be_positive() -> None:
    assert aiosio.ServerLimits().send_timeout == 30.0
    with pytest.raises(ValueError, match=r"ServerLimits\(send_timeout=\.\.\.\) must be a pos"):
        aiosio.ServerLimits(send_timeout=0)


def test_max_pipelined_requests_has_a_default_and_must_be_positive() -> None:
    assert aiosio.ServerLimits().max_pipelined_requests == 16
    aiosio.ServerLimits(max_pipelined_requests=1)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match=r"max_pipelined_requests=\.\.\.\) must be an integer"):
            aiosio.ServerLimits(max_pipelined_requests=bad)


# -- a client that does not read what it is sent ---------------------------------------------------


async def open_slow_reader(base: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int]:
    """A connection whose receive buffer is small, so that what the server writes and the client
    does not read stays in the server's own buffers instead of the kernel's."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock)
    return reader, writer, sock.getsockname()[1]


def connection_of(server: aiosio.NativeServer, port: int) -> aiosio.HttpConnection:
    """The server's side of the client connection from ``port``, its kernel send buffer made
    small too (the kernel would otherwise take megabytes before the server's own buffer grows)."""
    (conn,) = [c for c in server.connections if c.peer == f"127.0.0.1:{port}"]
    assert conn.transport is not None
    conn.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return conn


class Peak:
    """Samples a connection's public counters every few milliseconds and keeps the largest."""

    def __init__(self, conn: aiosio.HttpConnection) -> None:
        self.conn = conn
        self.buffered = 0
        self.queued = 0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.buffered = max(self.buffered, self.conn.buffered_bytes)
            self.queued = max(self.queued, self.conn.queued_requests)
            await asyncio.sleep(0.002)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def write_all(writer: asyncio.StreamWriter, data: bytes) -> None:
    for i in range(0, len(data), 65536):
        writer.write(data[i : i + 65536])
        await writer.drain()


async def read_until_count(reader: asyncio.StreamReader, marker: bytes, count: int) -> bytes:
    seen = b""
    async with asyncio.timeout(60):
        while seen.count(marker) < count:
            chunk = await reader.read(1 << 20)
            assert chunk, (seen.count(marker), count)
            seen += chunk
    return seen


async def test_pipelined_requests_whose_responses_are_not_read_are_bounded() -> None:
    # 300,000 pipelined requests written without reading the responses cost +256 MB: every one
    # was parsed and queued, and every response buffered. Now the server stops reading from the
    # connection while its requests wait or its responses are not read.
    server = await native(aiosio.EngineServer(), max_pipelined_requests=8)
    base = base_of(server)
    request = request_bytes("GET", "/elsewhere", base)  # a 404, answered without a log line
    count = 10_000
    reader, writer, port = await open_slow_reader(base)
    try:
        await eventually(lambda: len(server.connections) == 1)
        conn = connection_of(server, port)
        peak = Peak(conn)
        writing = asyncio.create_task(write_all(writer, request * count))
        await eventually(lambda: not conn.reading, timeout=30)  # the responses pile up
        await asyncio.sleep(0.2)  # and the server stays put
        assert not conn.reading
        await peak.stop()
        # at most the bound, plus the requests that complete in the slice being parsed
        assert peak.queued <= 8 + 4096 // len(request) + 1, peak.queued
        # the transport's high-water mark (64 KiB) and what one read of requests answers
        assert peak.buffered < 512 * 1024, peak.buffered
        await assert_serving(base)  # another client is served meanwhile
        # the client reads at last: every request is answered, in order, none dropped
        answers = await read_until_count(reader, b"HTTP/1.1 404 ", count)
        assert answers.count(b"HTTP/1.1 404 ") == count
        await asyncio.wait_for(writing, TIMEOUT)
        assert conn.reading
    finally:
        writer.close()
        await server.close()


async def test_posts_queued_behind_a_waiting_long_poll_are_bounded() -> None:
    # 150 POSTs of 900 KB pipelined behind a long-poll that waits: +129 MB. Now the bodies read
    # ahead are bounded by the pipeline (max_http_buffer_size of bodies, or the request count).
    limit = 100_000
    rec = recorder(max_http_buffer_size=limit)
    server = await native(rec.engine)
    base = base_of(server)
    async with httpx.AsyncClient(timeout=TIMEOUT) as c:
        sid, _, _ = await handshake(c, base)
    target = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
    body = b"4" + b"x" * (limit * 9 // 10)
    posts = 40
    pipeline = (
        request_bytes("GET", target, base)
        + (request_bytes("POST", target, base, [("Content-Length", str(len(body)))]) + body) * posts
    )
    reader, writer, port = await open_slow_reader(base)
    try:
        await eventually(lambda: len(server.connections) == 1)
        conn = connection_of(server, port)
        peak = Peak(conn)
        writing = asyncio.create_task(write_all(writer, pipeline))
        await eventually(lambda: not conn.reading, timeout=30)
        await asyncio.sleep(0.2)
        await peak.stop()
        assert conn.queued_requests <= 2
        # the body being read, one or two queued and the slice being parsed
        assert peak.buffered <= 3 * limit + 4096, peak.buffered
        await assert_serving(base)
        rec.sockets[sid].send("go")  # the long-poll ends: the POSTs are read and answered
        answers = await read_until_count(reader, b"HTTP/1.1 200 ", 1 + posts)
        assert answers.count(b"\r\n\r\nok") == posts
        await asyncio.wait_for(writing, TIMEOUT)
        await eventually(lambda: len(rec.messages) == posts)
    finally:
        writer.close()
        await server.close()


async def test_pipelined_requests_stop_at_max_pipelined_requests() -> None:
    # Requests of more than one parsing slice each: the bound is exact.
    rec = recorder()
    server = await native(rec.engine, max_pipelined_requests=3)
    base = base_of(server)
    async with httpx.AsyncClient(timeout=TIMEOUT) as c:
        sid, _, _ = await handshake(c, base)
    big = request_bytes("GET", "/elsewhere", base, [("X-Pad", "p" * 5000)])
    poll = request_bytes("GET", f"/engine.io/?EIO=4&transport=polling&sid={sid}", base)
    try:
        async with await RawConnection.open(base) as raw:
            await eventually(lambda: len(server.connections) == 1)
            (conn,) = server.connections
            await raw.send(poll + big * 10)  # behind a long-poll that waits
            await eventually(lambda: not conn.reading)
            await asyncio.sleep(0.1)
            assert conn.queued_requests == 3
            rec.sockets[sid].send("go")
            assert (await raw.response()).body == b"4go"
            statuses = [(await raw.response()).status for _ in range(10)]
            assert statuses == [404] * 10
            assert conn.reading
    finally:
        await server.close()


async def test_a_client_that_reads_none_of_its_responses_is_dropped_at_send_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Backpressure bounds what one connection holds; send_timeout bounds how long: 10,000
    # connections that read nothing would each hold a write buffer and their kernel buffers.
    server = await native(aiosio.EngineServer(), send_timeout=0.5)
    base = base_of(server)
    request = request_bytes("GET", "/elsewhere", base)
    _reader, writer, port = await open_slow_reader(base)
    try:
        await eventually(lambda: len(server.connections) == 1)
        conn = connection_of(server, port)
        with caplog.at_level(logging.INFO, "aiosio.server.http"):
            writer.write(request * 10_000)
            await eventually(lambda: not conn.reading)
            await eventually(lambda: not server.connections, timeout=10)
        (record,) = [r for r in caplog.records if "send_timeout" in r.getMessage()]
        assert record.levelno == logging.WARNING
        message = record.getMessage()
        assert f"client 127.0.0.1:{port} read none of the " in message
        assert "send_timeout=0.5s" in message
        assert "ServerLimits(send_timeout=...)" in message
        await assert_serving(base)
    finally:
        writer.transport.abort()
        await server.close()


async def test_a_slow_client_that_reads_is_not_dropped_at_send_timeout() -> None:
    server = await native(aiosio.EngineServer(), send_timeout=1.0)
    base = base_of(server)
    request = request_bytes("GET", "/elsewhere", base)
    count = 3000
    reader, writer, port = await open_slow_reader(base)
    try:
        await eventually(lambda: len(server.connections) == 1)
        conn = connection_of(server, port)
        writer.write(request * count)
        await eventually(lambda: not conn.reading)
        seen = b""
        async with asyncio.timeout(60):
            while seen.count(b"HTTP/1.1 404 ") < count:  # 8 KiB every 20 ms
                chunk = await reader.read(8192)
                assert chunk, seen.count(b"HTTP/1.1 404 ")
                seen += chunk
                await asyncio.sleep(0.02)
        assert seen.count(b"HTTP/1.1 404 ") == count
        assert server.connections == {conn}
    finally:
        writer.close()
        await server.close()


async def test_a_head_trickled_behind_a_long_poll_is_cut_at_the_deadline() -> None:
    # HARDENING 13: the head deadline held only when no request was in flight; behind a
    # long-poll a head could be trickled until the poll ended (up to ping_interval), then the
    # connection was closed without a word. Now the head is cut at the deadline and its 408
    # follows the poll's answer.
    rec = recorder()
    server = await native(rec.engine, header_timeout=0.3)
    base = base_of(server)
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as c:
            sid, _, _ = await handshake(c, base)
        poll = request_bytes("GET", f"/engine.io/?EIO=4&transport=polling&sid={sid}", base)
        async with await RawConnection.open(base) as conn:
            await eventually(lambda: len(server.connections) == 1)
            (server_side,) = server.connections
            await conn.send(poll + b"GET /elsewhere HTTP/1.1\r\nHost: x\r\n")
            sent = 0
            with contextlib.suppress(ConnectionError):
                for _ in range(20):  # a header every 50 ms, past the deadline
                    await conn.send(b"X-Slow-%d: v\r\n" % sent)
                    sent += 1
                    await asyncio.sleep(0.05)
            assert server_side.buffered_bytes == 0  # what came after the deadline was dropped
            rec.sockets[sid].send("x")
            first = await conn.response()
            second = await conn.response()
            assert (first.status, first.body) == (200, b"4x")
            assert second.status == 408
            assert b"request head not received within 0.3s" in second.body
            assert await conn.at_eof()
        await assert_serving(base)
    finally:
        await server.close()


@pytest.mark.parametrize("refusal", ["413", "431", "400"])
async def test_a_refusal_behind_a_long_poll_is_answered_in_turn(refusal: str) -> None:
    # HARDENING 9: a pipelined request refused while a long-poll waited was answered at once,
    # so the client read the 413 as the poll's answer and the poll's own answer never came.
    rec = recorder(max_http_buffer_size=1000)
    server = await native(rec.engine, max_header_count=20)
    base = base_of(server)
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as c:
            sid, _, _ = await handshake(c, base)
        target = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
        refused = {
            "413": request_bytes("POST", target, base, [("Content-Length", "5000")]),
            "431": request_bytes("GET", "/x", base, [(f"X-{i}", "v") for i in range(30)]),
            "400": b"GARBAGE\r\n\r\n",
        }[refusal]
        async with await RawConnection.open(base) as conn:
            await conn.send(request_bytes("GET", target, base) + refused)
            with pytest.raises(TimeoutError):
                await conn.response(timeout=0.3)  # nothing before the poll's answer
            rec.sockets[sid].send("x")
            first = await conn.response()
            second = await conn.response()
            assert (first.status, first.body) == (200, b"4x")
            assert second.status == int(refusal)
            assert second.header("Connection") == "close"
            assert await conn.at_eof()
        await assert_serving(base)
    finally:
        await server.close()


async def open_websocket(
    server: aiosio.NativeServer,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, aiosio.HttpConnection]:
    """A raw WebSocket on the engine path, from a client with a small receive buffer."""
    base = base_of(server)
    reader, writer, port = await open_slow_reader(base)
    await eventually(lambda: any(c.peer == f"127.0.0.1:{port}" for c in server.connections))
    conn = connection_of(server, port)
    key = base64.b64encode(os.urandom(16)).decode()
    upgrade = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]
    writer.write(request_bytes("GET", "/engine.io/?EIO=4&transport=websocket", base, upgrade))
    async with asyncio.timeout(TIMEOUT):
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
    return reader, writer, conn


async def test_a_websocket_slow_to_take_what_it_is_sent_is_still_read() -> None:
    # Messages the application sends are bounded by the engine (max_outbound_buffer): a
    # client with a backlog over the write buffer's high-water mark is still read (its pongs to
    # the heartbeat, its messages); only its own pings' pongs pause it.
    rec = recorder()
    server = await native(rec.engine)
    try:
        _reader, writer, conn = await open_websocket(server)
        await eventually(lambda: len(rec.sockets) == 1)
        ((sid, socket_),) = rec.sockets.items()
        for _ in range(20):
            socket_.send("x" * 50_000)  # 1 MB the client does not read
        await eventually(lambda: conn.buffered_bytes > 256 * 1024)
        payload = b"4hello"
        writer.write(bytes([0x81, 0x80 | len(payload)]) + b"\x00" * 4 + payload)
        await rec.message(sid, "hello")
        assert conn.reading
        writer.transport.abort()
    finally:
        await server.close()


async def test_bytes_sent_while_an_upgrade_is_decided_are_bounded() -> None:
    # HARDENING 8: frames written right behind the upgrade request wait while the engine decides
    # (an async allow_request); past max_http_buffer_size and a 64 KiB margin the connection is
    # dropped instead of buffering them.
    gate = asyncio.Event()

    async def allow_request(request: Any) -> bool:
        await gate.wait()
        return True

    limit = 10_000
    server = await native(
        aiosio.EngineServer(allow_request=allow_request, max_http_buffer_size=limit)
    )
    base = base_of(server)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        upgrade = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key),
            ("Sec-WebSocket-Version", "13"),
        ]
        async with await RawConnection.open(base) as conn:
            await eventually(lambda: len(server.connections) == 1)
            (server_side,) = server.connections
            peak = Peak(server_side)
            await conn.send(
                request_bytes("GET", "/engine.io/?EIO=4&transport=websocket", base, upgrade)
            )
            frame = bytes([0x81, 0x80 | 125]) + b"\x00" * 4 + b"4" * 125
            with contextlib.suppress(ConnectionError):
                for _ in range(100):  # 1.3 MB in all
                    await conn.send(frame * 100)
            assert await conn.at_eof()
            await peak.stop()
            assert peak.buffered <= limit + 64 * 1024 + 256 * 1024, peak.buffered
        await eventually(lambda: not server.connections)
        gate.set()
        await assert_serving(base)
    finally:
        gate.set()
        await server.close()


async def test_a_ping_flood_whose_pongs_are_not_read_is_bounded() -> None:
    # 100 MB of WebSocket pings whose pongs the client never read: +81 MB. Control frames get
    # the same backpressure as responses: the server stops reading while its pongs wait.
    server = await native(aiosio.EngineServer())
    base = base_of(server)
    _reader, writer, conn = await open_websocket(server)
    try:
        ping = bytes([0x89, 0x80 | 125]) + b"\x00" * 4 + b"p" * 125  # masked, zero key
        peak = Peak(conn)
        flood = asyncio.create_task(write_all(writer, ping * (8 * 1024 * 1024 // len(ping))))
        await eventually(lambda: not conn.reading, timeout=30)
        await asyncio.sleep(0.2)
        await peak.stop()
        assert not conn.reading
        assert not flood.done()  # the client is held back, not the server filled
        # the high-water mark and the pongs of one read (at most 256 KiB)
        assert peak.buffered < 512 * 1024, peak.buffered
        await assert_serving(base)
        flood.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flood
    finally:
        writer.transport.abort()
        await server.close()


# -- HEAD ----------------------------------------------------------------------------------------


async def read_head(conn: RawConnection) -> tuple[int, dict[str, str]]:
    """The status and headers of a response to HEAD: it ends with its head."""
    async with asyncio.timeout(TIMEOUT):
        head = (await conn.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    lines = head.split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
    return int(lines[0].split(" ")[1]), headers


async def test_head_on_the_handshake_url_opens_no_session_and_ends_its_response(
    serve: Any,
) -> None:
    # The reference (engine.io's verify) refuses a handshake that is not a GET: 400 "Bad
    # handshake method", so HEAD opens no session. The answer to HEAD has no body and no
    # Content-Length (RFC 9110 8.6: only the length GET would have, and a GET would get a 200
    # handshake of another length); the next response on the connection follows it at once.
    rec = recorder()
    base = await serve(rec.engine)
    handshake_url = "/engine.io/?EIO=4&transport=polling"
    async with await RawConnection.open(base) as conn:
        await conn.send(request_bytes("HEAD", handshake_url, base))
        status, headers = await read_head(conn)
        assert status == 400
        assert "content-length" not in headers
        assert "transfer-encoding" not in headers
        assert rec.engine.clients_count == 0
        await conn.send(request_bytes("GET", handshake_url, base))
        response = await conn.response()
        assert response.status == 200
        assert response.body.startswith(b'0{"sid":')
        sid = response.body[9:29].decode()
        # HEAD on a session's URL: the reference's 500 without a body; the session lives on
        await conn.send(request_bytes("HEAD", f"{handshake_url}&sid={sid}", base))
        status, headers = await read_head(conn)
        assert status == 500
        assert headers.get("content-length", "0") == "0"
        rec.sockets[sid].send("still here")
        await conn.send(request_bytes("GET", f"{handshake_url}&sid={sid}", base))
        assert (await conn.response()).body == b"4still here"
        # and a path the server does not serve
        await conn.send(request_bytes("HEAD", "/elsewhere", base))
        status, headers = await read_head(conn)
        assert status == 404
        assert "content-length" not in headers
        await conn.send(request_bytes("GET", "/engine.io/?transport=udp", base))
        assert (await conn.response()).status == 400
    assert rec.engine.clients_count == 1
    await assert_serving(base)
