"""The embedded demo apps of ``aiosio serve`` (aiosio.demo), as a user tries them: the Socket.IO
demo with two clients (welcome, echo, chat, join) on both server kinds, the raw Engine.IO echo
server, and the environment variables the official protocol suites set, read by ``aiosio serve``
in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request
from typing import Any

import aiosio
from aiosio.demo import create_demo_server
from aiosio.demo import create_echo_server
from conftest import ServeFn

TIMEOUT = 10.0


class Inbox:
    """The events of one name a client received, awaited one at a time."""

    def __init__(self, client: aiosio.Client, event: str) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        client.on(event, self.queue.put_nowait)

    async def next(self) -> Any:
        return await asyncio.wait_for(self.queue.get(), TIMEOUT)


async def test_the_demo_welcomes_echoes_chats_and_joins(serve: ServeFn) -> None:
    base = await serve(create_demo_server())
    alice = aiosio.Client(base, reconnection=False, transports=["websocket"])
    bob = aiosio.Client(base, reconnection=False)
    alice_welcome, bob_welcome = Inbox(alice, "welcome"), Inbox(bob, "welcome")
    alice_chat, bob_chat = Inbox(alice, "chat"), Inbox(bob, "chat")
    try:
        await alice.connect()
        await bob.connect()
        assert await alice_welcome.next() == {"id": alice.id, "transport": "websocket"}
        assert (await bob_welcome.next())["id"] == bob.id
        # echo answers with every argument it got
        assert await alice.emit_with_ack_all("echo", 1, "two", {"3": [4]}, timeout=TIMEOUT) == [
            1,
            "two",
            {"3": [4]},
        ]
        # chat goes to every other client, not back to the sender
        alice.emit("chat", "hello")
        assert await bob_chat.next() == {"from": alice.id, "message": "hello"}
        assert alice_chat.queue.empty()
        # join answers with the socket's rooms
        assert await bob.emit_with_ack("join", "lobby", timeout=TIMEOUT) == sorted(
            [bob.id, "lobby"]
        )
    finally:
        await alice.disconnect()
        await bob.disconnect()


async def test_the_echo_server_sends_each_message_back(serve: ServeFn) -> None:
    base = await serve(create_echo_server())
    loop = asyncio.get_running_loop()
    url = f"{base}/engine.io/?EIO=4&transport=polling"
    opened = await loop.run_in_executor(None, http, "GET", url)
    assert opened.startswith("0")
    sid = json.loads(opened[1:])["sid"]
    assert (
        await loop.run_in_executor(None, http, "POST", f"{url}&sid={sid}", "4hi\x1e4there") == "ok"
    )
    assert await loop.run_in_executor(None, http, "GET", f"{url}&sid={sid}") == "4hi\x1e4there"


def http(method: str, url: str, body: str | None = None) -> str:
    data = None if body is None else body.encode()
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return str(response.read().decode())


def test_the_protocol_suites_settings_from_the_environment() -> None:
    """``AIOSIO_DEMO_FAST_HEARTBEAT`` and ``AIOSIO_DEMO_EIO3``, read at import by the process
    that serves the demo: the handshake announces 300/200 ms and a socket.io 2.x client
    (EIO=3) is accepted."""
    env = {**os.environ, "AIOSIO_DEMO_FAST_HEARTBEAT": "1", "AIOSIO_DEMO_EIO3": "1"}
    for app, path in (("aiosio.demo:sio", "/socket.io/"), ("aiosio.demo:echo", "/engine.io/")):
        proc = subprocess.Popen(
            [sys.executable, "-m", "aiosio", "serve", app, "--port", "0"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            port = listening_port(proc)
            answer = http("GET", f"http://127.0.0.1:{port}{path}?EIO=3&transport=polling&b64=1")
            # EIO3 polling payload: <length>:<packet>
            length, _, packet = answer.partition(":")
            assert packet.startswith("0"), answer
            opened = json.loads(packet[1:])
            assert (opened["pingInterval"], opened["pingTimeout"]) == (300, 200)
            assert int(length) >= len(packet)
        finally:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == 0
            assert proc.stderr is not None
            proc.stderr.close()


def listening_port(proc: subprocess.Popen[str]) -> int:
    """The port ``aiosio serve`` logs it listens on (read from its stderr, bounded by the
    process's own start)."""
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "aiosio listening on http://127.0.0.1:" in line:
            return int(line.rsplit(":", 1)[1])
        if len(seen) > 100:
            break
    raise AssertionError("aiosio serve did not start:\n" + "".join(seen))
