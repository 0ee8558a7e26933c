"""Shared fixtures: servers on 127.0.0.1 with ports the OS picks, Node.js scripts from tests/js.

``serve`` starts an app on the native server or under uvicorn (the ``server_kind`` parameter), so
every I/O test that uses it runs against both.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import uvicorn

import aiosio

ROOT = Path(__file__).resolve().parent.parent
JS_DIR = ROOT / "tests" / "js"

ServeFn = Callable[..., Awaitable[str]]


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` holds, checking every 10 ms; TimeoutError past ``timeout``."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Uvicorn:
    def __init__(self, app: Any, **options: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            ws="websockets-sansio",
            **options,
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        for _ in range(500):
            if self.server.started:
                return
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.01)
        raise RuntimeError("uvicorn did not start")

    async def close(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self.task, 10)


@pytest.fixture(params=["native", "asgi"])
def server_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def serve(server_kind: str) -> AsyncIterator[ServeFn]:
    """``url = await serve(app, **limits)``: run ``app`` (an EngineServer, or later a Server) on
    the server kind of this test and return its base URL (``http://127.0.0.1:PORT``)."""
    running: list[Any] = []

    async def start(app: Any, **options: Any) -> str:
        if server_kind == "native":
            server = await aiosio.serve(app, "127.0.0.1", 0, **options)
            running.append(server)
            return f"http://127.0.0.1:{server.port}"
        if options:
            pytest.skip(f"server options {sorted(options)} are native-server options")
        runner = _Uvicorn(app.asgi())
        await runner.start()
        running.append(runner)
        return f"http://127.0.0.1:{runner.port}"

    yield start
    for server in reversed(running):
        await server.close()


@pytest.fixture
async def serve_native() -> AsyncIterator[ServeFn]:
    """Like ``serve`` but only the native server (for its own limits and TLS)."""
    running: list[aiosio.NativeServer] = []

    async def start(app: Any, **options: Any) -> str:
        server = await aiosio.serve(app, "127.0.0.1", 0, **options)
        running.append(server)
        scheme = "https" if options.get("ssl") else "http"
        return f"{scheme}://127.0.0.1:{server.port}"

    yield start
    for server in reversed(running):
        await server.close()


# -- Node.js -------------------------------------------------------------------------------------


def self_signed(folder: Path, *, days: int, common_name: str, alt_names: str) -> tuple[Path, Path]:
    """An ECDSA P-256 self-signed certificate and its key, written in ``folder`` by openssl."""
    openssl = shutil.which("openssl")
    assert openssl is not None, "needs the openssl command (Debian package openssl)"
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            str(days),
            "-subj",
            f"/CN={common_name}",
            "-addext",
            f"subjectAltName={alt_names}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for the name ``localhost`` only (not for 127.0.0.1)."""
    folder = tmp_path_factory.mktemp("tls")
    return self_signed(folder, days=1, common_name="localhost", alt_names="DNS:localhost")


@pytest.fixture(scope="session")
def webtransport_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A development certificate for WebTransport: ECDSA P-256, 10 days (browsers take a
    certificate by hash for at most 14), for 127.0.0.1 and localhost; with the base64 SHA-256
    of its DER form, what ``serverCertificateHashes`` and the aiosio client's
    ``certificate_hashes`` pin. Made as docs/webtransport.md says."""
    folder = tmp_path_factory.mktemp("wt-tls")
    cert, key = self_signed(
        folder, days=10, common_name="127.0.0.1", alt_names="IP:127.0.0.1,DNS:localhost"
    )
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return cert, key, base64.b64encode(hashlib.sha256(der).digest()).decode()


def debian_binary(name: str, used_for: str) -> str:
    """The path of a program from Debian's package ``name`` (scripts/install.sh installs it);
    the test fails, never skips, when it is missing."""
    found = shutil.which(name) or next(
        (path for path in (f"/usr/bin/{name}", f"/usr/sbin/{name}") if Path(path).exists()), None
    )
    if found is None:
        pytest.fail(
            f"{name} is not installed: {used_for}; run scripts/install.sh (as root it runs "
            f"apt-get install -y {name})"
        )
    return found


def chromium() -> str:
    """Debian's chromium, which the browser tests drive headless through playwright-core."""
    return debian_binary("chromium", "the browser tests drive Debian's chromium package")


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules").is_dir():
        pytest.fail("Node.js and tests/js/node_modules are needed: run scripts/install.sh")
    return node


async def run_node(script: str, *args: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Run ``tests/js/<script>`` with ``args``; it prints one JSON object per line. Returns the
    objects; fails the test with the script's stderr if it exits non-zero or runs too long."""
    proc = await asyncio.create_subprocess_exec(
        _node(),
        str(JS_DIR / script),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(JS_DIR),
        env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        stdout, stderr = await proc.communicate()
        pytest.fail(
            f"{script} {' '.join(args)} ran over {timeout}s\nstdout:\n{stdout.decode()}\n"
            f"stderr:\n{stderr.decode()}"
        )
    lines = [json.loads(line) for line in stdout.decode().splitlines() if line.startswith("{")]
    if proc.returncode != 0:
        pytest.fail(
            f"{script} {' '.join(args)} exited {proc.returncode}\nstdout:\n{stdout.decode()}\n"
            f"stderr:\n{stderr.decode()}"
        )
    return lines


@pytest.fixture
async def clients() -> AsyncIterator[Callable[..., aiosio.Client]]:
    """``make(url, **options)``: an ``aiosio.Client`` without reconnection, on its own
    connection, disconnected at the end of the test."""
    made: list[aiosio.Client] = []

    def make(url: str, **options: Any) -> aiosio.Client:
        client = aiosio.Client(url, reconnection=False, force_new=True, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.disconnect()
