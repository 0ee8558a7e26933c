"""Runs the benchmark scenarios against aiosio and its peers; ``benchmarks/run.sh`` installs the
peers first and calls this with the project's .venv.

Each run starts a fresh server pinned to core 0 (``taskset -c 0``) and the Node load generator
(loadgen.mjs) pinned to core 1, then measures one window: the server's CPU time (utime + stime of
its process tree from /proc, clock ticks) and memory (VmRSS) are read when the window opens and
closes, the load generator reports operations, latencies and its own CPU time. Tables print the
median of the runs per server, and the ratio of aiosio's native server to each one. The floor
(servers/floor.py: uvloop and raw WebSocket, no Socket.IO layer) is a reference line, not a peer:
no ratio against it; in the echo and broadcast scenarios it splits aiosio-native's CPU per
operation into what writing the frames costs anyway and aiosio's own part.

The cluster scenarios (cluster-redis, cluster-redis-sharded, cluster-redis-streams,
cluster-postgres) start two servers of one implementation on a cluster adapter instead, both on
core 0, and a redis-server of the run's own beside the load generator (PostgreSQL is the
machine's: BENCH_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/postgres): see
cluster_run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import operator
import os
import platform
import queue
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MAIN_PY = ROOT / ".venv" / "bin" / "python"
PEERS_PY = HERE / ".venv-peers" / "bin" / "python"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_CORE, LOADGEN_CORE = "0", "1"
REFERENCE = "aiosio-native"
FLOOR = "floor"
ASGI_FLOOR = "asgi-floor"
# Reference lines, not peers: no ratio against them.
REFERENCE_LINES = (FLOOR, ASGI_FLOOR)
# The modes whose operations are connections: the memory read before the window is the baseline
# (nothing connected yet), and the rate shown is connections opened per second.
CONNS_MODES = ("idle", "churn", "hold")
# The npm cluster adapters of the cluster scenarios (their versions go in the report)
NODE_ADAPTERS = (
    "@socket.io/redis-adapter",
    "@socket.io/redis-streams-adapter",
    "@socket.io/postgres-adapter",
    "redis",
    "pg",
)


@dataclass(frozen=True)
class ServerKind:
    name: str
    command: tuple[str, ...]
    label: str = ""  # shown in the tables instead of the name
    scenarios: tuple[str, ...] | None = None  # those it runs in without --servers (None: all)
    parsers: tuple[str, ...] = ("json",)  # the BENCH_PARSER values its server script takes
    workers: int = 0  # 0: one process; N: N worker processes, children of the one started


SERVERS = {
    s.name: s
    for s in (
        ServerKind(
            "aiosio-native",
            (str(MAIN_PY), str(HERE / "servers" / "aiosio_native.py")),
            parsers=("json", "msgpack"),
        ),
        ServerKind("aiosio-asgi", (str(MAIN_PY), str(HERE / "servers" / "aiosio_asgi.py"))),
        ServerKind("psio-uvicorn", (str(PEERS_PY), str(HERE / "servers" / "psio_uvicorn.py"))),
        ServerKind("psio-aiohttp", (str(PEERS_PY), str(HERE / "servers" / "psio_aiohttp.py"))),
        ServerKind(
            "node", ("node", str(HERE / "servers" / "node_server.mjs")), parsers=("json", "msgpack")
        ),
        # Past one process: 2 workers behind one port (run in the scenarios that name them)
        ServerKind(
            "aiosio-workers",
            (str(MAIN_PY), str(HERE / "servers" / "aiosio_workers.py")),
            "aiosio serve --workers 2",
            (),
            ("json", "msgpack"),
            workers=2,
        ),
        ServerKind(
            "node-cluster",
            ("node", str(HERE / "servers" / "node_cluster.mjs")),
            "node cluster: 2 workers, @socket.io/sticky + @socket.io/cluster-adapter",
            (),
            ("json", "msgpack"),
            workers=2,
        ),
        # The reference line: what writing the frames costs with no Socket.IO layer (it speaks
        # every websocket scenario; named in --servers it runs in them all, polling refused).
        ServerKind(
            FLOOR,
            (str(MAIN_PY), str(HERE / "servers" / "floor.py")),
            "floor: uvloop, raw WebSocket, canned handshake, no Socket.IO layer",
            (
                "echo",
                "echo-corked",
                "echo-interactive",
                "echo-1k",
                "echo-64k",
                "echo-binary",
                "broadcast-100",
                "broadcast-100-serial",
                "broadcast",
                "broadcast-serial",
                "broadcast-5k",
            ),
        ),
        # The same line under uvicorn: what an ASGI app's echo costs there anyway.
        ServerKind(
            ASGI_FLOOR,
            (str(MAIN_PY), str(HERE / "servers" / "asgi_floor.py")),
            "asgi-floor: uvicorn, bare ASGI echo, no Socket.IO layer",
            ("echo", "echo-corked", "echo-interactive", "echo-1k", "echo-64k"),
        ),
    )
}


@dataclass(frozen=True)
class Scenario:
    description: str
    op: str  # what one operation is, plural
    full: dict[str, Any]
    quick: dict[str, Any] | None  # None: left out of --quick
    runs: int  # runs per server by default (medians); --runs overrides
    servers: tuple[str, ...] | None = None  # the servers it runs without --servers (None: those
    # whose ServerKind.scenarios has it, and that take its parser)
    # "pinned": the server on core 0, the load generator on core 1. "budget": each server process
    # (the one process, or each worker) in a cgroup of its own with --budget-cores of CPU time,
    # worker i on core i, the load generator (and a master) on every core (see CpuBudget).
    split: str = "pinned"
    opt_in: bool = False  # run only when named (--scenario) or by its flag (--with-100k)


def _echo(**kw: Any) -> dict[str, Any]:
    # cork False: each emit its own write, as socket.io-client (see loadgen.mjs).
    return {"mode": "echo", "clients": 50, "inflight": 10, "size": 64, "duration": 10,
            "warmup": 0.5, "cork": False} | kw  # fmt: skip


def _bcast(**kw: Any) -> dict[str, Any]:
    return {"mode": "broadcast", "clients": 1000, "broadcasts": 200, "window": 4, "size": 64,
            "sample": 100} | kw  # fmt: skip


def _cluster(adapter: str, **kw: Any) -> dict[str, Any]:
    # across 2 servers (see cluster_run): one broadcast in flight at a time (latency without
    # queueing), 100 receivers on B all read, 50 broadcasts before the window
    return _bcast(adapter=adapter, clients=100, broadcasts=1000, window=1, warm=50) | kw


def _churn(**kw: Any) -> dict[str, Any]:
    return {"mode": "churn", "conns": 5000, "rounds": 3, "settle": 2, "concurrency": 100,
            "leave": "close"} | kw  # fmt: skip


# The reference scenarios run 3 times per server (idle, whose figure is memory and which spends
# 10 s holding, twice); the larger ones, and those that put a reference figure at other sizes
# (broadcast-100, idle-1k) or over time (churn), once, so that the default run stays under 24
# minutes on 2 cores. --runs N runs every scenario N times.
SCENARIOS: dict[str, Scenario] = {
    "echo": Scenario(
        "50 clients each keeping 10 acked `echo` events of 64 B in flight, 10 s",
        "acks",
        _echo(),
        _echo(clients=20, duration=2, warmup=0.5),
        3,
    ),
    "echo-corked": Scenario(
        "as echo, but each client's frames sent while handling one read leave in one write "
        "(corked): NOT how socket.io-client behaves; it flatters a server that batches, and is "
        "reported beside echo, never instead of it",
        "acks",
        _echo(cork=True),
        _echo(clients=20, duration=2, warmup=0.5, cork=True),
        1,
    ),
    "echo-interactive": Scenario(
        "500 clients each keeping 1 acked `echo` of 64 B in flight (chat, games: the next "
        "emit after the answer), 10 s",
        "acks",
        _echo(clients=500, inflight=1),
        _echo(clients=100, inflight=1, duration=2, warmup=0.5),
        1,
    ),
    "echo-1k": Scenario(
        "as echo with 1 KiB strings, 2 s",
        "acks",
        _echo(size=1024, duration=2, warmup=0.5),
        _echo(clients=20, size=1024, duration=1, warmup=0),
        1,
    ),
    "echo-64k": Scenario(
        "as echo with 64 KiB strings, 2 s",
        "acks",
        _echo(size=65536, duration=2, warmup=0.5),
        _echo(clients=20, inflight=4, size=65536, duration=1, warmup=0),
        1,
    ),
    "echo-binary": Scenario(
        "as echo with a 1 KiB binary attachment each way (451-/461- and a binary frame), 2 s",
        "acks",
        _echo(size=1024, binary=True, duration=2, warmup=0.5),
        _echo(clients=20, size=1024, binary=True, duration=1, warmup=0),
        1,
    ),
    "broadcast-100": Scenario(
        "as broadcast with 100 clients (all of them read), 4000 broadcasts",
        "deliveries",
        _bcast(clients=100, broadcasts=4000),
        _bcast(clients=100, broadcasts=500),
        1,
    ),
    "broadcast": Scenario(
        "1000 clients; one emits `bcast` 200 times (64 B; at most 4 not yet delivered to all) "
        "and the server sends each to all",
        "deliveries",
        _bcast(),
        _bcast(clients=300, broadcasts=50),
        3,
    ),
    "broadcast-100-serial": Scenario(
        "as broadcast-100 with one broadcast in flight at a time (the next emitted once every "
        "sampled client has the last), 2000 broadcasts",
        "deliveries",
        _bcast(clients=100, broadcasts=2000, window=1),
        _bcast(clients=100, broadcasts=300, window=1),
        1,
    ),
    "broadcast-serial": Scenario(
        "as broadcast with one broadcast in flight at a time, 200 broadcasts",
        "deliveries",
        _bcast(window=1),
        _bcast(clients=300, broadcasts=50, window=1),
        1,
    ),
    "broadcast-5k": Scenario(
        "as broadcast with 5000 clients, 60 broadcasts",
        "deliveries",
        # 300 000 deliveries: with 10 (a window under 0.5 s) the CPU time, read in 10 ms ticks,
        # moved the figure per delivery by 0.2 µs a tick.
        _bcast(clients=5000, broadcasts=60),
        None,
        1,
    ),
    "idle-1k": Scenario(
        "1000 WebSocket connections joined to / and held 1 s",
        "conns",
        {"mode": "idle", "conns": 1000, "hold": 1, "concurrency": 100},
        None,  # idle --quick is this
        1,
    ),
    "idle": Scenario(
        "5000 WebSocket connections joined to / and held 10 s",
        "conns",
        {"mode": "idle", "conns": 5000, "hold": 10, "concurrency": 100},
        {"mode": "idle", "conns": 1000, "hold": 1, "concurrency": 100},
        2,
    ),
    "idle-10k": Scenario(
        "10000 WebSocket connections joined to / and held 1 s",
        "conns",
        {"mode": "idle", "conns": 10000, "hold": 1, "concurrency": 100},
        None,
        1,
    ),
    "churn": Scenario(
        "3 rounds of: 5000 WebSocket connections joined to /, then closed (close handshake), "
        "then 2 s for the server to let them go",
        "cycles",
        _churn(),
        _churn(conns=1000, rounds=2, settle=1),
        1,
    ),
    "connects-ws": Scenario(
        "2000 cycles of connect (websocket), join /, close; 50 at a time",
        "cycles",
        {"mode": "connects", "transport": "websocket", "cycles": 2000, "concurrency": 50},
        {"mode": "connects", "transport": "websocket", "cycles": 300, "concurrency": 50},
        3,
    ),
    "connects-polling": Scenario(
        "2000 cycles of polling handshake, join /, upgrade to websocket (2probe/3probe/5), close; "
        "50 at a time",
        "cycles",
        {"mode": "connects", "transport": "polling", "cycles": 2000, "concurrency": 50},
        {"mode": "connects", "transport": "polling", "cycles": 300, "concurrency": 50},
        3,
    ),
    # The msgpack parser (socket.io-msgpack-parser's wire: one msgpack map per packet in a binary
    # message), aiosio's parser="msgpack" beside Node with socket.io-msgpack-parser: the same
    # loads as echo and broadcast, whose JSON figures are in their own tables of the same run.
    "echo-msgpack": Scenario(
        "as echo, with the msgpack parser on both sides",
        "acks",
        _echo(parser="msgpack"),
        _echo(clients=20, duration=2, warmup=0.5, parser="msgpack"),
        2,
    ),
    "broadcast-msgpack": Scenario(
        "as broadcast, with the msgpack parser on both sides",
        "deliveries",
        _bcast(parser="msgpack"),
        _bcast(clients=300, broadcasts=50, parser="msgpack"),
        2,
    ),
    "broadcast-100-serial-msgpack": Scenario(
        "as broadcast-100-serial, with the msgpack parser on both sides",
        "deliveries",
        _bcast(clients=100, broadcasts=2000, window=1, parser="msgpack"),
        _bcast(clients=100, broadcasts=300, window=1, parser="msgpack"),
        1,
    ),
    # Past one core (issue 18 item 5): one process against 2 workers, each process with the same
    # CPU budget (--budget-cores, a cgroup's quota), so that 2 workers have twice one process's
    # CPU while the load generator has the rest of the machine's 2 cores (see CpuBudget).
    "echo-workers": Scenario(
        "as echo (50 clients, 10 in flight each), one process against 2 workers, each process "
        "with the same CPU budget: throughput scales if 2 workers answer twice as many",
        "acks",
        _echo(),
        _echo(clients=20, duration=2, warmup=0.5),
        2,
        ("aiosio-native", "aiosio-workers", "node", "node-cluster"),
        "budget",
    ),
    "broadcast-workers": Scenario(
        "as broadcast (1000 clients, 200 broadcasts, 4 in flight), one process against 2 "
        "workers (the clients split between them, each broadcast crossing to the other worker), "
        "each process with the same CPU budget",
        "deliveries",
        _bcast(),
        _bcast(clients=300, broadcasts=50),
        2,
        ("aiosio-native", "aiosio-workers", "node", "node-cluster"),
        "budget",
    ),
    # 100 000 idle connections in one process (issue 18 item 6); opt-in (--with-100k): it holds
    # them for a minute per server. Fewer when the descriptors allowed per process are fewer
    # (said in the table with the reason); several source addresses past one port range.
    "idle-100k": Scenario(
        "100 000 WebSocket connections (fewer if the descriptor limit is lower: see the note) "
        "joined to / from several loopback addresses, held 60 s with the default heartbeat "
        "(25 s), then one broadcast to all",
        "conns",
        {"mode": "hold", "conns": 100_000, "hold": 60, "concurrency": 200, "size": 64},
        {"mode": "hold", "conns": 5000, "hold": 30, "concurrency": 200, "size": 64},
        1,
        ("aiosio-native", "node"),
        opt_in=True,
    ),
    # Across 2 servers on each cluster adapter (issue 16): aiosio and Node with the same adapter,
    # their servers A and B on core 0, the run's own redis-server beside the load generator.
    **{
        f"cluster-{adapter}": Scenario(
            f"2 servers on {label}: a client of A emits `bcast` 1000 times (64 B, one at a "
            "time), A broadcasts it to all, the 100 clients of B receive it",
            "deliveries",
            _cluster(adapter),
            _cluster(adapter, broadcasts=300),
            3,
            ("aiosio-native", "node"),  # those with a cluster script (CLUSTER_COMMANDS)
        )
        for adapter, label in (
            ("redis", "Redis pub/sub"),
            ("redis-sharded", "Redis sharded pub/sub"),
            ("redis-streams", "Redis Streams"),
            ("postgres", "PostgreSQL LISTEN/NOTIFY"),
        )
    },
}


# -- /proc --------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                children.setdefault(int(_stat_fields(int(entry))[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, ()))
    return found


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(utime, stime) of ``pid`` and its live descendants, in seconds."""
    user = system = 0
    for p in _descendants(pid):
        with contextlib.suppress(OSError):
            fields = _stat_fields(p)
            user += int(fields[11])
            system += int(fields[12])
    return user / CLK_TCK, system / CLK_TCK


def _own_cpu(pid: int) -> tuple[float, float]:
    """(utime, stime) of ``pid`` alone, in seconds."""
    with contextlib.suppress(OSError):
        fields = _stat_fields(pid)
        return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK
    return 0.0, 0.0


def sched_seconds(pid: int) -> tuple[float, float]:
    """(time on a CPU, time runnable but waiting for one) of every thread of ``pid`` and of its
    descendants, from /proc/<tid>/schedstat. Waiting time shows a process that had work but no
    CPU: the machine's other load, not the process's own limit."""
    run = wait = 0
    for p in _descendants(pid):
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{p}/task"):
                with contextlib.suppress(OSError, ValueError):
                    fields = Path(f"/proc/{p}/task/{tid}/schedstat").read_text().split()
                    run += int(fields[0])
                    wait += int(fields[1])
    return run / 1e9, wait / 1e9


def main_thread_sched(pid: int) -> tuple[float, float]:
    """(on a CPU, runnable but waiting) of the main thread alone: Node's event loop."""
    try:
        fields = Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()
    except OSError:
        return 0.0, 0.0
    return int(fields[0]) / 1e9, int(fields[1]) / 1e9


def machine_busy_seconds() -> float:
    """CPU time spent by everything on the machine (all CPUs), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


@dataclass(frozen=True)
class Sample:
    """What run.py reads when the measured window opens and when it closes."""

    wall: float
    server_cpu: tuple[float, float]  # user, system
    top_cpu: float  # the started process alone (a master: its share of the server's CPU)
    server_sched: tuple[float, float]
    server_loop: tuple[float, float]
    loadgen_sched: tuple[float, float]
    loadgen_loop: tuple[float, float]
    machine_busy: float

    @classmethod
    def take(cls, server: int, loadgen: int, loops: list[int] | None = None) -> Sample:
        """``loops``: the processes whose main thread is the server's event loop (the workers
        under a master; the server itself by default): their mean is the server's busy share."""
        loops = loops or [server]
        each = [main_thread_sched(p) for p in loops]
        return cls(
            wall=time.perf_counter(),
            server_cpu=cpu_seconds(server),
            top_cpu=sum(_own_cpu(server)),
            server_sched=sched_seconds(server),
            server_loop=(
                sum(e[0] for e in each) / len(each),
                sum(e[1] for e in each) / len(each),
            ),
            loadgen_sched=sched_seconds(loadgen),
            loadgen_loop=main_thread_sched(loadgen),
            machine_busy=machine_busy_seconds(),
        )


def rss_bytes(pid: int) -> int:
    total = 0
    for p in _descendants(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def fd_count(pid: int) -> int:
    """Open file descriptors of ``pid`` and its descendants: sockets the server still holds."""
    total = 0
    for p in _descendants(pid):
        with contextlib.suppress(OSError):
            total += len(os.listdir(f"/proc/{p}/fd"))
    return total


# -- CPU budgets (the "budget" split) -------------------------------------------------------------


class CpuBudget:
    """A cgroup of its own with ``cores`` of CPU time (a CFS quota: ``cores`` x the period per
    period), for one server process and its threads; removed on close (nothing stays changed).

    Why: on a 2-core machine one process against 2 workers cannot give each worker a core and the
    load generator one too. A budget per server process can: 2 workers have twice one process's
    CPU, and the load generator the rest. A 10 ms period keeps the throttling fine-grained (the
    default 100 ms would add up to 100 ms pauses to the latencies). cgroup v1 (cpu controller at
    /sys/fs/cgroup/cpu) or v2 (/sys/fs/cgroup with the cpu controller); needs root."""

    PERIOD_US = 10_000

    def __init__(self, pid: int, cores: float, name: str) -> None:
        self.pid = pid
        v1 = Path("/sys/fs/cgroup/cpu")
        v2 = Path("/sys/fs/cgroup")
        quota = int(cores * self.PERIOD_US)
        if (v1 / "cpu.cfs_quota_us").exists():
            self.root = v1
            self.dir = v1 / name
            self.dir.mkdir()
            (self.dir / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
            (self.dir / "cpu.cfs_quota_us").write_text(str(quota))
        elif "cpu" in (v2 / "cgroup.controllers").read_text().split():
            self.root = v2
            with contextlib.suppress(OSError):  # the children's cpu.max needs it enabled
                (v2 / "cgroup.subtree_control").write_text("+cpu")
            self.dir = v2 / name
            self.dir.mkdir()
            (self.dir / "cpu.max").write_text(f"{quota} {self.PERIOD_US}")
        else:
            raise OSError("no cpu cgroup controller at /sys/fs/cgroup/cpu or /sys/fs/cgroup")
        (self.dir / "cgroup.procs").write_text(str(pid))  # the process and all its threads

    def throttled_s(self) -> float:
        """Time the group was held back by its quota so far."""
        with contextlib.suppress(OSError, ValueError):
            for line in (self.dir / "cpu.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "throttled_time":  # v1, ns
                    return int(value) / 1e9
                if key == "throttled_usec":  # v2
                    return int(value) / 1e6
        return 0.0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            for pid in (self.dir / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (self.root / "cgroup.procs").write_text(pid)
        for _ in range(50):  # the killed process leaves the group when it is reaped
            try:
                self.dir.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.05)
        print(f"run.py: could not remove {self.dir}: remove it by hand", file=sys.stderr)


def worker_pids(kind: ServerKind, pid: int) -> list[int]:
    """The worker processes of a master (its children, in the order they started); [pid] for a
    server in one process."""
    if not kind.workers:
        return [pid]
    deadline = time.monotonic() + 10
    while True:
        children = [p for p in sorted(_descendants(pid))[1:] if int(_stat_fields(p)[1]) == pid]
        if len(children) >= kind.workers:
            return children[: kind.workers]
        if time.monotonic() > deadline:
            raise RuntimeError(f"expected {kind.workers} workers under {pid}, found {children}")
        time.sleep(0.05)


def place(kind: ServerKind, pid: int, split: str, cores: float) -> list[CpuBudget]:
    """The "budget" split: the server's process (or each worker) in a cgroup of ``cores`` CPU
    time, pinned to core 0 (or worker i to core i); a master stays on every core, unbudgeted
    (its CPU counts in the server's all the same)."""
    if split != "budget":
        return []
    targets = worker_pids(kind, pid)
    ncpu = os.cpu_count() or 1
    budgets: list[CpuBudget] = []
    try:
        for i, target in enumerate(targets):
            core = str(i % ncpu)
            for tid in os.listdir(f"/proc/{target}/task"):
                os.sched_setaffinity(int(tid), {int(core)})
            budgets.append(CpuBudget(target, cores, f"aiosio-bench-{os.getpid()}-{target}"))
    except OSError as exc:
        for b in budgets:
            b.close()
        raise RuntimeError(
            f"the budget split needs a writable cpu cgroup (root): {exc}; run the other "
            "scenarios, or as root"
        ) from exc
    return budgets


# -- processes ----------------------------------------------------------------------------------


class Lines:
    """Lines of a child's stdout, read on a thread, with a timeout per line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        assert proc.stdout is not None
        stream = proc.stdout

        def pump() -> None:
            for line in stream:
                self.queue.put(line)
            self.queue.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def next(self, timeout: float) -> str:
        try:
            line = self.queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no output for {timeout:.0f} s") from None
        if line is None:
            raise EOFError("the process exited")
        return line


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc`` and its descendants (the workers of a master: none may outlive the run)."""
    if proc.poll() is None:
        for p in _descendants(proc.pid)[1:]:
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)
        proc.send_signal(signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def tail(path: Path, n: int = 800) -> str:
    try:
        return path.read_text(errors="replace")[-n:].strip()
    except OSError:
        return ""


@dataclass
class Window:
    """What one run observed: the load generator's result and the samples around its window."""

    result: dict[str, Any]
    before: Sample
    after: Sample
    rss_base: int
    rss_end: int
    rss_marks: dict[str, int]
    fds_base: int
    fds_marks: dict[str, int]
    cpu_marks: dict[str, tuple[float, float]]  # at each mark: wall time, the server's CPU time


def _drive(
    loadgen: subprocess.Popen[str],
    pid: int,
    params: dict[str, Any],
    timeout: float,
    loops: list[int] | None = None,
) -> Window:
    lines = Lines(loadgen)
    assert loadgen.stdin is not None
    marks: dict[str, int] = {}
    fds: dict[str, int] = {}
    cpu_marks: dict[str, tuple[float, float]] = {}
    before = after = None
    rss_base = rss_bytes(pid)
    fds_base = fd_count(pid)
    rss_end = 0
    while True:
        msg = json.loads(lines.next(timeout))
        ev = msg["ev"]
        if ev == "ready":
            if params["mode"] in CONNS_MODES:  # nothing connected yet: the baseline
                rss_base = rss_bytes(pid)
                fds_base = fd_count(pid)
            before = Sample.take(pid, loadgen.pid, loops)
            loadgen.stdin.write("start\n")
            loadgen.stdin.flush()
        elif ev == "mark":
            cpu_marks[msg["name"]] = (time.perf_counter(), sum(cpu_seconds(pid)))
            marks[msg["name"]] = rss_bytes(pid)
            fds[msg["name"]] = fd_count(pid)
            loadgen.stdin.write("marked\n")
            loadgen.stdin.flush()
        elif ev == "end":
            after = Sample.take(pid, loadgen.pid, loops)
            rss_end = rss_bytes(pid)
            loadgen.stdin.write("stop\n")
            loadgen.stdin.flush()
        elif ev == "error":
            raise RuntimeError(f"load generator: {msg['error']}")
        elif ev == "result":
            if before is None or after is None:
                raise RuntimeError("the load generator ended without a measured window")
            return Window(msg, before, after, rss_base, rss_end, marks, fds_base, fds, cpu_marks)


def hold_size(params: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The hold scenario's connection count within this machine's limits, the source addresses
    it needs, and what capped it (None: not capped). Each connection is a descriptor in the
    server and one in the load generator (both inherit run.py's RLIMIT_NOFILE, which run.sh
    raises to the hard limit); each source address gives one local port range."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    wanted = params["conns"]
    conns, why = wanted, None
    if soft != resource.RLIM_INFINITY and soft - 200 < conns:
        conns = soft - 200
        why = (
            f"{conns:,} connections, not {wanted:,}: the descriptors per process are limited to "
            f"{soft:,} (ulimit -n; run.sh raises it to the hard limit, "
            f"{resource.getrlimit(resource.RLIMIT_NOFILE)[1]:,}), and the server and the load "
            "generator each need one per connection"
        )
    per_source = (high - low + 1) * 9 // 10
    sources = [f"127.0.0.{i + 1}" for i in range(-(-conns // per_source))]
    return params | {"conns": conns, "sources": sources}, why


def one_run(
    kind: ServerKind,
    params: dict[str, Any],
    logdir: Path,
    split: str = "pinned",
    budget_cores: float = 0.25,
) -> dict[str, Any]:
    port = free_port()
    server_log = logdir / f"{kind.name}.server.log"
    lg_log = logdir / f"{kind.name}.loadgen.log"
    timeout = 240
    capped = None
    if params["mode"] == "hold":
        params, capped = hold_size(params)
        # connecting, holding, broadcasting: more than the other scenarios' 240 s at 100k
        timeout = 240 + params["hold"] + params["conns"] // 200
    everywhere = ",".join(str(i) for i in range(os.cpu_count() or 1))
    server_cpus, loadgen_cpus = (
        (everywhere, everywhere) if split == "budget" else (SERVER_CORE, LOADGEN_CORE)
    )
    env = os.environ | {"BENCH_PARSER": params.get("parser", "json")}
    budgets: list[CpuBudget] = []
    with server_log.open("a") as slog, lg_log.open("a") as llog:
        server = subprocess.Popen(
            ["taskset", "-c", server_cpus, *kind.command, str(port)],
            stdout=subprocess.PIPE,
            stderr=slog,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=HERE,
            env=env,
        )
        loadgen: subprocess.Popen[str] | None = None
        try:
            out = Lines(server)
            line = out.next(30)
            while not line.startswith("READY "):
                line = out.next(30)
            pid = int(line.split()[1])
            budgets = place(kind, pid, split, budget_cores)
            time.sleep(0.1)  # let the freshly started process settle
            loadgen = subprocess.Popen(
                ["taskset", "-c", loadgen_cpus, "node", str(HERE / "loadgen.mjs"),
                 json.dumps({**params, "port": port, "timeout": timeout})],
                stdout=subprocess.PIPE,
                stdin=subprocess.PIPE,
                stderr=llog,
                text=True,
                cwd=HERE,
            )  # fmt: skip
            throttled0 = sum(b.throttled_s() for b in budgets)
            w = _drive(loadgen, pid, params, timeout, worker_pids(kind, pid))
            throttled = sum(b.throttled_s() for b in budgets) - throttled0
            alive = server.poll() is None
        except (TimeoutError, EOFError, RuntimeError, ValueError) as exc:
            detail = tail(server_log) or tail(lg_log)
            raise RuntimeError(f"{exc}\n{detail}") from exc
        finally:
            if loadgen is not None:
                stop(loadgen)
            stop(server)
            for b in budgets:
                b.close()
    if not alive:
        raise RuntimeError(f"the server exited during the run\n{tail(server_log)}")

    msg, before, after, rss_base, rss_end, marks = (
        w.result, w.before, w.after, w.rss_base, w.rss_end, w.rss_marks
    )  # fmt: skip
    ops = msg["ops"]
    wall = after.wall - before.wall
    user = after.server_cpu[0] - before.server_cpu[0]
    system = after.server_cpu[1] - before.server_cpu[1]
    cpu = user + system
    server_run = after.server_sched[0] - before.server_sched[0]
    server_loop = [a - b for a, b in zip(after.server_loop, before.server_loop, strict=True)]
    lg_run = after.loadgen_sched[0] - before.loadgen_sched[0]
    loop_run = after.loadgen_loop[0] - before.loadgen_loop[0]
    loop_wait = after.loadgen_loop[1] - before.loadgen_loop[1]
    busy = after.machine_busy - before.machine_busy
    result: dict[str, Any] = {
        "ops": ops,
        "seconds": msg["seconds"],
        "ops_per_s": ops / msg["seconds"] if msg["seconds"] else 0.0,
        "server_cpu_s": cpu,
        "cpu_us_per_op": cpu / ops * 1e6 if ops else None,
        "sys_us_per_op": system / ops * 1e6 if ops else None,
        "server_cpu_share": cpu / wall,
        # the kernel's part of it (syscalls, and loopback TCP work done in the server's context)
        "server_sys_share": system / cpu if cpu else None,
        # the server's event loop running, or runnable and waiting for its core
        "server_loop_busy": sum(server_loop) / wall,
        "lg_cpu_share": msg["lg_cpu_share"],
        # the load generator's event loop: running, or runnable and waiting for its core; near
        # 100 % it had no idle time and would be the limit
        "lg_loop_busy": (loop_run + loop_wait) / wall,
        "lg_loop_wait": loop_wait / wall,
        # CPU used by anything else on the machine, in cores (the other sessions, the kernel)
        "other_load": max(0.0, busy - server_run - lg_run) / wall,
        "p50_ms": msg.get("p50_ms"),
        "p99_ms": msg.get("p99_ms"),
        "rss_base_mib": rss_base / 2**20,
        "rss_end_mib": rss_end / 2**20,
    }
    if kind.workers and cpu:
        # the master's part of the server's CPU (hand-off, the bus between the workers)
        result["master_share"] = (after.top_cpu - before.top_cpu) / cpu
    if budgets:
        # the share of the window the budgeted processes were held back by their quota: near 0
        # the load generator, not the budget, was the limit
        result["throttled_share"] = throttled / wall / len(budgets)
    if params["mode"] == "hold":
        result |= hold_result(w, params, before, ops)
        if capped:
            result["capped"] = capped
    if params["mode"] == "idle":
        held = max(marks.get("held", 0), rss_end)
        result["kib_per_conn"] = (held - rss_base) / 1024 / ops if ops else None
        result["connects_per_s"] = msg["connects_per_s"]
    if params["mode"] == "churn":
        # memory per connection held in the first round; then the memory the server still has,
        # over the baseline, once each round's connections have left
        rounds, conns = params["rounds"], params["conns"]
        over = {name: (rss - rss_base) / 2**20 for name, rss in marks.items()}
        result["kib_per_conn"] = over["held1"] * 1024 / conns
        result["left_first_mib"] = over["left1"]
        result["left_last_mib"] = over[f"left{rounds}"]
        result["rss_over_base_mib"] = over
        result["fds_over_base"] = {name: n - w.fds_base for name, n in w.fds_marks.items()}
        # descriptors (sockets) the server still had open after the last round left
        if (fds_left := w.fds_marks[f"left{rounds}"] - w.fds_base) > 0:
            result["fds_left"] = fds_left
        result["connects_per_s"] = msg["connects_per_s"]
    for key in ("errors", "connect_errors", "last_error", "undelivered", "dropped", "unclosed"):
        if msg.get(key):
            result[key] = msg[key]
    return result


def hold_result(w: Window, params: dict[str, Any], before: Sample, conns: int) -> dict[str, Any]:
    """idle-100k's figures from its marks: held (all connected), heartbeats (after the hold),
    broadcast (one broadcast delivered to all)."""
    msg, (t_held, cpu_held), (t_hb, cpu_hb) = (
        w.result,
        w.cpu_marks["held"],
        w.cpu_marks["heartbeats"],
    )
    setup_cpu = cpu_held - sum(before.server_cpu)
    cpu_bcast = w.cpu_marks["broadcast"][1]
    return {
        "conns": conns,
        "sources": len(params["sources"]),
        "kib_per_conn": (w.rss_marks["held"] - w.rss_base) / 1024 / conns,
        "connects_per_s": msg["connects_per_s"],
        # connections set up per second of the server's CPU (handshake, upgrade, join)
        "conns_per_cpu_s": conns / setup_cpu if setup_cpu > 0 else None,
        # the server's CPU over the hold, nothing but heartbeats going on, in % of one core
        "heartbeat_cpu_share": (cpu_hb - cpu_held) / (t_hb - t_held),
        "hold_s": t_hb - t_held,
        "pings_answered": msg.get("pings"),
        "bcast_cpu_ms": (cpu_bcast - cpu_hb) * 1e3,
        "bcast_p50_ms": msg.get("bcast_p50_ms"),
        "bcast_p99_ms": msg.get("bcast_p99_ms"),
        "bcast_max_ms": msg.get("bcast_max_ms"),
    }


# -- reporting ----------------------------------------------------------------------------------

METRICS = (
    "ops_per_s", "cpu_us_per_op", "sys_us_per_op", "p50_ms", "p99_ms", "rss_end_mib",
    "kib_per_conn", "server_cpu_share", "server_sys_share", "server_loop_busy", "lg_cpu_share",
    "lg_loop_busy", "lg_loop_wait", "other_load", "connects_per_s", "left_first_mib",
    "left_last_mib", "throttled_share", "master_share", "conns", "conns_per_cpu_s",
    "heartbeat_cpu_share", "bcast_cpu_ms", "bcast_p50_ms", "bcast_p99_ms", "bcast_max_ms",
)  # fmt: skip


def median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    med: dict[str, Any] = {}
    for key in METRICS:
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            med[key] = statistics.median(values)
    return med


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _pct(m: dict[str, Any], key: str) -> str:
    return f"{m[key]:.0%}" if key in m else "-"


def versus(
    ref: dict[str, Any],
    other: dict[str, Any],
    key: str,
    combine: Callable[[float, float], float] = operator.truediv,
) -> float | None:
    """aiosio-native's ``key`` over ``other``'s (or ``combine`` of the two): the median of the
    ratios of runs made side by side (run i of each, one right after the other), which a drift in
    the machine's speed over the session affects far less than the ratio of the medians; that
    when the runs don't pair."""
    a, b = ref.get("runs", []), other.get("runs", [])
    if a and len(a) == len(b) and all(r.get(key) and o.get(key) for r, o in zip(a, b, strict=True)):
        return statistics.median(combine(r[key], o[key]) for r, o in zip(a, b, strict=True))
    ma, mb = ref.get("median", {}).get(key), other.get("median", {}).get(key)
    return combine(ma, mb) if ma and mb else None


def floor_split(per_server: dict[str, dict[str, Any]]) -> dict[str, float] | None:
    """aiosio-native's CPU per op = the floor's (writing the frames: uvloop and the kernel) +
    aiosio's own (the difference, paired like the ratios), each with its system part."""
    ref, floor = per_server.get(REFERENCE, {}), per_server.get(FLOOR, {})
    if "median" not in ref or "median" not in floor:
        return None
    own = versus(ref, floor, "cpu_us_per_op", operator.sub)
    if own is None:
        return None
    return {
        "native_us": ref["median"]["cpu_us_per_op"],
        "native_sys_us": ref["median"].get("sys_us_per_op", 0.0),
        "floor_us": floor["median"]["cpu_us_per_op"],
        "floor_sys_us": floor["median"].get("sys_us_per_op", 0.0),
        "own_us": own,
    }


def asgi_split(per_server: dict[str, dict[str, Any]]) -> str | None:
    """Under uvicorn: aiosio-asgi's and python-socketio's CPU per op = the ASGI floor's
    (uvicorn's own per-message path) + their own (the difference, paired by run); and the
    most their ratio can be there, python-socketio's over the floor (aiosio's own part 0)."""
    ours, theirs = per_server.get("aiosio-asgi", {}), per_server.get("psio-uvicorn", {})
    floor = per_server.get(ASGI_FLOOR, {})
    if not all("median" in d for d in (ours, theirs, floor)):
        return None
    own = versus(ours, floor, "cpu_us_per_op", operator.sub)
    psio_own = versus(theirs, floor, "cpu_us_per_op", operator.sub)
    ratio = versus(theirs, ours, "cpu_us_per_op")
    bound = versus(theirs, floor, "cpu_us_per_op")
    if None in (own, psio_own, ratio, bound):
        return None
    return (
        f"under uvicorn: aiosio-asgi {ours['median']['cpu_us_per_op']:.2f} µs, python-socketio "
        f"{theirs['median']['cpu_us_per_op']:.2f}, asgi-floor (uvicorn alone) "
        f"{floor['median']['cpu_us_per_op']:.2f}; aiosio's own {own:.2f}, python-socketio's own "
        f"{psio_own:.2f}; python-socketio ÷ aiosio-asgi {ratio:.2f} (at most {bound:.2f} there: "
        "python-socketio ÷ asgi-floor)"
    )


def split_text(split: dict[str, float]) -> str:
    return (
        f"aiosio-native {split['native_us']:.2f} µs (system {split['native_sys_us']:.2f}), "
        f"floor {split['floor_us']:.2f} (system {split['floor_sys_us']:.2f}), aiosio's own "
        f"{split['own_us']:.2f}"
    )


BUDGET_CORES = [0.25]  # --budget-cores, for the report

# the process (one, or one per worker) and its workers' kind, for the ratios of the budget split
WORKER_PAIRS = (("aiosio-workers", "aiosio-native"), ("node-cluster", "node"))


def workers_lines(per_server: dict[str, dict[str, Any]], rate: str) -> list[str]:
    """The budget split: 2 workers over one process, of the same implementation."""
    lines = [
        "Each server process (the one process, or each worker) had a CPU budget of "
        f"{BUDGET_CORES[0]:g} core (a cgroup's quota), worker i pinned to core i, the one "
        "process to core 0; the load generator and a master (the aiosio master, Node's primary: "
        "no budget, their CPU counted in the server's) on both cores. *throttled*: the share of "
        "the window a budgeted process was held back by its quota (near 100 %: the budget was "
        "the limit, as meant; low: something else was).",
        "",
    ]
    for workers, single in WORKER_PAIRS:
        w, one = per_server.get(workers, {}), per_server.get(single, {})
        if "median" not in w or "median" not in one:
            continue
        thr = versus(w, one, rate)
        cpu = versus(w, one, "cpu_us_per_op")
        lines.append(
            f"- {SERVERS[workers].label} ÷ {single}: throughput "
            f"{'-' if thr is None else f'{thr:.2f}x'}, CPU per op "
            f"{'-' if cpu is None else f'{cpu:.2f}x'} (throttled "
            f"{_pct(w['median'], 'throttled_share')} vs {_pct(one['median'], 'throttled_share')}"
            f"; the master's part of the workers' CPU {_pct(w['median'], 'master_share')})"
        )
    return lines


def hold_lines(per_server: dict[str, dict[str, Any]]) -> list[str]:
    """idle-100k's own figures (the table's CPU µs/op is per connection over the whole window)."""
    lines = [
        "| server | conns | sources | KiB/conn | setup: conns per CPU-s | heartbeats: CPU % of "
        "a core | pings answered | broadcast to all: p50 / p99 / max ms | its CPU ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    notes = []
    for server, data in per_server.items():
        if "median" not in data:
            continue
        m, run = data["median"], data["runs"][0]
        lines.append(
            f"| {server} | {_num(m.get('conns'), 0)} | {run.get('sources', '-')} | "
            f"{_num(m.get('kib_per_conn'), 2)} | {_num(m.get('conns_per_cpu_s'), 0)} | "
            f"{_num(m.get('heartbeat_cpu_share', 0) * 100, 2)} | {run.get('pings_answered', '-')}"
            f" | {_num(m.get('bcast_p50_ms'), 1)} / {_num(m.get('bcast_p99_ms'), 1)} / "
            f"{_num(m.get('bcast_max_ms'), 1)} | {_num(m.get('bcast_cpu_ms'), 1)} |"
        )
        if run.get("capped"):
            notes.append(run["capped"])
    lines += ["", *sorted(set(notes))]
    return lines


def table(name: str, per_server: dict[str, dict[str, Any]], quick: bool, runs: int) -> str:
    spec = SCENARIOS[name]
    desc, op = spec.description, spec.op
    if quick and spec.quick is not None:
        shown = {k: v for k, v in spec.quick.items() if k != "mode"}
        desc = f"--quick: {', '.join(f'{k} {v}' for k, v in shown.items())}"
    mode = spec.full["mode"]
    conns = mode in CONNS_MODES
    churn = mode == "churn"
    rounds = (spec.quick if quick and spec.quick is not None else spec.full).get("rounds", 0)
    ref = per_server.get(REFERENCE, {})
    head = [
        "server", "conns/s" if conns else f"{op}/s", "CPU µs/op", "p50 ms", "p99 ms",
        "KiB/conn" if conns else "RSS MiB",
        *(["left 1: MiB over base", f"left {rounds}: MiB over base"] if churn else []),
        "server CPU / busy", "loadgen CPU / busy", "other load",
        "native CPU/op ÷ this", "native ops/s ÷ this",
    ]  # fmt: skip
    rows = [head, ["---"] * len(head)]
    rate = "connects_per_s" if conns else "ops_per_s"
    for server, data in per_server.items():
        if "median" not in data:
            if "error" in data:
                reason = "failed: " + data["error"].splitlines()[0][:80].replace("|", "/")
            else:
                reason = "not run (past the time budget)"
            rows.append([SERVERS[server].label or server, reason] + [""] * (len(head) - 2))
            continue
        m = data["median"]
        cpu_ratio = thr_ratio = None  # none against the floor: a reference line, not a peer
        if server not in REFERENCE_LINES:
            cpu_ratio, thr_ratio = versus(ref, data, "cpu_us_per_op"), versus(ref, data, rate)
        rows.append(
            [
                SERVERS[server].label or server,
                _num(m.get(rate), 0),
                _num(m.get("cpu_us_per_op"), 1),
                _num(m.get("p50_ms"), 2),
                _num(m.get("p99_ms"), 2),
                _num(m.get("kib_per_conn") if conns else m.get("rss_end_mib"), 1),
                *(
                    [_num(m.get("left_first_mib"), 1), _num(m.get("left_last_mib"), 1)]
                    if churn
                    else []
                ),
                f"{_pct(m, 'server_cpu_share')} / {_pct(m, 'server_loop_busy')}",
                f"{_pct(m, 'lg_cpu_share')} / {_pct(m, 'lg_loop_busy')}",
                f"{m['other_load']:.2f}" if "other_load" in m else "-",
                "-" if cpu_ratio is None else f"{cpu_ratio:.2f}",
                "-" if thr_ratio is None else f"{thr_ratio:.2f}",
            ]
        )
    lines = [f"### {name}: {desc}", "", f"({runs} run{'s' if runs > 1 else ''} per server)", ""]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    if "adapter" in spec.full:
        lines += cluster_lines(per_server)
    if mode == "hold":
        lines += ["", *hold_lines(per_server)]
    if spec.split == "budget":
        lines += ["", *workers_lines(per_server, rate)]
    if split := floor_split(per_server):
        one = {"deliveries": "delivery"}.get(op, op.removesuffix("s"))
        lines += ["", f"CPU per {one}: {split_text(split)}"]
    if under := asgi_split(per_server):
        lines += ["", f"CPU per {spec.op.removesuffix('s')} {under}"]
    if churn:
        # the whole series, per run: does the memory go back down when they leave, and does what
        # stays grow from round to round?
        lines += ["", "RSS over the baseline at each mark, MiB:", ""]
        for server, data in per_server.items():
            for i, run in enumerate(data["runs"]):
                over = run.get("rss_over_base_mib", {})
                series = ", ".join(f"{k} {v:+.1f}" for k, v in over.items())
                lines.append(f"- {server} run {i + 1}: {series}")
    for server, data in per_server.items():
        if data.get("not_run"):
            lines.append(f"\n{server}: {data['not_run']} run(s) not made, past the time budget")
        for i, run in enumerate(data["runs"]):
            trouble = {k: run[k] for k in PROBLEMS if run.get(k)}
            if trouble:
                lines.append(
                    f"\n{server} run {i + 1}: " + ", ".join(f"{k} {v}" for k, v in trouble.items())
                )
    return "\n".join(lines)


# Reported under a table when a run had any: failed cycles, connections that needed a retry,
# broadcasts missing at a receiver, idle connections the server closed, churn connections whose
# close handshake the server did not finish, descriptors the server still had after churn.
PROBLEMS = (
    "errors", "last_error", "connect_errors", "undelivered", "dropped", "unclosed", "fds_left",
)  # fmt: skip


LEGEND = """\
Columns: medians of the runs. *CPU µs/op* is the server's CPU time (user + system, its whole
process tree) over the measured window divided by the operations in it: the figure that matters.
*p50/p99* are per operation (ack round trip; emit-to-delivery for broadcasts; whole cycle for
connects; for idle and churn, a connection's opening to its namespace joined). The load writes
each emit on its own, as socket.io-client does; echo-corked, which batches a client's frames,
flatters a batching server and is shown beside echo, not instead of it. *CPU* is CPU time over
the window's wall time (100 % = one core; for the load generator its own process.cpuUsage, all
threads). *busy* is the share of the window the process's main
thread (the event loop) was running or runnable and waiting for its core (/proc/<pid>/task/<pid>/
schedstat): well under 100 % it had idle time, so it was not the limit; near 100 % it was. Busy
above CPU means other load took the core from it. *other load*: CPU (in cores) used by everything
else on the machine during the window. *native ÷ this*: aiosio-native's CPU per op over this
server's (< 1: aiosio uses less CPU) and aiosio-native's throughput over this server's (> 1: aiosio
is faster), each the median of the ratios of runs made side by side (run i of aiosio-native, run i
of this server). idle: *conns/s* is the rate the connections were opened, *CPU µs/op* is per
connection (handshake included), *KiB/conn* is (RSS holding them - RSS before) / connections.
churn: as idle for the first round (*CPU µs/op* is per connection cycle: open, join, hold,
close), and *left r: MiB over base* is the RSS once round r's connections have all closed and the
settle time has passed, minus the RSS before the first round: near 0 the memory went back; the
same after the last round as after the first, it does not grow with churn. Under the table, the
RSS over base at each mark (held r: all of round r connected; left r: all of them gone).
*floor* (benchmarks/servers/floor.py): uvloop and a raw WebSocket answering with canned Engine.IO
and Socket.IO strings, no Socket.IO layer, writing as aiosio's native server does (a broadcast's
frame built once, each connection's frames of a loop turn in one write): what writing the frames
costs anyway (uvloop and the kernel). A reference line, not a peer: no ratio against it. Under the
echo and broadcast tables, aiosio-native's CPU per operation = the floor's + aiosio's own (the
difference, paired by run like the ratios), with the system (kernel) part of each.
"""


def _version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def _src_diff() -> str | None:
    try:
        diff = subprocess.run(
            ["git", "-C", str(ROOT), "diff", "HEAD", "--", "src"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return hashlib.sha256(diff).hexdigest()[:12] if diff else None


def machine() -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = (
        "import importlib.metadata as m, sys\n"
        "for p in sys.argv[1:]:\n"
        "    try: print(p, m.version(p))\n"
        "    except m.PackageNotFoundError: pass\n"
    )
    pkgs = {}
    for py, names in (
        (MAIN_PY, ["aiosio", "uvicorn", "uvloop", "httptools", "websockets", "orjson"]),
        (PEERS_PY, ["python-socketio", "python-engineio", "aiohttp", "uvicorn", "websockets"]),
    ):
        label = "main" if py == MAIN_PY else "peers"
        for line in _version([str(py), "-c", versions, *names]).splitlines():
            name, _, ver = line.partition(" ")
            pkgs[f"{name} ({label})"] = ver
    node_pkgs = {}
    for name in ("socket.io", "engine.io", "ws", *NODE_ADAPTERS):
        with contextlib.suppress(OSError, ValueError):
            node_pkgs[name] = json.loads(
                (HERE / "node_modules" / name / "package.json").read_text()
            )["version"]
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "python": _version(
            [str(MAIN_PY), "-c", "import platform; print(platform.python_version())"]
        ),
        "node": _version(["node", "--version"]),
        "python_packages": pkgs,
        "node_packages": node_pkgs,
        "commit": _version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        # uncommitted changes under src/ (a hash of the diff names the state measured)
        "src_diff": _src_diff(),
        # the aiosio the servers import: the .venv's editable install points at one checkout; a
        # worktree's own src needs PYTHONPATH=<worktree>/src
        "aiosio_from": _version(
            [str(MAIN_PY), "-c", "import aiosio, os; print(os.path.dirname(aiosio.__file__))"]
        ),
    }


# -- across 2 servers on a cluster adapter (issue 16) ------------------------------------------
#
# Two servers of one implementation, A and B, on one broker: the load generator's emitter is a
# client of A, the `clients` receivers are on B, so each broadcast crosses the adapter. Both
# servers on core 0 (their CPU is added up: the cost of a delivery across servers), the load
# generator and a redis-server of the run's own on core 1 (PostgreSQL is the machine's, on any
# core). An op is one delivery to a client of B (the copy A sends back to the emitter is not
# counted); p50/p99 from the emit on A to each delivery on B.

# The servers with a cluster script: aiosio's native server, Node socket.io 4.8 with the same
# adapter from npm (benchmarks/package.json).
CLUSTER_COMMANDS = {
    "aiosio-native": (str(MAIN_PY), str(HERE / "servers" / "aiosio_cluster.py")),
    "node": ("node", str(HERE / "servers" / "node_cluster_adapter.mjs")),
}
ADAPTER_LABELS = {
    "redis": "Redis pub/sub (aiosio RedisAdapter; Node @socket.io/redis-adapter createAdapter)",
    "redis-sharded": "Redis sharded pub/sub (RedisAdapter(sharded=True); createShardedAdapter)",
    "redis-streams": "Redis Streams (RedisStreamsAdapter; @socket.io/redis-streams-adapter)",
    "postgres": "PostgreSQL LISTEN/NOTIFY (PostgresAdapter; @socket.io/postgres-adapter)",
}
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
_cluster_runs = itertools.count(1)


@contextlib.contextmanager
def broker(adapter: str, log: Any) -> Iterator[tuple[str, int | None]]:
    """The URL the run's servers use, and the pid of the redis-server of the run's own (a fresh
    one per run on a free port, nothing else on it; None for PostgreSQL, the machine's)."""
    if adapter == "postgres":
        url = urllib.parse.urlsplit(POSTGRES_URL)
        try:
            socket.create_connection((url.hostname or "127.0.0.1", url.port or 5432), 3).close()
        except OSError as exc:
            raise RuntimeError(
                f"PostgreSQL is not reachable at {POSTGRES_URL} ({exc}): start it, or point "
                "BENCH_POSTGRES_URL at one"
            ) from None
        yield POSTGRES_URL, None
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found: bash scripts/install.sh installs it")
    port = free_port()
    proc = subprocess.Popen(
        ["taskset", "-c", LOADGEN_CORE, binary, "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), 1) as s,
            ):
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on port {port} within 10 s")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}", proc.pid
    finally:
        stop(proc)


def _cluster_window(
    loadgen: subprocess.Popen[str], pids: list[int], broker_pid: int | None, timeout: float
) -> tuple[dict[str, Any], list[Sample], list[Sample], tuple[float, float]]:
    """The load generator's result, each server's samples when the window opened and closed,
    and the broker's (CPU, time on a CPU) over the window (0 when it is not the run's own)."""
    lines = Lines(loadgen)
    assert loadgen.stdin is not None
    before: list[Sample] = []
    after: list[Sample] = []

    def broker_now() -> tuple[float, float]:
        if broker_pid is None:
            return 0.0, 0.0
        return sum(cpu_seconds(broker_pid)), sched_seconds(broker_pid)[0]

    broker0 = broker1 = (0.0, 0.0)
    while True:
        msg = json.loads(lines.next(timeout))
        ev, reply = msg["ev"], None
        if ev == "ready":
            broker0, before, reply = (
                broker_now(),
                [Sample.take(p, loadgen.pid) for p in pids],
                "start",
            )
        elif ev == "end":
            after, broker1, reply = (
                [Sample.take(p, loadgen.pid) for p in pids],
                broker_now(),
                "stop",
            )
        elif ev == "error":
            raise RuntimeError(f"load generator: {msg['error']}")
        elif ev == "result":
            if not before or not after:
                raise RuntimeError("the load generator ended without a measured window")
            return msg, before, after, (broker1[0] - broker0[0], broker1[1] - broker0[1])
        if reply:
            loadgen.stdin.write(reply + "\n")
            loadgen.stdin.flush()


def cluster_run(kind: ServerKind, params: dict[str, Any], logdir: Path) -> dict[str, Any]:
    """One run of a cluster scenario: a broker, servers A and B of ``kind``, the load."""
    adapter = params["adapter"]
    if kind.name not in CLUSTER_COMMANDS:
        raise RuntimeError(f"{kind.name} has no cluster server: {', '.join(CLUSTER_COMMANDS)}")
    key = f"aiosio-bench-{os.getpid()}-{next(_cluster_runs)}"  # nothing else on the broker heard
    timeout = 240
    server_log = logdir / f"{kind.name}.{adapter}.server.log"
    lg_log = logdir / f"{kind.name}.{adapter}.loadgen.log"
    with (
        (logdir / f"{adapter}.broker.log").open("a") as blog,
        server_log.open("a") as slog,
        lg_log.open("a") as llog,
        broker(adapter, blog) as (url, broker_pid),
    ):
        ports = [free_port(), free_port()]
        command = ["taskset", "-c", SERVER_CORE, *CLUSTER_COMMANDS[kind.name]]
        servers = [
            subprocess.Popen(
                [*command, str(port), adapter, url, key],
                stdout=subprocess.PIPE,
                stderr=slog,
                stdin=subprocess.DEVNULL,
                text=True,
                cwd=HERE,
            )
            for port in ports
        ]
        loadgen: subprocess.Popen[str] | None = None
        try:
            pids = []
            for server in servers:
                out = Lines(server)
                line = out.next(30)
                while not line.startswith("READY "):
                    line = out.next(30)
                pids.append(int(line.split()[1]))
            time.sleep(0.1)  # let the freshly started processes settle
            loadgen = subprocess.Popen(
                ["taskset", "-c", LOADGEN_CORE, "node", str(HERE / "loadgen.mjs"),
                 json.dumps({**params, "port": ports[1], "emit_port": ports[0],
                             "timeout": timeout})],
                stdout=subprocess.PIPE, stdin=subprocess.PIPE, stderr=llog, text=True, cwd=HERE,
            )  # fmt: skip
            msg, before, after, (broker_cpu, broker_run) = _cluster_window(
                loadgen, pids, broker_pid, timeout
            )
            alive = all(server.poll() is None for server in servers)
            rss = sum(rss_bytes(pid) for pid in pids)
        except (TimeoutError, EOFError, RuntimeError, ValueError) as exc:
            raise RuntimeError(f"{exc}\n{tail(server_log) or tail(lg_log)}") from exc
        finally:
            if loadgen is not None:
                stop(loadgen)
            for server in servers:
                stop(server)
    if not alive:
        raise RuntimeError(f"a server exited during the run\n{tail(server_log)}")
    ops, seconds = msg["ops"], msg["seconds"]
    wall = after[0].wall - before[0].wall
    each = [sum(a.server_cpu) - sum(b.server_cpu) for a, b in zip(after, before, strict=True)]
    system = sum(a.server_cpu[1] - b.server_cpu[1] for a, b in zip(after, before, strict=True))
    cpu = sum(each)
    loops = [sum(a.server_loop) - sum(b.server_loop) for a, b in zip(after, before, strict=True)]
    server_run = sum(
        a.server_sched[0] - b.server_sched[0] for a, b in zip(after, before, strict=True)
    )
    lg_run = after[0].loadgen_sched[0] - before[0].loadgen_sched[0]
    loop_run = after[0].loadgen_loop[0] - before[0].loadgen_loop[0]
    loop_wait = after[0].loadgen_loop[1] - before[0].loadgen_loop[1]
    busy = after[0].machine_busy - before[0].machine_busy
    result: dict[str, Any] = {
        "ops": ops,
        "seconds": seconds,
        "ops_per_s": ops / seconds if seconds else 0.0,
        "server_cpu_s": cpu,
        # both servers' CPU per delivery, and each one's part: A publishes, B delivers
        "cpu_us_per_op": cpu / ops * 1e6 if ops else None,
        "sys_us_per_op": system / ops * 1e6 if ops else None,
        "a_us_per_op": each[0] / ops * 1e6 if ops else None,
        "b_us_per_op": each[1] / ops * 1e6 if ops else None,
        # the run's own redis-server, per broadcast (None for PostgreSQL: not the run's own)
        "broker_us_per_bcast": broker_cpu / msg["broadcasts"] * 1e6 if broker_pid else None,
        "server_cpu_share": cpu / wall,
        "server_sys_share": system / cpu if cpu else None,
        # the busier of the two event loops (running, or runnable and waiting for core 0)
        "server_loop_busy": max(loops) / wall,
        "lg_cpu_share": msg["lg_cpu_share"],
        "lg_loop_busy": (loop_run + loop_wait) / wall,
        "lg_loop_wait": loop_wait / wall,
        "other_load": max(0.0, busy - server_run - lg_run - broker_run) / wall,
        "p50_ms": msg.get("p50_ms"),
        "p99_ms": msg.get("p99_ms"),
        "rss_end_mib": rss / 2**20,
    }
    for key in ("connect_errors", "undelivered"):
        if msg.get(key):
            result[key] = msg[key]
    return result


def _ratio(ref: dict[str, Any], other: dict[str, Any], key: str) -> str:
    r = versus(ref, other, key)
    return "-" if r is None else f"{r:.2f}"


def _runs_median(data: dict[str, Any], key: str) -> float | None:
    values = [r[key] for r in data.get("runs", []) if r.get(key) is not None]
    return statistics.median(values) if values else None


def cluster_lines(per_server: dict[str, dict[str, Any]]) -> list[str]:
    """Under a cluster scenario's table: each server's CPU per delivery split into A's (the
    emitter's server: publishing) and B's (the receivers': the adapter's read and the
    deliveries), the broker's per broadcast, and aiosio ÷ Node run by run."""
    lines = [""]
    for server, data in per_server.items():
        if "median" not in data:
            continue
        broker_us = _runs_median(data, "broker_us_per_bcast")
        lines.append(
            f"- {server}: CPU per delivery A {_num(_runs_median(data, 'a_us_per_op'), 2)} µs + "
            f"B {_num(_runs_median(data, 'b_us_per_op'), 2)} µs"
            + ("" if broker_us is None else f"; redis-server {_num(broker_us, 1)} µs per broadcast")
        )
    ref, node = per_server.get(REFERENCE, {}), per_server.get("node", {})
    if "median" in ref and "median" in node:
        lines.append(
            f"- aiosio ÷ Node (run by run, median): p50 {_ratio(ref, node, 'p50_ms')}, p99 "
            f"{_ratio(ref, node, 'p99_ms')}, CPU per delivery {_ratio(ref, node, 'cpu_us_per_op')}"
        )
    return lines


def cluster_summary(results: dict[str, Any]) -> str | None:
    """The cluster scenarios side by side, one row per adapter."""
    rows = []
    for name, v in results.items():
        adapter = v["params"].get("adapter")
        ref, node = v["servers"].get(REFERENCE, {}), v["servers"].get("node", {})
        if adapter is None or "median" not in ref or "median" not in node:
            continue
        a, n = ref["median"], node["median"]
        rows.append(
            f"| {name} | {_num(a.get('p50_ms'), 2)} / {_num(a.get('p99_ms'), 2)} | "
            f"{_num(n.get('p50_ms'), 2)} / {_num(n.get('p99_ms'), 2)} | "
            f"{_num(a.get('cpu_us_per_op'), 2)} | {_num(n.get('cpu_us_per_op'), 2)} | "
            f"{_ratio(ref, node, 'p50_ms')} / {_ratio(ref, node, 'p99_ms')} | "
            f"{_ratio(ref, node, 'cpu_us_per_op')} |"
        )
    if not rows:
        return None
    return "\n".join(
        [
            "### across 2 servers: latency and CPU per delivery by adapter",
            "",
            "A broadcast emitted by a client of server A, delivered to the clients of server B "
            "through the adapter; CPU is A's + B's (µs per delivery); aiosio ÷ Node is the "
            "median of the ratios of runs made side by side.",
            "",
            "| scenario | aiosio p50 / p99 ms | Node p50 / p99 ms | aiosio CPU µs/delivery | "
            "Node CPU µs/delivery | aiosio ÷ Node p50 / p99 | aiosio ÷ Node CPU |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *rows,
        ]
    )


def update_doc(doc: Path, report: str) -> None:
    begin, end = "<!-- results:begin -->", "<!-- results:end -->"
    text = doc.read_text() if doc.exists() else f"{begin}\n{end}\n"
    if begin not in text or end not in text:
        text += f"\n{begin}\n{end}\n"
    before, rest = text.split(begin, 1)
    after = rest.split(end, 1)[1]
    doc.write_text(f"{before}{begin}\n{report}\n{end}{after}")


# -- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (about 2 minutes)")
    parser.add_argument(
        "--scenario",
        action="append",
        help=f"one of {', '.join(SCENARIOS)} (repeatable, or comma-separated); default: all",
    )
    parser.add_argument(
        "--servers",
        help=f"comma-separated, of {', '.join(SERVERS)}; default: all (the floor in the echo and "
        "broadcast scenarios)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        help="runs per server and scenario (default: 3 for the reference scenarios, 1 for the "
        "larger ones; --quick: 1)",
    )
    parser.add_argument(
        "--with-100k",
        action="store_true",
        help="also run idle-100k (100 000 idle connections, or as many as the descriptor limit "
        "allows; about 2 minutes per server)",
    )
    parser.add_argument(
        "--budget-cores",
        type=float,
        default=0.25,
        help="the CPU budget of each server process (or worker) in the *-workers scenarios, in "
        "cores (default: 0.25: 2 workers then take half of 2 cores, the load generator has the "
        "rest with room)",
    )
    parser.add_argument("--update-doc", action="store_true", help="write docs/performance.md")
    parser.add_argument(
        "--budget",
        type=float,
        help="minutes after which no new run starts (default: 24, --quick 4; 0: none); "
        "what was not run is said under its table",
    )
    args = parser.parse_args()
    BUDGET_CORES[0] = args.budget_cores

    names = [n for s in args.scenario or [] for n in s.split(",") if n] or [
        n
        for n, spec in SCENARIOS.items()
        if (not args.quick or spec.quick is not None) and (not spec.opt_in or args.with_100k)
    ]
    servers = [s for s in (args.servers or "").split(",") if s]
    for n in names:
        if n not in SCENARIOS:
            parser.error(f"unknown scenario {n!r}")
    for s in servers:
        if s not in SERVERS:
            parser.error(f"unknown server {s!r}")
    if shutil.which("taskset") is None:
        print("taskset not found (util-linux)", file=sys.stderr)
        return 1
    if (os.cpu_count() or 1) < 2:
        print("needs 2 cores: the server and the load generator each get one", file=sys.stderr)
        return 1

    command = "bash benchmarks/run.sh " + " ".join(sys.argv[1:])
    logdir = HERE / "results" / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    for old in logdir.glob("*.log"):
        old.unlink()
    info = machine()
    if not info["aiosio_from"].startswith(str(ROOT / "src")):
        print(f"note: the servers import aiosio from {info['aiosio_from']}, not from this "
              f"checkout's {ROOT / 'src'}: set PYTHONPATH={ROOT / 'src'} to measure this one",
              file=sys.stderr)  # fmt: skip
    print(f"machine: {info['nproc']} x {info['cpu']}, Python {info['python']}, "
          f"Node {info['node']}; server on core {SERVER_CORE}, load generator on core "
          f"{LOADGEN_CORE}", flush=True)  # fmt: skip
    budget = args.budget if args.budget is not None else (4.0 if args.quick else 24.0)
    started = time.time()
    results: dict[str, Any] = {}
    reports = []
    for name in names:
        spec = SCENARIOS[name]
        desc, op = spec.description, spec.op
        params = spec.quick if args.quick and spec.quick is not None else spec.full
        runs = args.runs or (1 if args.quick else spec.runs)
        cluster = "adapter" in params
        parser_name = params.get("parser", "json")
        chosen = servers or [
            s
            for s, kind in SERVERS.items()
            if (s in spec.servers if spec.servers is not None else
                kind.scenarios is None or name in kind.scenarios)
            and parser_name in kind.parsers
        ]  # fmt: skip
        per_server: dict[str, dict[str, Any]] = {server: {"runs": []} for server in chosen}
        # The runs interleave the servers, so that a change in the machine's other load falls on
        # all of them alike.
        for i in range(runs):
            for server in chosen:
                data = per_server[server]
                if "error" in data:
                    continue
                if budget and time.time() - started > budget * 60:
                    data["not_run"] = data.get("not_run", 0) + 1
                    print(f"  {name} {server} run {i + 1}: not run (past the time budget)")
                    continue
                t = time.perf_counter()
                try:
                    if cluster:
                        r = cluster_run(SERVERS[server], params, logdir)
                    else:
                        r = one_run(SERVERS[server], params, logdir, spec.split, args.budget_cores)
                except RuntimeError as exc:
                    data["error"] = str(exc)
                    print(f"  {name} {server} run {i + 1}: FAILED {exc}", flush=True)
                    continue
                data["runs"].append(r)
                rate = r.get("connects_per_s") or r["ops_per_s"]
                unit = "conns" if "connects_per_s" in r else op
                print(f"  {name} {server} run {i + 1}: {rate:,.0f} {unit}/s, "
                      f"{r['cpu_us_per_op'] or 0:.1f} µs CPU/op, server "
                      f"{r['server_cpu_share']:.0%} (busy {r['server_loop_busy']:.0%}), "
                      f"loadgen {r['lg_cpu_share']:.0%} "
                      f"(busy {r['lg_loop_busy']:.0%}), other load "
                      f"{r['other_load']:.2f} ({time.perf_counter() - t:.1f} s)",
                      flush=True)  # fmt: skip
        for data in per_server.values():
            if data["runs"] and "error" not in data:
                data["median"] = median(data["runs"])
        if REFERENCE in per_server:
            rate = "connects_per_s" if params["mode"] in CONNS_MODES else "ops_per_s"
            for server, data in per_server.items():
                if "median" in data and server not in REFERENCE_LINES:
                    data["native_vs_this"] = {
                        "cpu_us_per_op": versus(per_server[REFERENCE], data, "cpu_us_per_op"),
                        "throughput": versus(per_server[REFERENCE], data, rate),
                    }
        results[name] = {
            "description": desc,
            "op": op,
            "params": params,
            "runs": runs,
            "servers": per_server,
        }
        if split := floor_split(per_server):
            results[name]["floor_split"] = split
        report = table(name, per_server, args.quick, runs)
        reports.append(report)
        print("\n" + report + "\n", flush=True)
    # The broadcast sizes side by side: is aiosio's own part flat while the floor grows?
    splits = [
        (v["params"]["clients"], v["floor_split"])
        for v in results.values()
        if v["params"]["mode"] == "broadcast" and "floor_split" in v
    ]
    if splits:
        report = (
            "### broadcast: CPU per delivery by audience\n\n"
            "aiosio's own = aiosio-native - floor (the write of the frame to each socket, uvloop "
            "and the kernel)\n\n"
        ) + "\n".join(
            f"- {clients} recipients: {split_text(split)}" for clients, split in sorted(splits)
        )
        reports.append(report)
        print("\n" + report + "\n", flush=True)
    if report := cluster_summary(results):
        reports.append(report)
        print("\n" + report + "\n", flush=True)
    elapsed = time.time() - started

    header = (
        f"Command: `{command}` ({'quick' if args.quick else 'full'} sizes; took "
        f"{elapsed / 60:.1f} min)\n\n"
        f"Machine: {info['nproc']} cores, {info['cpu']}, Linux {info['kernel']}; Python "
        f"{info['python']}, Node {info['node']}; aiosio at {info['commit']}"
        f"{f' with uncommitted changes in src/ (diff {d})' if (d := info['src_diff']) else ''}"
        "\n\n"
        "Versions: "
        + ", ".join(f"{k} {v}" for k, v in {**info["python_packages"]}.items())
        + "; "
        + ", ".join(f"{k} {v}" for k, v in info["node_packages"].items())
        + "\n"
    )
    others = [
        r["other_load"] for v in results.values() for d in v["servers"].values() for r in d["runs"]
    ]
    if others:
        header += (
            f"\nOther load on the machine during the measured windows: median "
            f"{statistics.median(others):.2f} cores, max {max(others):.2f}\n"
        )
    full_report = header + "\n" + LEGEND + "\n" + "\n\n".join(reports) + "\n"
    out = {
        "command": command,
        "quick": args.quick,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "elapsed_s": elapsed,
        "machine": info,
        "scenarios": results,
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "latest.json").write_text(json.dumps(out, indent=2) + "\n")
    (HERE / "results" / "latest.md").write_text(full_report)
    if args.update_doc:
        update_doc(ROOT / "docs" / "performance.md", full_report)
    print(f"wrote benchmarks/results/latest.json and latest.md ({elapsed / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
