"""``aiosio serve --workers 2``: sticky sessions behind one port, broadcasts across workers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from conftest import JS_DIR
from conftest import _node
from conftest import free_port

pytestmark = pytest.mark.interop

APP = textwrap.dedent(
    """
    import aiosio

    sio = aiosio.Server()

    @sio.on("echo")
    def echo(socket, value):
        return value

    @sio.on("shout")
    def shout(socket, text):
        sio.emit("shout", text)

    @sio.on("where")
    def where(socket):
        return socket.conn.id[0]
    """
)


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    (tmp_path / "workers_app.py").write_text(APP)
    port = free_port()
    log = tmp_path / "server.log"
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aiosio",
                "serve",
                "workers_app:sio",
                "--workers",
                "2",
                "--port",
                str(port),
            ],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(200):
            if b"listening" in log.read_bytes():
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"the workers did not start:\n{log.read_text()}")
        yield f"http://127.0.0.1:{port}", log
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def run_clients(url: str, count: int, rounds: int) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        _node(),
        str(JS_DIR / "workers_clients.mjs"),
        url,
        str(count),
        str(rounds),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(JS_DIR),
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, stderr.decode()
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


async def test_polling_sessions_stay_on_their_worker(workers: tuple[str, Path]) -> None:
    url, log = workers
    count, rounds = 20, 60  # 20 sessions x (60 acked events + polls): thousands of requests
    result = await run_clients(url, count, rounds)
    assert sorted(set(result["workers"])) == ["A", "B"]  # sessions on both workers
    assert result["acks"] == count * rounds
    assert result["disconnected"] == 0
    # the broadcast from one worker reached every client, on both workers
    assert result["shouts"] == {str(i): 1 for i in range(count)}
    assert b"Session ID unknown" not in log.read_bytes()


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: str) -> str:
    writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    return (await reader.readexactly(length)).decode()


async def test_kept_alive_connection_carrying_another_workers_session(
    workers: tuple[str, Path],
) -> None:
    url, log = workers
    port = int(url.rsplit(":", 1)[1])
    path = "/socket.io/?EIO=4&transport=polling"
    # Two sessions opened on two connections: the master sends them to different workers.
    r1, w1 = await asyncio.open_connection("127.0.0.1", port)
    r2, w2 = await asyncio.open_connection("127.0.0.1", port)
    sid1 = json.loads((await _request(r1, w1, path))[1:])["sid"]
    sid2 = json.loads((await _request(r2, w2, path))[1:])["sid"]
    assert sid1[0] != sid2[0]
    # The first connection, kept alive, now carries a request of the second session: it is
    # handed back to the master and reaches the right worker.
    w1.write(f"POST {path}&sid={sid2} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n40".encode())
    await w1.drain()
    head = await r1.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert (await r1.readexactly(2)) == b"ok"
    reply = await _request(r2, w2, f"{path}&sid={sid2}")
    assert reply.startswith('40{"sid":')
    for writer in (w1, w2):
        writer.close()
    assert b"Session ID unknown" not in log.read_bytes()
