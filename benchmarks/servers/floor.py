"""The floor: no Socket.IO layer, only what a server cannot avoid doing on uvloop.

A plain ``asyncio.Protocol`` that speaks just enough Engine.IO 4 / Socket.IO 5 over WebSocket for
loadgen.mjs (echo, broadcast, idle, churn and connects over the websocket transport): the upgrade
answered with a canned open packet, ``40`` with a canned ``40{"sid":...}``, ``42["bcast",...]``
sent as received to every joined client in the order they joined, ``42<id>["echo",...]`` answered
``43<id>[...]`` (``451-`` + a binary frame answered ``461-`` + the same bytes), a close frame
answered and the connection closed. No pings (the windows are shorter than the ping interval), no
JSON, no sessions, no checks beyond what the load generator needs. Polling gets a 400.

It writes the way aiosio's native server does (aiosio.transports.native), so that the difference
is aiosio's own work: a broadcast builds its frame once and appends it to each recipient's
pending list; at the end of the loop's turn (one ``call_soon`` per turn for all connections) each
connection with pending frames writes them in ONE ``transport.write``. TCP_NODELAY is on, as for
aiosio: uvloop sets it on every TCP transport and neither server changes it.

Prints ``READY <pid> <port>`` once listening. Run with the project's .venv (uvloop)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import sys

import uvloop

try:
    # websockets' C unmasking, which aiosio uses too when installed (.venv has it)
    from websockets.speedups import apply_mask
except ImportError:

    def apply_mask(data: bytes, key: bytes) -> bytes:
        n = len(data)
        mask = (key * (n // 4 + 1))[:n]
        return (int.from_bytes(data) ^ int.from_bytes(mask)).to_bytes(n)


TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
REFUSED = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 32\r\nConnection: close\r\n\r\n"
    b"floor: websocket transport only\n"
)


def frame(payload: bytes, opcode: int = TEXT) -> bytes:
    """A server frame: final, unmasked (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 0x10000:
        return struct.pack("!BBH", 0x80 | opcode, 126, n) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, n) + payload


OPEN = frame(b'0{"sid":"floor","upgrades":[],"pingInterval":25000,"pingTimeout":20000}')
JOINED = frame(b'40{"sid":"floor"}')

CLIENTS: dict[Connection, None] = {}  # joined "/", in the order they joined
PENDING: list[Connection] = []  # connections with frames queued in this turn of the loop


def flush() -> None:
    """End of the loop's turn: each connection writes what it queued, in one write."""
    conns = PENDING[:]
    PENDING.clear()
    for conn in conns:
        conn.sending = False
        out, conn.out = conn.out, []
        if out and conn.transport is not None:
            conn.transport.write(out[0] if len(out) == 1 else b"".join(out))


class Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.closed = False  # closing: nothing more is read
        self.out: list[bytes] = []  # frames queued in this turn
        self.sending = False  # in PENDING
        self.binary_ack = b""  # the 461- text frame waiting for its attachment

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        CLIENTS.pop(self, None)

    def queue(self, data: bytes) -> None:
        self.out.append(data)
        if not self.sending:
            self.sending = True
            if not PENDING:
                asyncio.get_running_loop().call_soon(flush)
            PENDING.append(self)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        buf = self.buffer
        buf += data
        if not self.upgraded and not self.upgrade():
            return
        # Client frames: masked, whole messages (the ws client does not fragment).
        pos, n = 0, len(buf)
        while n - pos >= 2 and not self.closed:
            opcode, size, start = buf[pos] & 0x0F, buf[pos + 1] & 0x7F, pos + 2
            if size == 126:
                if n < start + 2:
                    break
                size, start = struct.unpack_from("!H", buf, start)[0], start + 2
            elif size == 127:
                if n < start + 8:
                    break
                size, start = struct.unpack_from("!Q", buf, start)[0], start + 8
            end = start + 4 + size
            if end > n:
                break
            key = bytes(buf[start : start + 4])
            self.message(opcode, apply_mask(bytes(buf[start + 4 : end]), key))
            pos = end
        del buf[:pos]

    def upgrade(self) -> bool:
        """The HTTP request head: answer the WebSocket upgrade and send the open packet."""
        buf = self.buffer
        end = buf.find(b"\r\n\r\n")
        if end < 0 or self.transport is None:
            return False
        request, *lines = bytes(buf[:end]).split(b"\r\n")
        del buf[: end + 4]
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(b":") for h in lines)}
        key = headers.get(b"sec-websocket-key")
        if key is None or b"transport=websocket" not in request:
            self.transport.write(REFUSED)
            self.transport.close()
            self.closed = True
            return False
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + OPEN
        )
        self.upgraded = True
        return True

    def message(self, opcode: int, payload: bytes) -> None:
        if opcode == TEXT:
            if payload.startswith(b'42["bcast"'):
                # Sent to all as received: one frame for all, queued on each (queue() inlined)
                data = frame(payload)
                if not PENDING:
                    asyncio.get_running_loop().call_soon(flush)
                for conn in CLIENTS:
                    conn.out.append(data)
                    if not conn.sending:
                        conn.sending = True
                        PENDING.append(conn)
            elif payload.startswith(b"42"):  # 42<id>["echo",<args>] -> 43<id>[<args>]
                i = payload.index(b"[")
                self.queue(frame(b"43" + payload[2:i] + b"[" + payload[i + 8 :]))
            elif payload.startswith(b"451-"):  # 451-<id>["echo",<placeholder>] + attachment
                i = payload.index(b"[")
                self.binary_ack = frame(b"461-" + payload[4:i] + b"[" + payload[i + 8 :])
            elif payload == b"40":
                CLIENTS[self] = None
                self.queue(JOINED)
            # "3", the answer to a ping, never comes: no pings are sent
        elif opcode == BINARY and self.binary_ack:
            self.queue(self.binary_ack)
            self.queue(frame(payload, BINARY))
            self.binary_ack = b""
        elif opcode == PING:
            self.queue(frame(payload, PONG))
        elif opcode == CLOSE and self.transport is not None:
            CLIENTS.pop(self, None)
            self.closed = True
            out, self.out = self.out, []  # what was queued goes first
            self.transport.write(b"".join(out) + frame(payload[:2], CLOSE))
            self.transport.close()


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(
        Connection, "127.0.0.1", port, backlog=1024
    )
    print(f"READY {os.getpid()} {port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
