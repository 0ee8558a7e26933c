"""Broadcast latency and CPU per delivery across 2 servers on the Postgres adapter: aiosio's
``PostgresAdapter`` beside Node socket.io 4.8 on ``@socket.io/postgres-adapter`` 0.5.

    python benchmarks/cluster_postgres.py [--clients 50] [--messages 2000] [--interval 0.002]
                                          [--dsn postgresql://postgres@127.0.0.1:5432/test]
                                          [--only aiosio|node]

For each implementation: two servers (A and B, separate processes) on one channel prefix,
``--clients`` aiosio clients (WebSocket) on each, all in this process. A client asks A to
broadcast ``tick(i, sent_at)`` ``--messages`` times, ``--interval`` apart; every client records
``received_at - sent_at`` (one machine, one clock). Printed: the latency percentiles of B's
clients (through PostgreSQL) and A's (local), the deliveries, and the CPU seconds of A and B
(from /proc) per 1,000 deliveries. The clients share the machine's CPUs with the servers: compare
the two implementations of the same run, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiosio

HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def start(kind: str, port: int, prefix: str, dsn: str) -> subprocess.Popen[bytes]:
    if kind == "aiosio":
        cmd = [sys.executable, str(HERE / "servers" / "pg_cluster_aiosio.py")]
    else:
        cmd = ["node", str(HERE / "servers" / "pg_cluster_node.mjs")]
    proc = subprocess.Popen([*cmd, str(port), prefix, dsn], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = await asyncio.to_thread(proc.stdout.readline)
    if b"listening" not in line:
        raise RuntimeError(f"{kind} server did not start: {line!r}")
    return proc


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def run(kind: str, args: argparse.Namespace) -> dict[str, float]:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    ports = [free_port(), free_port()]
    procs = [await start(kind, port, prefix, args.dsn) for port in ports]
    clients: list[aiosio.Client] = []
    latencies: dict[str, list[float]] = {"A": [], "B": []}
    try:
        for server, port in zip("AB", ports, strict=True):
            for _ in range(args.clients):
                client = aiosio.Client(
                    f"http://127.0.0.1:{port}", transports=["websocket"], reconnection=False
                )
                seen = latencies[server]

                def tick(_i: int, sent: float, seen: list[float] = seen) -> None:
                    seen.append(time.time() - sent)

                client.on("tick", tick)
                await client.connect()
                clients.append(client)
        driver = clients[0]
        for _ in range(200):
            counted = await driver.emit_with_ack("count", timeout=5)
            if counted == 2:
                break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError(f"the two servers did not see each other (count {counted})")
        before = [cpu_seconds(p.pid) for p in procs]
        started = time.monotonic()
        await driver.emit_with_ack("burst", args.messages, args.interval, timeout=600)
        expected = args.messages * args.clients
        deadline = time.monotonic() + 30
        while len(latencies["B"]) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        after = [cpu_seconds(p.pid) for p in procs]
    finally:
        for client in clients:
            await client.disconnect()
        for proc in procs:
            proc.terminate()
            proc.wait(5)
    deliveries = len(latencies["A"]) + len(latencies["B"])
    cpu = [b - a for a, b in zip(before, after, strict=True)]
    b_lat = latencies["B"]
    return {
        "deliveries": deliveries,
        "expected": 2 * expected,
        "seconds": elapsed,
        "b_p50_ms": pct(b_lat, 50),
        "b_p99_ms": pct(b_lat, 99),
        "b_mean_ms": statistics.fmean(b_lat) * 1000,
        "a_p50_ms": pct(latencies["A"], 50),
        "cpu_a_s": cpu[0],
        "cpu_b_s": cpu[1],
        "cpu_ms_per_1k_deliveries": (cpu[0] + cpu[1]) / deliveries * 1e6,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=0.002)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--only", choices=["aiosio", "node"])
    args = parser.parse_args()
    for kind in ("aiosio", "node"):
        if args.only and kind != args.only:
            continue
        result = await run(kind, args)
        print(
            f"{kind:6}  deliveries {result['deliveries']}/{result['expected']} in "
            f"{result['seconds']:.1f}s  B (via PostgreSQL) p50 {result['b_p50_ms']:.2f} ms "
            f"p99 {result['b_p99_ms']:.2f} ms  A (local) p50 {result['a_p50_ms']:.2f} ms  "
            f"CPU A {result['cpu_a_s']:.2f}s B {result['cpu_b_s']:.2f}s = "
            f"{result['cpu_ms_per_1k_deliveries']:.1f} ms per 1,000 deliveries",
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main())
