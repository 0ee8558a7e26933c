"""Hold many WebSocket sessions on aiosio's ASGI app under uvicorn through heartbeat cycles, with
or without a busy process on the server's core, and report what the server holds.

    .venv/bin/python benchmarks/asgi_hold.py --conns 5000 --ping-interval 5 --ping-timeout 5 \
        --hold 12 --busy

uvicorn runs in a subprocess pinned to core 0 (uvloop, httptools or ``--http h11``,
websockets-sansio); the clients are raw WebSocket clients on asyncio streams in this process,
pinned to core 1, that answer every Engine.IO ping. ``--busy`` starts a process spinning on
core 0 beside the server. The server answers a line on stdin with its open sessions, asyncio
tasks, RSS, CPython's small-object arenas and the objects the garbage collector tracks; read
when the sessions are open, at the end of the hold, two seconds after the clients all closed
(the ASGI app's heap trim runs a second after a wave), and after a full ``gc.collect()`` and
``malloc_trim``. ``--native``: the same against the native server; ``--bare``: against a bare
WebSocket app under uvicorn with no aiosio (what uvicorn keeps by itself); ``--trace 6``:
tracemalloc on, and what outlives the connections printed at the end.

``--stall N``: N more clients that connect, then stop reading while the server broadcasts to
them (a client that stops reading): reported are the sessions the engine gave up on and the
connections uvicorn still holds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

PYTHON = sys.executable  # the project's .venv when run with it

SERVER = r"""
import asyncio, ctypes, gc, json, os, sys
trace = int(sys.argv[6])
if trace:
    import tracemalloc
    tracemalloc.start(trace)
import uvicorn
import aiosio

interval, timeout, ws_ping = float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
sio = aiosio.Server(ping_interval=interval, ping_timeout=timeout)
app = sio.asgi()

reasons = {}
bare_open = None  # the bare app's open WebSockets (--bare)
native_server = None

def heap():
    if native_server is not None:
        return native_server.heap
    return app.heap if bare_open is None else None

@sio.engine.on("connection")
def count_close(socket):
    def closed(reason, description=None):
        reasons[reason] = reasons.get(reason, 0) + 1
    socket.on("close", closed)

@sio.on("flood")
def flood(socket, size):
    sio.emit("data", "x" * size)

def arenas():
    import re, tempfile
    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        stats = out.read().decode()
    found = re.search(r"# arenas allocated current\s*=\s*(\d+)", stats)
    return int(found[1]) if found else -1

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

lag = {"max": 0.0, "over_1s": 0}

def watch_lag(loop):
    expected = loop.time() + 0.05
    def tick():
        nonlocal expected
        late = loop.time() - expected
        lag["max"] = max(lag["max"], late)
        lag["over_1s"] += late > 1.0
        expected = loop.time() + 0.05
        loop.call_later(0.05, tick)
    loop.call_later(0.05, tick)

def reporter(loop, stop, connections):
    watch_lag(loop)
    def report():
        line = sys.stdin.readline()
        if not line:
            stop()
            return
        garbage = {}
        if line.strip() == "gc":
            # what only a full collection frees (objects in reference cycles), by type
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            gc.set_debug(0)
            for obj in gc.garbage:
                name = type(obj).__module__ + "." + type(obj).__qualname__
                garbage[name] = garbage.get(name, 0) + 1
            gc.garbage.clear()
            gc.collect()
            ctypes.CDLL(None).malloc_trim(0)
        if trace and line.strip() == "base":
            snapshots.append(tracemalloc.take_snapshot())
        elif trace and line.strip() == "gc":
            survivors(tracemalloc.take_snapshot())
        print(json.dumps({
            "sessions": len(bare_open) if bare_open is not None else len(sio.engine.clients),
            "tasks": len(asyncio.all_tasks()),
            "connections": connections(),
            "rss_kib": rss(),
            "gc_objects": len(gc.get_objects()),
            "closed": reasons,
            "lag": dict(lag),
            "arenas": arenas(),
            "trims": heap().trims if heap() is not None else -1,
            "garbage": sorted(garbage.items(), key=lambda item: -item[1])[:12],
            "freed": sum(garbage.values()),
        }), flush=True)
    loop.add_reader(sys.stdin.fileno(), report)

snapshots = []

def survivors(now):
    # What was allocated after the base measurement and is still there: the objects that
    # outlive the connections. Each small one (up to 512 bytes, CPython's small-object
    # allocator) can keep a 1 MiB arena resident.
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = now.filter_traces(ignore).compare_to(snapshots[0].filter_traces(ignore), "traceback")
    grown = [s for s in stats if s.count_diff > 0]
    grown.sort(key=lambda s: -s.count_diff)
    print(f"survivors: {sum(s.count_diff for s in grown)} blocks, "
          f"{sum(s.size_diff for s in grown) / 1024:.0f} KiB", file=sys.stderr)
    for stat in grown[:trace and 25]:
        print(f"{stat.count_diff:+d} blocks {stat.size_diff:+d} B", file=sys.stderr)
        for line in stat.traceback.format(most_recent_first=True)[:2 * 8]:
            print("    " + line, file=sys.stderr)
    sys.stderr.flush()

class Server(uvicorn.Server):
    async def startup(self, sockets=None):
        await super().startup(sockets)
        def stop():
            self.should_exit = True
        reporter(asyncio.get_running_loop(), stop, lambda: len(self.server_state.connections))
        print("READY", self.config.port, flush=True)

async def native():
    global native_server
    server = native_server = await aiosio.serve(sio, "127.0.0.1", int(sys.argv[1]))
    done = asyncio.Event()
    reporter(asyncio.get_running_loop(), done.set, lambda: len(server.connections))
    print("READY", server.port, flush=True)
    await done.wait()
    await server.close()

async def bare(scope, receive, send):
    # uvicorn with no aiosio: the Engine.IO handshake, then a ping to every WebSocket each
    # ping_interval from one task (as aiosio's timer wheel), pongs read and dropped
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            asyncio.get_running_loop().create_task(ping_all())
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": '0{"sid":"x","upgrades":[],"pingInterval":'
        + str(int(interval * 1000)) + ',"pingTimeout":' + str(int(timeout * 1000)) + '}'})
    bare_open.add(send)
    try:
        while (message := await receive())["type"] != "websocket.disconnect":
            if message.get("text") == "40":
                await send({"type": "websocket.send", "text": '40{"sid":"y"}'})
    finally:
        bare_open.discard(send)

async def ping_all():
    while True:
        await asyncio.sleep(interval)
        for send in list(bare_open):
            try:
                await send({"type": "websocket.send", "text": "2"})
            except Exception:
                pass

if sys.argv[5] == "bare":
    app, bare_open = bare, set()
if sys.argv[5] == "native":
    import uvloop
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(native())
    sys.exit()
config = uvicorn.Config(
    app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http=sys.argv[7],
    ws="websockets-sansio", log_level="warning", access_log=False, lifespan="on",
    backlog=4096, ws_ping_interval=None if ws_ping == "none" else float(ws_ping),
)
Server(config).run()
"""


class Client:
    """A raw WebSocket client speaking just enough Engine.IO 4: pongs every ping."""

    def __init__(self) -> None:
        self.open = False
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.pings = 0
        self.task: asyncio.Task[None] | None = None

    async def connect(self, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(head)
        self.reader, self.writer = reader, writer
        assert (await self.recv()).startswith("0{")
        self.send("40")
        assert (await self.recv()).startswith("40{")
        self.open = True

    def send(self, text: str) -> None:
        assert self.writer is not None
        data = text.encode()
        # masked with a zero key: the payload is unchanged (RFC 6455 5.3)
        self.writer.write(bytes([0x81, 0x80 | len(data)]) + b"\0\0\0\0" + data)

    async def recv(self) -> str:
        assert self.reader is not None
        while True:
            head = await self.reader.readexactly(2)
            size = head[1] & 0x7F
            if size == 126:
                size = int.from_bytes(await self.reader.readexactly(2), "big")
            elif size == 127:
                size = int.from_bytes(await self.reader.readexactly(8), "big")
            payload = await self.reader.readexactly(size)
            opcode = head[0] & 0x0F
            if opcode == 0x8:
                raise ConnectionError("closed by the server")
            if opcode == 0x9:  # uvicorn's own ping: pong it
                assert self.writer is not None
                self.writer.write(bytes([0x8A, 0x80 | size]) + b"\0\0\0\0" + payload)
                continue
            if opcode in (0x1, 0x2):
                return payload.decode(errors="replace")

    async def run(self) -> None:
        try:
            while True:
                message = await self.recv()
                if message == "2":
                    self.pings += 1
                    self.send("3")
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            self.open = False

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def main(args: argparse.Namespace) -> None:
    with socket.socket() as probe:  # a port free now (a fixed one may be a client's, in use)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = await asyncio.create_subprocess_exec(
        "taskset", "-c", "0", str(PYTHON), "-c", SERVER, str(port), str(args.ping_interval),
        str(args.ping_timeout), args.ws_ping_interval,
        "native" if args.native else "bare" if args.bare else "asgi",
        str(args.trace), args.http,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    busy = None
    if args.busy:
        busy = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", "while True: pass"])
    assert server.stdin is not None
    assert server.stdout is not None

    async def measure(what: str = "") -> dict[str, Any]:
        assert server.stdin is not None
        assert server.stdout is not None
        server.stdin.write(what.encode() + b"\n")
        return dict(json.loads(await server.stdout.readline()))

    try:
        ready = (await asyncio.wait_for(server.stdout.readline(), 30)).split()
        assert ready[0] == b"READY", ready
        base = await measure("base")
        clients: list[Client] = []
        failed = 0
        started = time.monotonic()

        async def start(client: Client) -> None:
            await client.connect(port)
            # answering pings from the moment it is open: a client that waits for the rest
            # of its batch would miss a heartbeat when the batch is slow
            client.task = asyncio.create_task(client.run())

        for first in range(0, args.conns, args.concurrency):
            batch = [Client() for _ in range(min(args.concurrency, args.conns - first))]
            results = await asyncio.gather(*(start(c) for c in batch), return_exceptions=True)
            for client, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    failed += 1
                    client.close()
                else:
                    clients.append(client)
        took = time.monotonic() - started
        held = await measure()
        print(f"connected {len(clients)} of {args.conns} in {took:.1f}s ({failed} failed)")
        report("open", base, held, len(clients))
        stalled: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        if args.stall:
            for _ in range(args.stall):
                client = Client()
                await client.connect(port)
                stalled.append((client.reader, client.writer))  # type: ignore[arg-type]
            # one live client asks for broadcasts the stalled ones never read
            for _ in range(args.stall_rounds):
                clients[0].send('42["flood",100000]')
                await asyncio.sleep(0.05)
        await asyncio.sleep(args.hold)
        alive = sum(c.open for c in clients)
        after = await measure()
        pings = sorted(c.pings for c in clients)
        print(
            f"after {args.hold}s: {alive} of {len(clients)} clients still open; pings per "
            f"client min {pings[0] if pings else 0} max {pings[-1] if pings else 0}"
        )
        report("hold", base, after, alive)
        for client in clients:
            client.close()
        for _, writer in stalled:
            writer.close()
        await asyncio.gather(*(c.task for c in clients if c.task), return_exceptions=True)
        for _ in range(int(args.settle / 0.5)):
            await asyncio.sleep(0.5)
            left = await measure()
            if not left["sessions"] and not left["connections"]:
                break
        await asyncio.sleep(2.0)  # the heap trim, a second after the wave
        left = await measure()
        report("closed", base, left, 0)
        collected = await measure("gc")
        report("after gc.collect() and malloc_trim", base, collected, 0)
        print(f"  freed by the collection: {collected['freed']} objects in cycles, most:")
        for name, count in collected["garbage"]:
            print(f"    {count:7d} {name}")
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
        if server.returncode is None:
            server.stdin.close()
            try:
                await asyncio.wait_for(server.wait(), 15)
            except TimeoutError:
                server.kill()
                await server.wait()


def report(stage: str, base: dict[str, Any], now: dict[str, Any], count: int) -> None:
    grown = now["rss_kib"] - base["rss_kib"]
    per = f", {grown / count:.1f} KiB per client" if count else ""
    objects = now["gc_objects"] - base["gc_objects"]
    arenas = now["arenas"] - base["arenas"]
    print(
        f"  {stage}: sessions {now['sessions']}, uvicorn connections {now['connections']}, "
        f"tasks {now['tasks']}, RSS {grown / 1024:+.1f} MiB{per}, gc objects {objects:+d}, "
        f"arenas {arenas:+d}, heap trims {now['trims']}, closed {now['closed']}, "
        f"event loop lag max {now['lag']['max']:.2f}s ({now['lag']['over_1s']} over 1 s)",
        flush=True,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conns", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--ping-interval", type=float, default=5.0)
    parser.add_argument("--ping-timeout", type=float, default=5.0)
    parser.add_argument(
        "--http", default="httptools", choices=["httptools", "h11"],
        help="uvicorn's HTTP implementation (the one that answers the upgrade)",
    )  # fmt: skip
    parser.add_argument("--ws-ping-interval", default="20", help="uvicorn's; 'none' turns it off")
    parser.add_argument("--hold", type=float, default=12.0)
    parser.add_argument("--settle", type=float, default=30.0)
    parser.add_argument("--busy", action="store_true", help="a busy process on the server's core")
    parser.add_argument("--native", action="store_true", help="the native server instead")
    parser.add_argument(
        "--bare", action="store_true",
        help="a bare WebSocket app under uvicorn instead of aiosio's (the handshake and a ping "
        "every --ping-interval): what uvicorn and the libraries under it keep by themselves",
    )  # fmt: skip
    parser.add_argument("--stall", type=int, default=0, help="clients that stop reading")
    parser.add_argument("--stall-rounds", type=int, default=200)
    parser.add_argument(
        "--trace", type=int, default=0, metavar="FRAMES",
        help="tracemalloc with this many frames; prints what outlives the connections "
        "(the RSS figures then include tracemalloc's own memory)",
    )  # fmt: skip
    arguments = parser.parse_args()
    os.sched_setaffinity(0, {1})
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(arguments))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main(arguments))
