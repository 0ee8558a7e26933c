"""The fault lab: real components, each reproducing one failure from the catalogue.

``lab`` starts them on 127.0.0.1 with ports the OS hands out, and stops them all at the end of the
test: aiosio servers in-process (so ``caplog`` sees their log), the official socket.io 4.8 server
and a socket.io 2.x server (Node, tests/js/lab_server*.mjs), nginx from Debian's package as a
foreground process with a generated configuration, a plain WebSocket server, an HTTP server that is
not Socket.IO, a self-signed certificate, and a port where nothing listens.

nginx and chromium come from Debian's packages (scripts/install.sh installs them); when one is
missing the tests that need it fail and say so, they are never skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import ssl
import subprocess
import textwrap
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve

import aiosio
from aiosio.doctor.checks import DoctorOptions
from aiosio.doctor.checks import diagnose
from aiosio.doctor.findings import Report
from conftest import JS_DIR
from conftest import _node
from conftest import chromium
from conftest import free_port

LAB_TIMEOUT = 15.0  # the longest any component may take to start


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not found:
        pytest.fail(
            "nginx is not installed: the lab runs Debian's nginx package; run scripts/install.sh "
            "(as root it runs apt-get install -y nginx)"
        )
    return found


def chromium_binary() -> str:
    return chromium()


@dataclass(slots=True, kw_only=True)
class ServerSpec:
    """One Socket.IO server's configuration, in the words both servers understand."""

    cors_origin: str | list[str] | None = None  # None: no CORS configured at all
    cors_credentials: bool = False
    path: str = "/socket.io/"
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    namespaces: tuple[str, ...] = ()  # besides "/"
    secure: str | None = None  # a namespace refusing auth {"token": "expired..."}
    tls: tuple[Path, Path] | None = None  # certificate and key

    def aiosio_server(self) -> aiosio.Server:
        cors = None
        if self.cors_origin is not None:
            cors = aiosio.Cors(origins=self.cors_origin, credentials=self.cors_credentials)
        sio = aiosio.Server(
            path=self.path,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            cors=cors,
        )
        for name in self.namespaces:
            sio.of(name)
        if self.secure:
            secure = sio.of(self.secure)

            def refuse_expired(socket: aiosio.Socket) -> None:
                if str(socket.handshake.auth.get("token", "")).startswith("expired"):
                    raise aiosio.ConnectionRefused("token expired", data={"code": "EXPIRED"})

            secure.use(refuse_expired)
        return sio

    def node_flags(self) -> list[str]:
        options: dict[str, Any] = {
            "path": self.path.rstrip("/"),
            "pingInterval": int(self.ping_interval * 1000),
            "pingTimeout": int(self.ping_timeout * 1000),
        }
        if self.cors_origin is not None:
            options["cors"] = {"origin": self.cors_origin, "credentials": self.cors_credentials}
        flags = ["--options", json.dumps(options)]
        if self.namespaces:
            flags += ["--namespaces", ",".join(self.namespaces)]
        if self.secure:
            flags += ["--secure", self.secure]
        if self.tls:
            flags += ["--tls", f"{self.tls[0]},{self.tls[1]}"]
        return flags


@dataclass(slots=True, kw_only=True)
class Proxy:
    """An nginx configuration in front of one or more servers, with the knobs the catalogue
    names: the WebSocket upgrade headers, the idle timeout, stickiness, the location and
    proxy_pass paths, and CORS headers of its own."""

    upgrade_headers: bool = True
    read_timeout: str = "3600s"
    sticky: bool = True  # ip_hash with several upstreams
    location: str = "/socket.io/"
    pass_path: str = ""  # appended to proxy_pass http://upstream (e.g. "/" strips the location)
    add_cors: str | None = None  # add_header Access-Control-Allow-Origin <value> always


class Lab:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self._native: list[aiosio.NativeServer] = []
        self._procs: list[_Proc] = []
        self._closers: list[Callable[[], Awaitable[None]]] = []

    # -- Socket.IO servers ------------------------------------------------------------------

    async def aiosio(self, spec: ServerSpec | None = None, sio: aiosio.Server | None = None) -> str:
        """An aiosio server, in this process; its URL."""
        spec = spec or ServerSpec()
        context = None
        if spec.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(spec.tls[0]), str(spec.tls[1]))
        server = await aiosio.serve(sio or spec.aiosio_server(), "127.0.0.1", 0, ssl=context)
        self._native.append(server)
        return f"{'https' if context else 'http'}://127.0.0.1:{server.port}"

    async def node(self, spec: ServerSpec | None = None) -> str:
        """The official socket.io 4.8 server, configured like ``spec``; its URL."""
        spec = spec or ServerSpec()
        port = await self._node_script("lab_server.mjs", spec.node_flags())
        return f"{'https' if spec.tls else 'http'}://127.0.0.1:{port}"

    async def node_v2(self) -> str:
        """A socket.io 2.5 server (Engine.IO 3); its URL."""
        port = await self._node_script("lab_server_v2.mjs", [])
        return f"http://127.0.0.1:{port}"

    async def server(self, kind: str, spec: ServerSpec | None = None) -> str:
        return await (self.aiosio(spec) if kind == "aiosio" else self.node(spec))

    async def _node_script(self, script: str, flags: list[str]) -> int:
        log = self.tmp / f"{script}.{len(self._procs)}.log"
        with log.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                _node(),
                str(JS_DIR / script),
                "--port",
                "0",
                *flags,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                cwd=str(JS_DIR),
                env={**os.environ, "NODE_NO_WARNINGS": "1"},
            )
        record = _Proc(script, proc, log)
        self._procs.append(record)
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(LAB_TIMEOUT):
                while line := await proc.stdout.readline():
                    if line.startswith(b"{") and json.loads(line).get("type") == "ready":
                        record.reader = asyncio.create_task(record.read(proc.stdout))
                        return int(json.loads(line)["port"])
        except TimeoutError:
            pass
        pytest.fail(f"{script} {' '.join(flags)} did not start:\n{log.read_text()}")

    def node_events(self) -> list[dict[str, Any]]:
        """What the Node servers printed so far (one object per line), in order."""
        return [event for record in self._procs for event in record.events]

    async def node_event(self, **match: Any) -> dict[str, Any]:
        """The first event a Node server printed with these fields (waits up to 2 s for it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.0
        while True:
            for event in self.node_events():
                if all(event.get(key) == value for key, value in match.items()):
                    return event
            if loop.time() > deadline:
                pytest.fail(f"no Node server event with {match}: {self.node_events()}")
            await asyncio.sleep(0.02)

    # -- nginx ------------------------------------------------------------------------------

    async def nginx(self, upstreams: list[str], proxy: Proxy | None = None) -> str:
        """nginx (Debian's package) in front of ``upstreams`` (URLs); its URL."""
        binary = nginx_binary()
        proxy = proxy or Proxy()
        index = sum(1 for record in self._procs if record.name == "nginx")
        prefix = self.tmp / f"nginx{index}"
        for sub in ("logs", "temp/body", "temp/proxy", "temp/fastcgi", "temp/uwsgi", "temp/scgi"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)
        (prefix / "html").mkdir(exist_ok=True)
        port = free_port()
        servers = "\n".join(f"        server {url.split('://', 1)[1]};" for url in upstreams)
        upgrade = (
            "proxy_http_version 1.1;\n"
            "            proxy_set_header Upgrade $http_upgrade;\n"
            '            proxy_set_header Connection "upgrade";'
            if proxy.upgrade_headers
            else "# no proxy_http_version 1.1, no Upgrade/Connection headers"
        )
        cors = (
            f"add_header Access-Control-Allow-Origin {proxy.add_cors} always;"
            if proxy.add_cors
            else ""
        )
        config = textwrap.dedent(
            f"""\
            {"user root;" if os.geteuid() == 0 else ""}
            worker_processes 1;
            pid {prefix}/nginx.pid;
            error_log {prefix}/logs/error.log info;
            events {{ worker_connections 256; }}
            http {{
                access_log {prefix}/logs/access.log;
                client_body_temp_path {prefix}/temp/body;
                proxy_temp_path {prefix}/temp/proxy;
                fastcgi_temp_path {prefix}/temp/fastcgi;
                uwsgi_temp_path {prefix}/temp/uwsgi;
                scgi_temp_path {prefix}/temp/scgi;
                upstream socketio {{
            {servers}
                    {"ip_hash;" if proxy.sticky and len(upstreams) > 1 else ""}
                }}
                server {{
                    listen 127.0.0.1:{port};
                    root {prefix}/html;
                    location {proxy.location} {{
                        proxy_pass http://socketio{proxy.pass_path};
                        {upgrade}
                        proxy_set_header Host $host;
                        proxy_read_timeout {proxy.read_timeout};
                        proxy_buffering off;
                        {cors}
                    }}
                }}
            }}
            """
        )
        (prefix / "nginx.conf").write_text(config)
        log = prefix / "logs" / "stderr.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                binary,
                "-p",
                str(prefix),
                "-e",
                str(prefix / "logs" / "error.log"),
                "-c",
                str(prefix / "nginx.conf"),
                "-g",
                "daemon off;",
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self._procs.append(_Proc("nginx", proc, log))
        await _wait_port(port, proc, f"nginx ({prefix / 'nginx.conf'})", log)
        return f"http://127.0.0.1:{port}"

    # -- things that are not Socket.IO ------------------------------------------------------

    async def plain_websocket(self) -> str:
        """A plain WebSocket server (echo), answering on every path."""

        async def echo(ws: ServerConnection) -> None:
            with contextlib.suppress(Exception):
                async for message in ws:
                    await ws.send(message)

        server = await ws_serve(echo, "127.0.0.1", 0)
        self._closers.append(lambda: _close_ws(server))
        port = next(iter(server.sockets)).getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def slow_link(self, upstream: str, delay: float) -> str:
        """A TCP relay in front of ``upstream`` that holds every chunk ``delay`` seconds each
        way: a long network path (or a slow proxy) between the client and the server."""
        target = urlsplit(upstream)
        tasks: set[asyncio.Task[None]] = set()

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while chunk := await reader.read(65536):
                    await asyncio.sleep(delay)
                    writer.write(chunk)
                    await writer.drain()
            writer.close()

        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection(target.hostname, target.port)
            for task in (
                asyncio.create_task(pump(reader, up_writer)),
                asyncio.create_task(pump(up_reader, writer)),
            ):
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        server = await asyncio.start_server(relay, "127.0.0.1", 0)

        async def close() -> None:
            server.close()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._closers.append(close)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def html_site(self) -> str:
        """A web server that answers every request with an HTML page (an SPA's fallback)."""
        page = b"<!DOCTYPE html><html><head><title>My app</title></head><body>app</body></html>"

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    if length:
                        await reader.readexactly(length)
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                        b"Server: lab-site\r\nContent-Length: %d\r\n\r\n%s" % (len(page), page)
                    )
                    await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        self._closers.append(lambda: _close_server(server))
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    async def silent_http(self) -> str:
        """A server that accepts connections, reads the requests and never answers (a hung
        backend)."""

        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while await reader.read(65536):
                    pass
            writer.close()

        server = await asyncio.start_server(hold, "127.0.0.1", 0)
        self._closers.append(lambda: _close_server(server))
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    def closed_port(self) -> str:
        return f"http://127.0.0.1:{free_port()}"

    def self_signed(self) -> tuple[Path, Path]:
        """A self-signed certificate for 127.0.0.1 (openssl), and its key."""
        cert, key = self.tmp / "cert.pem", self.tmp / "key.pem"
        if not cert.exists():
            subprocess.run(
                [
                    "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                ],
                check=True,
                capture_output=True,
                timeout=30,
            )  # fmt: skip
        return cert, key

    # -- cleanup ----------------------------------------------------------------------------

    async def close(self) -> None:
        for server in reversed(self._native):
            await server.close()
        for record in reversed(self._procs):
            await record.stop()
        for closer in self._closers:
            await closer()
        self._closers.clear()


@dataclass(slots=True)
class _Proc:
    """A lab subprocess, what it printed (Node scripts: JSON lines), and its log file."""

    name: str
    proc: asyncio.subprocess.Process
    log: Path
    events: list[dict[str, Any]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            if line.startswith(b"{"):
                self.events.append(json.loads(line))

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self.reader is not None:
            await self.reader


async def _close_ws(server: Any) -> None:
    server.close()
    await server.wait_closed()


async def _close_server(server: asyncio.Server) -> None:
    server.close()
    await server.wait_closed()


async def _wait_port(port: int, proc: asyncio.subprocess.Process, what: str, log: Path) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LAB_TIMEOUT
    while loop.time() < deadline:
        if proc.returncode is not None:
            break
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    pytest.fail(f"{what} did not start listening on {port}:\n{log.read_text()}")


async def doctor(url: str, **options: Any) -> Report:
    """The doctor as the lab runs it: bounded per step, and with two requests per sticky session
    (a third GET long-polls until the server's ping; see test_doctor_is_quick_on_a_healthy_server).
    """
    options.setdefault("timeout", 5.0)
    options.setdefault("sticky_requests", 2)
    async with asyncio.timeout(60):
        return await diagnose(DoctorOptions(url=url, **options))


def rendered(report: Report) -> str:
    out = io.StringIO()
    report.render(out, color=False)
    return out.getvalue()


def assert_primary(report: Report, ident: str) -> None:
    primary = report.primary
    assert primary is not None, f"expected {ident}, the doctor found nothing:\n{rendered(report)}"
    assert primary.id == ident, f"expected {ident}, got {primary.id}:\n{rendered(report)}"
    assert not report.ok


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        await lab.close()


@pytest.fixture(params=["aiosio", "node"])
def kind(request: pytest.FixtureRequest) -> str:
    """The server a configuration case runs against: aiosio, or socket.io 4.8 configured alike."""
    return str(request.param)
