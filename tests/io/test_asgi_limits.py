"""Limits of the ASGI app under uvicorn: the request body deadline (``body_timeout``) and the log
line when the ASGI server cannot speak WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import aiosio
from conftest import _Uvicorn
from conftest import free_port


async def _post_partial(port: int, announced: int, sent: bytes) -> bytes:
    """POST a polling request announcing ``announced`` bytes, send ``sent``, then read all."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"POST /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\nHost: t\r\n"
            b"Connection: close\r\n"
            b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % announced + sent
        )
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 20)  # until the server closes
    finally:
        writer.close()


async def test_a_stalled_body_is_answered_408_and_closed(caplog: pytest.LogCaptureFixture) -> None:
    server = _Uvicorn(aiosio.Server().asgi(body_timeout=0.5))
    await server.start()
    try:
        with caplog.at_level(logging.WARNING, "aiosio.server.asgi"):
            answer = await _post_partial(server.port, 100_000, b"0123456789")
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"10 of 100000 announced bytes" in answer
        lines = [r.getMessage() for r in caplog.records if "body_timeout=0.5" in r.getMessage()]
        assert len(lines) == 1, lines
        assert "10 of 100000 announced bytes" in lines[0]
        assert "sio.asgi(body_timeout=...)" in lines[0]
    finally:
        await server.close()


async def test_a_body_sent_in_time_is_not_refused() -> None:
    # the boundary: a complete body within the deadline reaches the engine (400: no such session)
    server = _Uvicorn(aiosio.Server().asgi(body_timeout=5))
    await server.start()
    try:
        answer = await _post_partial(server.port, 10, b"0123456789")
        assert answer.startswith(b"HTTP/1.1 400 "), answer
    finally:
        await server.close()


@pytest.mark.parametrize("value", [0, -1.0])
def test_body_timeout_must_be_positive(value: float) -> None:
    with pytest.raises(ValueError, match=rf"body_timeout must be .* above 0, got {value!r}"):
        aiosio.Server().asgi(body_timeout=value)


@pytest.mark.parametrize("value", [0, -1.0, float("nan")])
def test_websocket_close_timeout_must_be_positive(value: float) -> None:
    with pytest.raises(ValueError, match=r"websocket_close_timeout must be .* above 0, got"):
        aiosio.Server().asgi(websocket_close_timeout=value)
    with pytest.raises(ValueError, match=r"websocket_close_timeout must be .* above 0, got"):
        aiosio.EngineServer().asgi(websocket_close_timeout=value)


async def test_no_websocket_library_is_named_first(caplog: pytest.LogCaptureFixture) -> None:
    """uvicorn started without a WebSocket library hands the upgrade request to the app as plain
    HTTP, Upgrade header included: the log leads with that cause and its fix, not with proxies."""
    port = free_port()
    config = uvicorn.Config(
        aiosio.Server().asgi(), host="127.0.0.1", port=port, log_level="critical", ws="none"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done()
            await asyncio.sleep(0.01)
        with caplog.at_level(logging.DEBUG, "aiosio"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: t\r\n"
                b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
            writer.close()
        assert head.startswith(b"HTTP/1.1 400 "), head
        lines = [r.getMessage() for r in caplog.records if "plain HTTP" in r.getMessage()]
        assert len(lines) == 1, lines
        line = lines[0]
        assert "without a WebSocket library" in line
        assert 'pip install "aiosio[asgi]"' in line
        assert "proxy" not in line
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


_SIGTERM_APP = """
import aiosio
sio = aiosio.Server(ping_interval=60, ping_timeout=20)
app = sio.asgi()
"""


async def test_sigterm_closes_waiting_polls_and_websockets(tmp_path: Path) -> None:
    """uvicorn sends the lifespan shutdown only after its connections end: on SIGTERM the app
    closes its sessions at once, every waiting poll answered, every WebSocket sent its close."""
    (tmp_path / "sigterm_app.py").write_text(_SIGTERM_APP)
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", "sigterm_app:app", "--port", str(port),
        "--ws", "websockets-sansio", "--log-level", "warning",
        cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        base = f"127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=30) as http:
            for _ in range(500):
                with contextlib.suppress(httpx.TransportError):
                    await http.get(f"http://{base}/socket.io/?EIO=4&transport=polling")
                    break
                await asyncio.sleep(0.05)
            sids = []
            for _ in range(5):
                answer = await http.get(f"http://{base}/socket.io/?EIO=4&transport=polling")
                sid = json.loads(answer.text[1:])["sid"]
                session = f"http://{base}/socket.io/?EIO=4&transport=polling&sid={sid}"
                await http.post(session, content="40")
                answer = await http.get(session)
                assert answer.text.startswith("40")
                sids.append(sid)
            polls = [
                asyncio.ensure_future(
                    http.get(f"http://{base}/socket.io/?EIO=4&transport=polling&sid={sid}")
                )
                for sid in sids
            ]
            sockets = []
            for _ in range(5):
                ws = await connect(f"ws://{base}/socket.io/?EIO=4&transport=websocket")
                assert str(await ws.recv()).startswith("0{")
                await ws.send("40")
                assert str(await ws.recv()).startswith("40{")
                sockets.append(ws)
            await asyncio.sleep(0.5)  # the polls are waiting
            assert not any(poll.done() for poll in polls)
            process.send_signal(signal.SIGTERM)
            for poll in polls:
                answer = await asyncio.wait_for(poll, 20)
                assert answer.status_code == 200
                assert "1" in answer.text.split("\x1e"), answer.text  # the close packet
            for ws in sockets:
                with contextlib.suppress(ConnectionClosed):
                    async with asyncio.timeout(20):
                        async for _message in ws:
                            pass
                # closed by the engine (1000), not cut by uvicorn's own shutdown (1012)
                assert ws.close_code == 1000, ws.close_code
        # uvicorn ends by raising the signal it caught again, as its own default handler would
        assert await asyncio.wait_for(process.wait(), 20) in (0, -signal.SIGTERM)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
