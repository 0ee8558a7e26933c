"""HARDENING.md 1 to 7 for socket.io 2.x connections (Engine.IO 3, Socket.IO protocol 4): the same
bad packets as ``test_socketio_hardening.py`` sends over Engine.IO 4, here over Engine.IO 3
long-polling (text payloads ``<length>:<packet>``, binary attachments as ``b4<base64>``), against
both servers. Each closes only its own connection with the same reason, reaches no handler, and
the server keeps serving a good 2.x client.

Also HARDENING 1's "or a number": an event whose name is a number reaches the handler of that
name as text, as with the reference (JavaScript's listeners are keyed by string).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from _eio import TIMEOUT
from _eio import eventually

# loop_errors is autouse: imported, it fails each test here too if anything reaches the event
# loop's exception handler (HARDENING 14)
from test_socketio_hardening import BAD
from test_socketio_hardening import loop_errors  # noqa: F401
from test_socketio_hardening import start

import aiosio
from conftest import ServeFn

PATH = "/socket.io/"


def v3_payload(*packets: str | bytes) -> bytes:
    """A v3 text payload; bytes as base64 binary MESSAGE packets (what socket.io-client 2.x
    sends when it cannot send binary payloads). Lengths count UTF-16 units."""
    parts = []
    for packet in packets:
        text = packet if isinstance(packet, str) else "b4" + base64.b64encode(packet).decode()
        units = len(text.encode("utf-16-le", "surrogatepass")) // 2
        parts.append(f"{units}:{text}")
    return "".join(parts).encode()


def v3_packets(body: str) -> list[str]:
    """Split a v3 text payload (the server answers ASCII here)."""
    packets = []
    while body:
        length, _, rest = body.partition(":")
        packets.append(rest[: int(length)])
        body = rest[int(length) :]
    return packets


class V3Client:
    """A socket.io 2.x client written by hand: Engine.IO 3 long-polling, base64 binary."""

    def __init__(self, http: httpx.AsyncClient, base: str) -> None:
        self.http = http
        self.base = base
        self.sid = ""
        self.inbox: list[str] = []

    def _url(self) -> str:
        query = "EIO=3&transport=polling&b64=1"
        return f"{self.base}{PATH}?{query}" + (f"&sid={self.sid}" if self.sid else "")

    async def open(self) -> str:
        response = await self.http.get(self._url())
        assert response.status_code == 200, response.text
        packets = v3_packets(response.text)
        assert packets[0].startswith("0{"), packets
        self.sid = json.loads(packets[0][1:])["sid"]
        self.inbox += packets[1:]
        await self.expect("40")  # "/" is connected implicitly for 2.x clients
        return self.sid

    async def send(self, *packets: str | bytes) -> int:
        response = await self.http.post(
            self._url(),
            content=v3_payload(*packets),
            headers={"content-type": "text/plain;charset=UTF-8"},
        )
        return response.status_code

    async def expect(self, packet: str) -> None:
        """Poll until ``packet`` arrives (skipping pings and noops); bounded by TIMEOUT."""
        for _ in range(10):
            while self.inbox:
                got = self.inbox.pop(0)
                if got == packet:
                    return
                assert got in ("2", "6"), (got, packet)
            response = await self.http.get(self._url())
            assert response.status_code == 200, response.text
            self.inbox += v3_packets(response.text)
        pytest.fail(f"{packet!r} did not arrive")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        yield client


@pytest.mark.parametrize("case", list(BAD))
async def test_bad_packets_over_engineio_3(
    serve: ServeFn, http: httpx.AsyncClient, case: str
) -> None:
    frames, expected = BAD[case]
    _sio, watch, base = await start(serve, allow_eio3=True)
    good = V3Client(http, base)
    good_sid = await good.open()
    await good.send('42["msg",1]')
    await good.expect('42["echo",1]')

    bad = V3Client(http, base)
    bad_sid = await bad.open()
    await bad.send(*frames)
    reason, _ = await watch.disconnected(bad_sid)
    assert reason == expected

    await good.send('42["msg",2]')
    await good.expect('42["echo",2]')
    assert watch.received == {good_sid: [1, 2], bad_sid: []}
    assert good_sid not in watch.disconnects
    assert watch.leaks == []
    fresh = V3Client(http, base)
    await fresh.open()
    await fresh.send('42["msg",3]')
    await fresh.expect('42["echo",3]')
    assert watch.leaks == []


async def test_numeric_event_names_reach_the_handler_of_that_name(
    serve: ServeFn, http: httpx.AsyncClient
) -> None:
    sio = aiosio.Server(allow_eio3=True)
    got: list[Any] = []
    sio.on("7", lambda _socket, *args: got.append(args))
    base = await serve(sio)
    client = V3Client(http, base)
    await client.open()
    await client.send('42[7,"seven"]', "42[7]")
    await eventually(lambda: len(got) == 2)
    assert got == [("seven",), ()]
