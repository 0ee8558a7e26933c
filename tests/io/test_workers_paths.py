"""``aiosio serve --workers 2`` as a user runs it, with aiosio's own client: the master's bus
carrying a cluster-wide ``fetch_sockets`` and broadcast with acknowledgements, the router facing
a connection that says nothing or a session id of no worker, ``--redis`` instead of the bus, a
worker that dies (the master stops) and a master that dies (the workers say so).

Every process is ``python -m aiosio`` in a subprocess: its coverage is measured there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import AsyncIterator
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
from _eio import eventually

import aiosio
from aiosio.workers import BusLink
from aiosio.workers import WorkersAdapter
from aiosio.workers import serve_workers
from conftest import ServeFn
from conftest import free_port
from conftest import run_node

TIMEOUT = 60.0
LISTENING = re.compile(r"aiosio listening on http://127\.0\.0\.1:(\d+) with 2 workers")

APP = textwrap.dedent(
    """
    import asyncio
    import os

    import aiosio

    sio = aiosio.Server()

    @sio.on("where")
    def where(socket):
        return [socket.conn.id[0], os.getpid()]

    @sio.on("count")
    async def count(socket):
        return len(await sio.fetch_sockets())

    @sio.on("ask_all")
    async def ask_all(socket):
        return sorted(await sio.timeout(10).emit_with_ack("name"))

    @sio.on("shout")
    def shout(socket, text):
        socket.broadcast.emit("shout", text)

    @sio.on("loop")
    def loop(socket):
        return type(asyncio.get_running_loop()).__module__.partition(".")[0]
    """
)


def python_path(directory: Path) -> str:
    """The application's directory first, then what the tests run with (a checkout's src)."""
    return os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")]))


class Workers:
    """``python -m aiosio serve app:sio --workers 2 --port 0 ARGS``, its stderr read by a thread."""

    def __init__(self, directory: Path, *args: str, app: str = APP) -> None:
        (directory / "workers_paths_app.py").write_text(app)
        command = [sys.executable, "-m", "aiosio", "serve", "workers_paths_app:sio"]
        self.proc = subprocess.Popen(
            [*command, "--workers", "2", "--port", "0", *args],
            cwd=directory,
            env={**os.environ, "PYTHONPATH": python_path(directory)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        self.port = 0
        self.started = threading.Event()
        self.ended = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        with self.proc.stderr:  # closed here, at its end: the workers share the master's stderr
            for raw in self.proc.stderr:
                line = raw.decode(errors="replace").rstrip()
                self.lines.append(line)
                match = LISTENING.search(line)
                if match:
                    self.port = int(match.group(1))
                    self.started.set()
        self.started.set()
        self.ended.set()  # every process writing to the pipe has exited

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def wait_listening(self) -> None:
        assert self.started.wait(TIMEOUT), "the workers did not start"
        assert self.port, f"the workers did not start:\n{self.stderr}"

    def wait_for_line(self, text: str) -> None:
        for _ in range(int(TIMEOUT / 0.05)):
            if text in self.stderr:
                return
            self.ended.wait(0.05)
        pytest.fail(f"{text!r} never appeared:\n{self.stderr}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.ended.wait(TIMEOUT)  # the workers, stopped by the master, close the pipe


@pytest.fixture
def start_workers(tmp_path: Path) -> Iterator[list[Workers]]:
    started: list[Workers] = []
    yield started
    for workers in started:
        workers.stop()


def serve(started: list[Workers], directory: Path, *args: str, app: str = APP) -> Workers:
    workers = Workers(directory, *args, app=app)
    started.append(workers)
    workers.wait_listening()
    return workers


async def connect(url: str, name: str) -> aiosio.Client:
    """A client answering ``name`` acknowledgements with its name; its ``shout``s kept."""
    client = aiosio.Client(url, reconnection=False, transports=["polling"])
    client.on("name", lambda: name)
    await asyncio.wait_for(client.connect(), TIMEOUT)
    return client


@pytest.fixture
async def two_clients() -> AsyncIterator[list[aiosio.Client]]:
    clients: list[aiosio.Client] = []
    yield clients
    for client in clients:
        await client.disconnect()


async def one_on_each_worker(url: str, clients: list[aiosio.Client]) -> list[list[object]]:
    """Two clients; handshakes go to the workers in turn, so one each."""
    clients.append(await connect(url, "a"))
    clients.append(await connect(url, "b"))
    places = [await c.emit_with_ack("where", timeout=TIMEOUT) for c in clients]
    assert sorted(place[0] for place in places) == ["A", "B"]
    return places


async def assert_cluster_wide(clients: list[aiosio.Client]) -> None:
    first, second = clients
    assert await first.emit_with_ack("count", timeout=TIMEOUT) == 2
    assert await second.emit_with_ack("ask_all", timeout=TIMEOUT) == ["a", "b"]
    heard: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    second.on("shout", heard.set_result)
    first.emit("shout", "across")
    assert await asyncio.wait_for(heard, TIMEOUT) == "across"


async def test_the_bus_spans_both_workers(
    tmp_path: Path, start_workers: list[Workers], two_clients: list[aiosio.Client]
) -> None:
    workers = serve(start_workers, tmp_path)
    await one_on_each_worker(workers.url, two_clients)
    await assert_cluster_wide(two_clients)


async def test_broadcasts_cross_the_bus_whole_and_in_order(
    tmp_path: Path, start_workers: list[Workers], two_clients: list[aiosio.Client]
) -> None:
    # The bus writes the frames of one turn of the loop together (the other worker then sends
    # its clients several broadcasts in one write): none may be lost or reordered on the way.
    workers = serve(start_workers, tmp_path)
    await one_on_each_worker(workers.url, two_clients)
    first, second = two_clients
    heard: list[object] = []
    all_heard = asyncio.Event()

    def on_shout(text: object) -> None:
        heard.append(text)
        if len(heard) == 200:
            all_heard.set()

    second.on("shout", on_shout)
    for i in range(200):
        first.emit("shout", i)
    await asyncio.wait_for(all_heard.wait(), TIMEOUT)
    assert heard == list(range(200))


async def test_the_workers_run_on_uvloop_unless_told_not_to(
    tmp_path: Path, start_workers: list[Workers], two_clients: list[aiosio.Client]
) -> None:
    # as aiosio serve does in one process: before, the workers ran on asyncio's default loop
    # (a fifth more CPU per acknowledgement than one process on uvloop)
    workers = serve(start_workers, tmp_path)
    await one_on_each_worker(workers.url, two_clients)
    assert [await c.emit_with_ack("loop", timeout=TIMEOUT) for c in two_clients] == [
        "uvloop",
        "uvloop",
    ]
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    plain = serve(start_workers, plain_dir, "--no-uvloop")
    for name in ("c", "d"):  # one on each worker
        client = await connect(plain.url, name)
        two_clients.append(client)
        assert await client.emit_with_ack("loop", timeout=TIMEOUT) == "asyncio"


async def test_the_router_survives_silence_and_unknown_sessions(
    tmp_path: Path, start_workers: list[Workers]
) -> None:
    workers = serve(start_workers, tmp_path)
    # A connection closed before its request line: the master closes its side and goes on.
    _, silent = await asyncio.open_connection("127.0.0.1", workers.port)
    silent.close()
    await silent.wait_closed()
    # A session id whose first character names no worker goes to a worker in turn, which
    # answers as the reference does.
    reader, writer = await asyncio.open_connection("127.0.0.1", workers.port)
    target = "/socket.io/?EIO=4&transport=polling&sid=zzzzzzzz"
    writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    answer = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400")
    assert answer.endswith(b'{"code":1,"message":"Session ID unknown"}')
    # and the server still serves
    client = await connect(workers.url, "c")
    assert (await client.emit_with_ack("where", timeout=TIMEOUT))[0] in ("A", "B")
    await client.disconnect()


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """A redis-server of this test on a free port."""
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is not installed (scripts/services.sh)"
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *[binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(int(TIMEOUT / 0.05)):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            break
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), TIMEOUT)


async def test_redis_instead_of_the_bus(
    tmp_path: Path,
    start_workers: list[Workers],
    two_clients: list[aiosio.Client],
    redis_url: str,
) -> None:
    workers = serve(start_workers, tmp_path, "--redis", redis_url)
    await one_on_each_worker(workers.url, two_clients)
    await assert_cluster_wide(two_clients)


async def test_a_worker_that_dies_stops_the_master(
    tmp_path: Path, start_workers: list[Workers], two_clients: list[aiosio.Client]
) -> None:
    workers = serve(start_workers, tmp_path)
    places = await one_on_each_worker(workers.url, two_clients)
    letter, pid = places[0]
    os.kill(int(str(pid)), signal.SIGKILL)
    assert workers.proc.wait(TIMEOUT) == 0
    index = "AB".index(str(letter))
    assert f"worker {index} exited with -9; stopping" in workers.stderr
    assert workers.ended.wait(TIMEOUT)  # the master stopped the other worker too


async def test_workers_report_a_master_that_dies(
    tmp_path: Path, start_workers: list[Workers], two_clients: list[aiosio.Client]
) -> None:
    workers = serve(start_workers, tmp_path)
    places = await one_on_each_worker(workers.url, two_clients)
    workers.proc.kill()  # SIGKILL: the master cannot stop its workers
    workers.proc.wait(TIMEOUT)
    workers.wait_for_line("lost the connection to the master process")
    for _, pid in places:
        os.kill(int(str(pid)), signal.SIGTERM)  # each worker stops on its own signal
    assert workers.ended.wait(TIMEOUT)


FAILING_APP = textwrap.dedent(
    """
    import sys

    import aiosio

    sio = aiosio.Server()
    if "_worker" in sys.argv:  # loads in the master (its check), fails in each worker
        raise RuntimeError("this application fails in the workers")
    """
)


def run_master(directory: Path, module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m aiosio serve MODULE:sio --workers 2 ARGS`` to its end; its own temp dir."""
    tmp = directory / "tmp"
    tmp.mkdir()
    return subprocess.run(
        [sys.executable, "-m", "aiosio", "serve", f"{module}:sio", "--workers", "2", *args],
        cwd=directory,
        env={**os.environ, "PYTHONPATH": python_path(directory), "TMPDIR": str(tmp)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_a_worker_that_fails_to_start_stops_the_master_with_its_cause(tmp_path: Path) -> None:
    """The master stops as soon as a worker exits while it waits for them, saying which and
    with what status (the worker's traceback is above), not 'did not start' after 30 s."""
    (tmp_path / "failing_app.py").write_text(FAILING_APP)
    done = run_master(tmp_path, "failing_app", "--port", "0")
    assert done.returncode == 1
    assert "this application fails in the workers" in done.stderr  # the worker's own error
    last = done.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r"aiosio: worker \d exited with status 1 before it started serving \(its error is "
        r"above\); fix it, then start again",
        last,
    ), done.stderr
    assert "did not start" not in done.stderr
    assert list((tmp_path / "tmp").iterdir()) == []  # the master's directory is removed


def test_a_port_in_use_is_one_line_and_leaves_no_directory(tmp_path: Path) -> None:
    (tmp_path / "workers_paths_app.py").write_text(APP)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = run_master(tmp_path, "workers_paths_app", "--port", str(port))
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("aiosio: "), done.stderr
    assert "Address already in use" in last
    assert "Traceback" not in done.stderr
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_worker_count_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="workers must be between 1 and 64, got 0"):
        serve_workers("workers_paths_app:sio", "127.0.0.1", 0, 0)
    with pytest.raises(ValueError, match="got 65"):
        serve_workers("workers_paths_app:sio", "127.0.0.1", 0, 65)


def test_the_bus_has_no_pattern_subscriptions() -> None:
    with pytest.raises(TypeError, match="no pattern subscriptions"):
        BusLink("unused.sock").psubscribe("channel*", lambda channel, data: None)


def test_the_bus_link_starts_with_the_event_loop() -> None:
    link = BusLink("unused.sock")
    assert not link.ensure_started()  # no running loop: nothing to start yet
    link.ssubscribe("channel", lambda channel, data: None)
    link.publish("channel", b"kept")  # kept, and sent once connected
    link.sunsubscribe("channel")
    link.sunsubscribe("never-subscribed")
    assert (link.health.queued_publishes, link.health.published) == (1, 0)
    assert not link.health.connected


# -- what waits for the master is bounded ---------------------------------------------------------


@pytest.fixture
def bus_dir() -> Iterator[Path]:
    """A short directory for a bus socket (a Unix socket's path is at most 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="aiosio-bus-") as directory:
        yield Path(directory)


class StandInMaster:
    """The master's end of the bus on a real Unix socket: it records the frames it reads
    (``reading=False``: it accepts and never reads, a stopped or hung master)."""

    def __init__(self, *, reading: bool = True) -> None:
        self.reading = reading
        self.frames: list[list[object]] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self, path: Path) -> str:
        self.server = await asyncio.start_unix_server(self._serve, str(path))
        return str(path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        if not self.reading:
            return  # the connection stays open (the writer is kept), nothing is read
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                size = int.from_bytes(await reader.readexactly(4), "big")
                self.frames.append(msgpack.unpackb(await reader.readexactly(size)))

    def sent(self, op: str) -> list[list[object]]:
        return [frame for frame in self.frames if frame[0] == op]

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def payload(n: int) -> bytes:
    return n.to_bytes(2, "big") * 500  # 1000 bytes


async def test_a_worker_whose_master_is_gone_keeps_nothing_for_it(
    bus_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No master listens (it died before this worker connected): what was sent before the
    connection failed and everything after is dropped and counted, never kept; the loss is
    logged once, with its cause and what to do; what waits for an answer gets one at once."""
    caplog.set_level(logging.ERROR, logger="aiosio.workers")
    link = BusLink(str(bus_dir / "bus.sock"))
    try:
        for n in range(100):
            link.publish("channel", payload(n))
        assert link.health.queued_publishes == 100  # kept until the connection is up
        assert not await link.ready(5)
        health = link.health
        assert (health.queued_publishes, health.dropped_publishes, health.published) == (0, 100, 0)
        for n in range(10_000):
            link.publish("channel", payload(n))
        assert (health.queued_publishes, health.dropped_publishes) == (0, 10_100)
        assert await link.numsub("channel") == 1  # this worker alone
        session, missed, reason = await link.restore("aiosio-recovery#/", "pid", "1")
        assert (session, missed) == (None, [])
        assert reason is not None
        assert reason.startswith("could not connect to the master process's bus at ")
        assert health.last_error == reason
        logged = [r.getMessage() for r in caplog.records if r.name == "aiosio.workers"]
        assert len(logged) == 1, logged  # once: the refusals after it are counted, not logged
        assert logged[0].startswith(reason)
        assert logged[0].endswith(
            ": this worker no longer reaches the other workers (the master does not come back): "
            "its broadcasts and cluster messages are dropped, 100 so far "
            "(health.dropped_publishes), and it counts itself alone; stop the workers left "
            "behind and start aiosio serve --workers again"
        )
    finally:
        await link.close()


async def test_what_waits_for_the_connection_is_bounded_the_newest_refused(
    bus_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before the connection to the master is up, at most ``max_backlog`` bytes wait; past it
    the newest message is refused (counted, logged), so the master gets the first ones, in
    order."""
    master = StandInMaster()
    link = BusLink(await master.start(bus_dir / "bus.sock"), max_backlog=100_000)
    try:
        for n in range(200):
            link.publish("channel", payload(n))
        kept = link.health.queued_publishes
        # each frame: 1000 bytes, the channel, the operation and 16 for the framing
        assert kept == 100_000 // (1000 + len("channel") + len("pub") + 16) == 97
        assert link.health.dropped_publishes == 200 - kept
        refused = [r.getMessage() for r in caplog.records if r.name == "aiosio.workers"]
        assert refused[0].startswith(
            "could not send a message to the master process: 99522 bytes wait for the "
            "connection to the master already; 1 messages dropped so far"
        )
        assert await link.ready(5)
        await eventually(lambda: len(master.sent("pub")) == kept)
        assert [frame[2] for frame in master.sent("pub")] == [payload(n) for n in range(kept)]
        assert (link.health.queued_publishes, link.health.published) == (0, kept)
    finally:
        await link.close()
        await master.close()


async def test_a_master_that_does_not_read_holds_a_bounded_buffer(
    bus_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The master is connected but reads nothing (stopped, hung): what the connection holds for
    it grows to ``max_backlog`` bytes and no further; every message past it is refused,
    counted and logged."""
    master = StandInMaster(reading=False)
    link = BusLink(await master.start(bus_dir / "bus.sock"), max_backlog=1_000_000)
    try:
        assert await link.ready(5)
        sent = 0
        while link.health.dropped_publishes == 0 and sent < 1000:  # 64 MB at most
            link.publish("channel", b"x" * 65536)
            sent += 1
            await asyncio.sleep(0)  # the frames of this turn leave
        assert link.health.dropped_publishes == 1, f"{sent} messages of 64 KiB all kept"
        for _ in range(100):
            link.publish("channel", b"x" * 65536)
            await asyncio.sleep(0)
        health = link.health
        assert health.dropped_publishes == 101
        assert health.published + health.dropped_publishes == sent + 100
        assert health.connected  # the master is there, it does not read
        refused = [r.getMessage() for r in caplog.records if r.name == "aiosio.workers"]
        assert len(refused) == 1
        assert re.search(
            r"^could not send a message to the master process: \d+ bytes wait in the connection "
            r"to the master: the master process does not read it \(stopped or hung\); 1 messages "
            r"dropped so far \(health.dropped_publishes\): the other workers do not see them \(at "
            r"most 1000000 bytes wait for the master, MAX_BUS_BACKLOG\); if the master is stopped "
            r"or hung, stop its workers and start aiosio serve --workers again$",
            refused[0],
        ), refused[0]
    finally:
        await link.close()
        await master.close()


async def test_a_master_that_goes_away_answers_what_waits_for_it(bus_dir: Path) -> None:
    """The master closes the connection: the server count asked just before is answered at
    once (this worker alone), and what is published after is counted as dropped, not as
    published into a closed connection."""
    master = StandInMaster()
    link = BusLink(await master.start(bus_dir / "bus.sock"))
    try:
        assert await link.ready(5)
        link.publish("channel", b"before")
        count = asyncio.ensure_future(link.numsub("channel"))
        await eventually(lambda: bool(master.sent("numsub")))
        await master.close()
        assert await count == 1
        assert not link.health.connected
        assert link.health.last_error == (
            "lost the connection to the master process (0 bytes read on a total of 4 expected "
            "bytes)"
        )
        link.publish("channel", b"after")
        assert (link.health.published, link.health.dropped_publishes) == (1, 1)
        assert not await link.ready(5)
    finally:
        await link.close()
        await master.close()


async def test_with_recovery_a_worker_without_its_master_still_reaches_its_own_clients(
    bus_dir: Path, serve_native: ServeFn
) -> None:
    """With connection state recovery a worker's broadcasts go through the master and come
    back with an offset; when the master is gone the worker's own clients get them at once
    (without an offset), and the other workers' share is counted as dropped."""
    recovery = aiosio.Recovery()
    link = BusLink(str(bus_dir / "bus.sock"))  # no master
    sio = aiosio.Server(adapter=WorkersAdapter(link, recovery), connection_state_recovery=recovery)
    client = aiosio.Client(await serve_native(sio), reconnection=False, transports=["websocket"])
    got: asyncio.Future[list[object]] = asyncio.get_running_loop().create_future()
    client.on("n", lambda *args: got.set_result(list(args)))
    try:
        await client.connect()
        assert not await link.ready(5)
        sio.emit("n", 1)
        assert await asyncio.wait_for(got, TIMEOUT) == [1]
        assert link.health.dropped_publishes == 1
    finally:
        await client.disconnect()
        await link.close()


# -- the cluster over the master's bus: what every cluster adapter does ---------------------------

CLUSTER_APP = APP + textwrap.dedent(
    """
    @sio.on("rooms_of")
    async def rooms_of(socket, room):
        return sorted(s.data["name"] for s in await sio.in_(room).fetch_sockets())

    @sio.on("named")
    def named(socket, name):
        socket.data = {"name": name}

    @sio.on("join_all")
    def join_all(socket, room):
        sio.sockets_join(room)

    @sio.on("to_room")
    async def to_room(socket, room, text):
        sio.to(room).emit("shout", text)

    @sio.on("ask_servers")
    async def ask_servers(socket):
        return await sio.server_side_emit_with_ack("which", timeout=10)

    @sio.on_server_side("which")
    def which():
        return os.getpid()

    @sio.on("ask_each")
    async def ask_each(socket):
        remote = [s for s in await sio.fetch_sockets() if s.id != socket.id]
        return [await s.timeout(10).emit_with_ack("name") for s in remote]
    """
)


async def test_cluster_operations_across_workers(
    tmp_path: Path, start_workers: list[Workers], two_clients: list[aiosio.Client]
) -> None:
    """Rooms joined from another worker, fetch_sockets by room, server_side_emit with acks and
    a remote socket's acknowledgement, each across the two workers."""
    workers = serve(start_workers, tmp_path, app=CLUSTER_APP)
    places = await one_on_each_worker(workers.url, two_clients)
    first, second = two_clients
    for client, name in ((first, "a"), (second, "b")):
        client.emit("named", name)
    assert await first.emit_with_ack("rooms_of", "everyone", timeout=TIMEOUT) == []
    await first.emit_with_ack("join_all", "everyone", timeout=TIMEOUT)  # sockets_join
    assert await second.emit_with_ack("rooms_of", "everyone", timeout=TIMEOUT) == ["a", "b"]
    heard: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    second.on("shout", heard.set_result)
    await first.emit_with_ack("to_room", "everyone", "in the room", timeout=TIMEOUT)
    assert await asyncio.wait_for(heard, TIMEOUT) == "in the room"
    # server_side_emit reaches the other worker only, which answers
    other_pid = next(pid for letter, pid in places if letter != places[0][0])
    assert await first.emit_with_ack("ask_servers", timeout=TIMEOUT) == [other_pid]
    # the other worker's socket, as a RemoteSocket, acknowledges
    assert await first.emit_with_ack("ask_each", timeout=TIMEOUT) == ["b"]
    assert await second.emit_with_ack("ask_each", timeout=TIMEOUT) == ["a"]


RECOVERY_APP = textwrap.dedent(
    """
    import aiosio

    sio = aiosio.Server(
        connection_state_recovery=aiosio.Recovery(max_disconnection_duration=60)
    )

    @sio.on("connection")
    def connection(socket):
        room = socket.handshake.auth.get("room")
        if room:
            socket.join(room)

    @sio.on("where")
    def where(socket):
        return socket.conn.id[0]

    @sio.on("burst")
    def burst(socket, start, count):
        for i in range(start, start + count):
            sio.to("r").emit("n", i)
            sio.to("other").emit("x", i)
            sio.emit("all", i)
        return True
    """
)


def expected_events(numbers: range) -> list[str]:
    return [f"{event}{i}" for i in numbers for event in ("n", "all")]


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_client_recovers_on_the_other_worker(
    tmp_path: Path, start_workers: list[Workers], transport: str
) -> None:
    """socket.io-client 4.8 loses its connection to worker B; broadcasts go on; it reconnects to
    worker A and gets its id, its room and every broadcast it missed, once, in order (the
    master's store: the reference's cluster adapter has no recovery)."""
    workers = serve(start_workers, tmp_path, app=RECOVERY_APP)
    (result,) = await run_node("workers_recovery.mjs", workers.url, transport, "5", timeout=60)
    assert result["driverWhere"] != result["before"]["where"]
    assert result["after"]["where"] != result["before"]["where"]  # on the other worker
    assert result["disconnectReason"] == "forced close"  # the client closed its transport
    assert result["after"]["recovered"] is True
    assert result["after"]["id"] == result["before"]["id"]
    assert result["got"] == expected_events(range(9))  # 2 live, 5 missed, 2 live; no x


async def test_recovery_is_bounded_by_the_masters_log(
    tmp_path: Path, start_workers: list[Workers]
) -> None:
    """--recovery-log-size 4: a client that missed 5 broadcasts of each of three kinds (15) is
    not recovered (a new session: nothing replayed), and the worker says why and which option
    keeps more."""
    workers = serve(start_workers, tmp_path, "--recovery-log-size", "4", app=RECOVERY_APP)
    (result,) = await run_node("workers_recovery.mjs", workers.url, "websocket", "5", timeout=60)
    assert result["after"]["recovered"] is False
    assert result["after"]["id"] != result["before"]["id"]
    assert result["got"] == expected_events(range(2)) + expected_events(range(7, 9))
    workers.wait_for_line("are no longer kept: the master keeps the last 4 broadcasts")
    assert "--recovery-log-size" in workers.stderr


ORDER_APP = textwrap.dedent(
    """
    import aiosio

    sio = aiosio.Server(
        connection_state_recovery=aiosio.Recovery(max_disconnection_duration=60)
    )

    @sio.on("where")
    def where(socket):
        return [socket.conn.id[0], 0]

    @sio.on("mixed")
    def mixed(socket, start, groups):
        for n in range(start, start + 3 * groups, 3):
            sio.emit("o", n)
            sio.emit("o", n + 1)
            sio.volatile.emit("o", n + 2)
        return True
    """
)


async def test_with_recovery_volatile_broadcasts_keep_their_place(
    tmp_path: Path, start_workers: list[Workers]
) -> None:
    """With recovery, a kept broadcast reaches even its own worker's clients through the
    master; a volatile one sent right after it waits for it there (it used to overtake it), so
    the clients of both workers get them in the order they were sent. A volatile broadcast
    that finds the connection busy is dropped, as volatile means: only the order is checked
    for those, and every kept one must arrive."""
    workers = serve(start_workers, tmp_path, app=ORDER_APP)
    clients = [
        aiosio.Client(workers.url, reconnection=False, transports=["websocket"]) for _ in "ab"
    ]
    got: list[list[int]] = [[], []]
    try:
        for client, numbers in zip(clients, got, strict=True):
            client.on("o", numbers.append)
            await asyncio.wait_for(client.connect(), TIMEOUT)
        places = [await c.emit_with_ack("where", timeout=TIMEOUT) for c in clients]
        assert sorted(place[0] for place in places) == ["A", "B"]
        for start in range(0, 300, 30):
            assert await clients[0].emit_with_ack("mixed", start, 10, timeout=TIMEOUT)
            await asyncio.sleep(0.05)
        kept = [n for n in range(300) if n % 3 != 2]
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while not all(set(kept) <= set(numbers) for numbers in got):
            assert asyncio.get_running_loop().time() < deadline, got
            await asyncio.sleep(0.02)
        for numbers in got:
            assert numbers == sorted(set(numbers)), numbers  # in order, each once
            assert [n for n in numbers if n % 3 != 2] == kept
    finally:
        for client in clients:
            await client.disconnect()


FLOW_APP = RECOVERY_APP + textwrap.dedent(
    """
    import asyncio

    @sio.on("flow")
    async def flow(socket, count):
        for start in range(0, count, 50):
            for n in range(start, min(start + 50, count)):
                sio.to("r").emit("n", n)
            await asyncio.sleep(0.001)
        return True
    """
)


async def test_a_client_recovers_while_broadcasts_flow(
    tmp_path: Path, start_workers: list[Workers]
) -> None:
    """Worker A broadcasts bursts of numbers all along; the client loses its connection to
    worker B and recovers on A, then loses it again and recovers on B. The master's answer
    to a restore and the broadcasts logged after it come on one connection, in order: none
    may reach the worker's rooms before the restored socket is in them. Every number once,
    in order."""
    workers = serve(start_workers, tmp_path, app=FLOW_APP)
    (result,) = await run_node("workers_flow.mjs", workers.url, "20000", timeout=90)
    assert result["recovered"] == [True, True], workers.stderr[-3000:]
    assert len(set(result["places"])) == 2
    got = result["got"]
    assert got == list(range(20000)), [(i, n) for i, n in enumerate(got) if n != i][:5]


def test_the_recovery_log_size_is_checked(tmp_path: Path) -> None:
    (tmp_path / "workers_paths_app.py").write_text(APP)
    done = run_master(tmp_path, "workers_paths_app", "--port", "0", "--recovery-log-size", "0")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "aiosio: recovery_log_size must be at least 1 broadcast, got 0: it bounds the "
        "broadcasts the master keeps per namespace for clients to recover"
    )
