"""What a user gets from ``pip install aiosio``: the sdist and the pure-Python wheel
(``AIOSIO_PURE_PYTHON=1``; the wheel compiled with mypyc is test_packaging_compiled.py's) are built
once, the wheel is installed into fresh virtual environments (no extra, then each extra alone), and
each one runs what its extra promises with the installed package only (never this checkout).

- no extra: every module imports or names the extra it needs; ``aiosio serve`` (the demo, on
  asyncio's loop since uvloop is absent) answers a client's ``emit_with_ack``, and so does
  ``aiosio serve --workers 2``; ``aiosio doctor`` passes against it; ``RedisAdapter(url)`` names
  ``aiosio[redis]``;
- ``speed``: the demo runs on uvloop;
- ``asgi``: the demo under uvicorn from that environment accepts a WebSocket-only client;
- ``redis``: a ``RedisAdapter`` on 127.0.0.1:6379 delivers a broadcast published by an
  ``Emitter`` through Redis;
- ``admin``: the Admin UI's namespace accepts the password that matches its bcrypt hash and
  refuses another (without the extra, ``instrument`` with a password names ``aiosio[admin]``);
- ``metrics``: ``/metrics`` of an instrumented server, parsed by ``prometheus_client``, counts
  its connected client (without the extra, ``aiosio.metrics.instrument`` names
  ``aiosio[metrics]``);
- ``typed``: a handler annotated with a dataclass gets a validated value, and an invalid payload
  is answered with the error object (without the extra, registering that handler names
  ``aiosio[typed]``, and a handler annotated with ``str`` is registered as it is);
- ``webtransport``: a server offering WebTransport answers a client over it, the certificate
  pinned by hash (without the extra, serving it names ``aiosio[webtransport]``).

pip installs from the configured indexes (CI has the network). The environments are made in
parallel; the whole file takes well under three minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import textwrap
import uuid
import zipfile
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = ("", "speed", "asgi", "redis", "admin", "metrics", "typed", "webtransport")  # "": bare
LISTENING = re.compile(r"aiosio listening on http://127\.0\.0\.1:(\d+)")
# The first test of each kind builds or installs (one time each); generous bounds, not timings:
# on a busy machine creating a venv alone took over 120 s.
pytestmark = pytest.mark.timeout(1500)


def _env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: nothing that points Python at this checkout (and no
    choice of the build's: ``extra`` makes one)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "VIRTUAL_ENV", "COVERAGE_", "AIOSIO_PURE_PYTHON"))
    }
    env.pop("COV_CORE_SOURCE", None)
    env.update(PYTHONDONTWRITEBYTECODE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def _run(
    argv: list[str], cwd: Path, timeout: float, **extra: str
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv,
        cwd=cwd,
        env=_env(**extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited with {done.returncode}:\n{done.stdout}{done.stderr}")
    return done


class Installed:
    """A virtual environment with the wheel installed (and one extra, or none)."""

    def __init__(self, directory: Path, extra: str) -> None:
        self.directory = directory
        self.extra = extra
        self.bin = directory / "bin"
        self.python = self.bin / "python"

    def run_python(self, code: str, timeout: float = 60) -> str:
        """Run ``code`` with this environment's Python from an empty directory; its stdout."""
        return _run([str(self.python), "-c", textwrap.dedent(code)], self.directory, timeout).stdout


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The pure-Python wheel, the one every platform can install (the compiled one, mypyc's:
    # test_packaging_compiled.py).
    out = tmp_path_factory.mktemp("dist")
    argv = [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)]
    built = _run(argv, ROOT, 600, AIOSIO_PURE_PYTHON="1")
    log = built.stdout + built.stderr
    assert "aiosio: building pure Python (AIOSIO_PURE_PYTHON is set)" in log, log
    return out


@pytest.fixture(scope="session")
def wheel(dist: Path) -> Path:
    wheels = list(dist.glob("aiosio-*-py3-none-any.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="session")
def installs(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Installed]:
    base = tmp_path_factory.mktemp("venvs")

    def install(extra: str) -> Installed:
        env = Installed(base / (extra or "bare"), extra)
        _run([sys.executable, "-m", "venv", str(env.directory)], base, 600)
        requirement = f"{wheel}[{extra}]" if extra else str(wheel)
        _run([str(env.python), "-m", "pip", "install", "-q", requirement], base, 900)
        return env

    with ThreadPoolExecutor(len(EXTRAS)) as pool:
        return dict(zip(EXTRAS, pool.map(install, EXTRAS), strict=True))


class Process:
    """A command whose stderr is collected line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.changed = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip())
            self.changed.set()
        self.changed.set()

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    async def wait_for(self, pattern: str | re.Pattern[str], timeout: float = 60) -> re.Match[str]:
        regex = re.compile(pattern)

        async def scan() -> re.Match[str]:
            while True:
                for line in self.lines:
                    match = regex.search(line)
                    if match:
                        return match
                if self.reader.done():
                    pytest.fail(f"the process ended without {regex.pattern!r}:\n{self.stderr}")
                self.changed.clear()
                await self.changed.wait()

        try:
            return await asyncio.wait_for(scan(), timeout)
        except TimeoutError:
            pytest.fail(f"no {regex.pattern!r} within {timeout} s:\n{self.stderr}")

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = await asyncio.wait_for(self.proc.wait(), 30)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
        await self.reader
        return code


@contextlib.asynccontextmanager
async def started(argv: list[str], cwd: Path) -> AsyncIterator[Process]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    process = Process(proc)
    try:
        yield process
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await process.reader


async def _round_trip(
    env: Installed, url: str, transports: str = '["polling", "websocket"]'
) -> str:
    """A client of the installed package: connect, emit_with_ack("echo"); prints what it got."""
    code = f"""
        import asyncio

        import aiosio

        assert "site-packages" in aiosio.__file__, aiosio.__file__  # the install, not a checkout


        async def main():
            client = aiosio.Client({url!r}, transports={transports}, reconnection=False)
            welcome = asyncio.get_running_loop().create_future()
            client.on("welcome", lambda data: welcome.done() or welcome.set_result(data))
            await client.connect()
            reply = await client.emit_with_ack("echo", "hi", timeout=10)
            data = await asyncio.wait_for(welcome, 10)
            print(reply, data["transport"])
            await client.disconnect()


        asyncio.run(main())
    """
    return await asyncio.to_thread(env.run_python, code)


# -- the distributions ---------------------------------------------------------------------------


def test_wheel_and_sdist_contents(dist: Path, wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = archive.read(metadata).decode()
    assert "aiosio/py.typed" in names
    assert "aiosio/cli.py" in names
    assert [n for n in names if not n.startswith(("aiosio/", "aiosio-"))] == []  # no tests/...
    assert not [n for n in names if "/tests/" in n or "benchmarks" in n]
    assert "License-Expression: MIT" in meta
    requires = sorted(line for line in meta.splitlines() if line.startswith("Requires-Dist:"))
    core = [line.split()[1] for line in requires if "extra ==" not in line]
    assert sorted(core) == ["httptools>=0.6", "msgpack>=1.0", "orjson>=3.9"]
    for extra in ("speed", "asgi", "redis"):
        assert f"Provides-Extra: {extra}" in meta
    sdists = list(dist.glob("aiosio-*.tar.gz"))
    assert len(sdists) == 1, sdists
    with tarfile.open(sdists[0]) as archive:
        members = {name.partition("/")[2] for name in archive.getnames()}
    assert {"pyproject.toml", "README.md", "src/aiosio/py.typed", "src/aiosio/cli.py"} <= members


# -- no extra ------------------------------------------------------------------------------------


def test_bare_install_imports_every_module_or_names_the_extra(
    installs: dict[str, Installed],
) -> None:
    out = installs[""].run_python(
        """
        import importlib
        import pkgutil
        import sys

        import aiosio

        for optional in ("redis", "uvloop", "websockets", "uvicorn", "starlette", "pydantic"):
            assert importlib.util.find_spec(optional) is None, optional + " is installed"
        names = sorted(m.name for m in pkgutil.walk_packages(aiosio.__path__, "aiosio."))
        for name in names:
            try:
                importlib.import_module(name)
            except ImportError as exc:
                assert 'pip install "aiosio[' in str(exc), (name, exc)
                print("extra", name, exc)
            else:
                print("imported", name)
        try:
            from aiosio.adapters.redis import RedisAdapter

            RedisAdapter("redis://127.0.0.1:6379")
        except ImportError as exc:
            print("redis:", exc)
        """
    )
    imported = [line for line in out.splitlines() if line.startswith("imported ")]
    assert len(imported) > 40, out  # every module of the package, none skipped
    assert not [line for line in out.splitlines() if line.startswith("extra ")], out
    assert "redis: RedisAdapter(url) needs the 'redis' package, which is not installed" in out
    assert out.rstrip().endswith('pip install "aiosio[redis]"')


async def test_bare_install_serves_the_demo_and_a_client_round_trip(
    installs: dict[str, Installed],
) -> None:
    env = installs[""]
    argv = [str(env.bin / "aiosio"), "serve", "--port", "0"]
    async with started(argv, env.directory) as server:
        port = int((await server.wait_for(LISTENING)).group(1))
        url = f"http://127.0.0.1:{port}"
        reply = await _round_trip(env, url)
        assert reply.split()[0] == "hi", reply
        doctor = await asyncio.to_thread(
            _run, [str(env.bin / "aiosio"), "doctor", url, "--timeout", "10"], env.directory, 90
        )
        assert doctor.returncode == 0
        assert await server.stop() == 0
    assert "uvloop is not installed: running on asyncio's default event loop" in server.stderr
    assert "Traceback" not in server.stderr


async def test_bare_install_serves_the_demo_with_workers(installs: dict[str, Installed]) -> None:
    # the workers share one port and talk through the master's bus: no Redis, no redis package
    env = installs[""]
    argv = [str(env.bin / "aiosio"), "serve", "--port", "0", "--workers", "2"]
    async with started(argv, env.directory) as server:
        port = int((await server.wait_for(LISTENING)).group(1))
        reply = await _round_trip(env, f"http://127.0.0.1:{port}")
        # opened on polling: each request after the handshake had to reach the same worker
        assert reply.split() == ["hi", "polling"], reply
        assert await server.stop() == 0
    assert "Traceback" not in server.stderr


# -- each extra alone ----------------------------------------------------------------------------


async def test_speed_extra_runs_the_demo_on_uvloop(installs: dict[str, Installed]) -> None:
    env = installs["speed"]
    argv = [str(env.bin / "aiosio"), "serve", "--port", "0"]
    async with started(argv, env.directory) as server:
        port = int((await server.wait_for(LISTENING)).group(1))
        reply = await _round_trip(env, f"http://127.0.0.1:{port}")
        assert reply.split()[0] == "hi", reply
        assert await server.stop() == 0
    assert re.search(r"INFO aiosio\.cli: running on uvloop \d", server.stderr), server.stderr


async def test_asgi_extra_serves_websocket_under_uvicorn(installs: dict[str, Installed]) -> None:
    env = installs["asgi"]
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [str(env.bin / "uvicorn"), "aiosio.demo:app", "--port", str(port)]
    async with started(argv, env.directory) as server:
        await server.wait_for(r"Uvicorn running on")
        reply = await _round_trip(env, f"http://127.0.0.1:{port}", transports='["websocket"]')
        assert reply.strip() == "hi websocket", reply
        await server.stop()
    assert "Traceback" not in server.stderr


async def test_redis_extra_broadcasts_through_redis(installs: dict[str, Installed]) -> None:
    env = installs["redis"]
    key = f"packaging-{uuid.uuid4().hex}"
    code = f"""
        import asyncio

        import aiosio
        from aiosio.adapters.redis import RedisAdapter


        async def main():
            sio = aiosio.Server(adapter=RedisAdapter("redis://127.0.0.1:6379", key={key!r}))
            server = await aiosio.serve(sio, "127.0.0.1", 0)
            client = aiosio.Client(f"http://127.0.0.1:{{server.port}}", reconnection=False)
            got = asyncio.get_running_loop().create_future()
            client.on("news", lambda data: got.done() or got.set_result(data))
            await client.connect()
            # published to Redis by another process's kind of client: it reaches the socket
            # only through the adapter's subscription
            emitter = aiosio.Emitter("redis://127.0.0.1:6379", key={key!r})
            for _ in range(40):  # until the adapter's subscription is live
                await emitter.emit("news", "through redis")
                done, _ = await asyncio.wait([got], timeout=0.25)
                if done:
                    break
            print(await asyncio.wait_for(got, 5))
            await client.disconnect()
            await server.close()


        asyncio.run(main())
    """
    out = await asyncio.to_thread(env.run_python, code)
    assert out.strip() == "through redis"


ADMIN_LOGIN = """
    import asyncio

    import aiosio
    from aiosio.admin import BasicAuth, instrument

    # bcrypt.hashpw(b"secret", bcrypt.gensalt(4)): made once, so this runs without bcrypt too
    HASH = "$2b$04$WNK3z4dNG7pVcViJHRUZKOoUt5MoPaWRLr.mEXgcF9QvyPVWEyhs2"


    async def login(port, password):
        client = aiosio.Client(
            f"http://127.0.0.1:{port}/admin",
            auth={"username": "admin", "password": password},
            reconnection=False,
        )
        try:
            await client.connect()
            return "connected"
        except aiosio.ConnectError as exc:
            return exc.message
        finally:
            await client.disconnect()


    async def main():
        sio = aiosio.Server()
        try:
            instrument(sio, auth=BasicAuth("admin", HASH))
        except ImportError as exc:
            print("instrument:", exc)
            return
        server = await aiosio.serve(sio, "127.0.0.1", 0)
        try:
            print(await login(server.port, "secret"), "|", await login(server.port, "wrong"))
        finally:
            await server.close()


    asyncio.run(main())
"""


def test_admin_extra_checks_the_admin_password(installs: dict[str, Installed]) -> None:
    out = installs["admin"].run_python(ADMIN_LOGIN)
    assert out.strip() == "connected | invalid credentials", out


def test_bare_install_names_the_admin_extra(installs: dict[str, Installed]) -> None:
    out = installs[""].run_python(ADMIN_LOGIN)
    assert out.startswith("instrument: "), out
    assert out.rstrip().endswith('pip install "aiosio[admin]"'), out


METRICS_SCRAPE = """
    import asyncio
    import urllib.request

    import aiosio
    from aiosio.metrics import instrument


    async def main():
        sio = aiosio.Server()
        try:
            instrument(sio, path="/metrics")
        except ImportError as exc:
            print("instrument:", exc)
            return
        from prometheus_client.parser import text_string_to_metric_families

        server = await aiosio.serve(sio, "127.0.0.1", 0)
        client = aiosio.Client(f"http://127.0.0.1:{server.port}", reconnection=False)
        try:
            await client.connect()
            url = f"http://127.0.0.1:{server.port}/metrics"
            text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=30).read())
            for family in text_string_to_metric_families(text.decode()):
                for sample in family.samples:
                    if sample.name == "aiosio_sockets_connected":
                        print(sample.labels["namespace"], sample.value)
        finally:
            await client.disconnect()
            await server.close()


    asyncio.run(main())
"""


def test_metrics_extra_serves_prometheus_metrics(installs: dict[str, Installed]) -> None:
    out = installs["metrics"].run_python(METRICS_SCRAPE)
    assert out.strip() == "/ 1.0", out


def test_bare_install_names_the_metrics_extra(installs: dict[str, Installed]) -> None:
    out = installs[""].run_python(METRICS_SCRAPE)
    assert out.startswith("instrument: "), out
    assert out.rstrip().endswith('pip install "aiosio[metrics]"'), out


TYPED_ROUND_TRIP = """
    import asyncio
    from dataclasses import dataclass

    import aiosio


    @dataclass
    class Point:
        x: int
        y: int


    def swap(socket: aiosio.Socket, p: Point) -> list[int]:
        return [p.y, p.x]


    async def main():
        sio = aiosio.Server()
        sio.on("plain", lambda socket, text: text)
        try:
            sio.on("swap", swap)
        except ImportError as exc:
            print("on:", exc)
            return
        server = await aiosio.serve(sio, "127.0.0.1", 0)
        client = aiosio.Client(f"http://127.0.0.1:{server.port}", reconnection=False)
        try:
            await client.connect()
            print(await client.emit_with_ack("swap", {"x": 1, "y": "2"}, timeout=30))
            print((await client.emit_with_ack("swap", {"x": 1}, timeout=30))["error"])
        finally:
            await client.disconnect()
            await server.close()


    asyncio.run(main())
"""


def test_typed_extra_validates_a_dataclass_payload(installs: dict[str, Installed]) -> None:
    out = installs["typed"].run_python(TYPED_ROUND_TRIP)
    assert out.splitlines() == ["[2, 1]", "invalid payload"], out


def test_bare_install_names_the_typed_extra(installs: dict[str, Installed]) -> None:
    out = installs[""].run_python(TYPED_ROUND_TRIP)
    assert out.startswith("on: "), out
    assert out.rstrip().endswith('pip install "aiosio[typed]"'), out


WEBTRANSPORT_ROUND_TRIP = """
    import asyncio
    import base64
    import hashlib
    import ssl
    import subprocess
    import tempfile
    from pathlib import Path

    import aiosio


    async def main():
        folder = Path(tempfile.mkdtemp())
        cert, key = folder / "cert.pem", folder / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "10", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )
        der = ssl.PEM_cert_to_DER_cert(cert.read_text())
        digest = base64.b64encode(hashlib.sha256(der).digest()).decode()
        sio = aiosio.Server(transports=("polling", "websocket", "webtransport"))
        sio.on("echo", lambda socket, text: [socket.conn.transport, text])
        config = aiosio.WebTransport(certfile=cert, keyfile=key)
        try:
            server = await aiosio.serve(sio, "127.0.0.1", 0, webtransport=config)
        except ImportError as exc:
            print("serve:", exc)
            return
        client = aiosio.Client(
            f"http://127.0.0.1:{server.port}",
            transports=["webtransport"],
            server_certificate_hashes=[digest],
            reconnection=False,
        )
        try:
            await client.connect()
            print(await client.emit_with_ack("echo", "hi", timeout=30))
        finally:
            await client.disconnect()
            await server.close()


    asyncio.run(main())
"""


def test_webtransport_extra_serves_and_connects(installs: dict[str, Installed]) -> None:
    out = installs["webtransport"].run_python(WEBTRANSPORT_ROUND_TRIP)
    assert out.splitlines() == ["['webtransport', 'hi']"], out


def test_bare_install_names_the_webtransport_extra(installs: dict[str, Installed]) -> None:
    out = installs[""].run_python(WEBTRANSPORT_ROUND_TRIP)
    assert out.startswith("serve: "), out
    assert out.rstrip().endswith('pip install "aiosio[webtransport]"'), out
