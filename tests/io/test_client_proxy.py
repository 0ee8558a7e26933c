"""The client behind an HTTP proxy (issue 17, item 4): Debian's tinyproxy, started by each test
on its own port with the configuration the case needs (installed by scripts/install.sh). The
proxy's own log proves the traffic went through it; refusals come back as ``ConnectError`` at
``Stage.PROXY`` with the proxy's status and what to do."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import aiosio
from aiosio.cli import main
from aiosio.client.errors import Stage
from aiosio.client.proxy import Proxy
from aiosio.client.proxy import bypassed
from aiosio.client.proxy import proxy_for
from aiosio.doctor.checks import DoctorOptions
from aiosio.doctor.checks import diagnose
from conftest import free_port

pytestmark = pytest.mark.interop


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without the machine's proxy variables and sets what it needs."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


@dataclass
class TinyProxy:
    url: str
    log: Path

    def tunnels(self) -> list[str]:
        """The targets of the CONNECT requests the proxy received."""
        lines = self.log.read_text(errors="replace").splitlines()
        return [
            line.split("CONNECT ", 2)[-1].split(" ")[0]
            for line in lines
            if "Request (file descriptor" in line and ": CONNECT " in line
        ]


@contextlib.asynccontextmanager
async def tinyproxy(
    tmp_path: Path, *, auth: tuple[str, str] | None = None, connect_ports: tuple[int, ...] = ()
) -> AsyncIterator[TinyProxy]:
    binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
    if not Path(binary).exists():
        pytest.fail(
            "tinyproxy is not installed: run scripts/install.sh (apt-get install tinyproxy)"
        )
    port = free_port()
    log = tmp_path / "tinyproxy.log"
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Timeout 30",
        "LogLevel Connect",
        f'LogFile "{log}"',
        "MaxClients 100",
        "Allow 127.0.0.1",
    ]
    if auth is not None:
        lines.append(f"BasicAuth {auth[0]} {auth[1]}")
    lines += [f"ConnectPort {p}" for p in connect_ports]  # none: every port allowed
    config = tmp_path / "tinyproxy.conf"
    config.write_text("\n".join(lines) + "\n")
    output = tmp_path / "tinyproxy.out"
    with output.open("wb") as out:
        proc = subprocess.Popen([binary, "-d", "-c", str(config)], stdout=out, stderr=out)
    try:
        async with asyncio.timeout(10):
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"tinyproxy exited {proc.returncode}: {output.read_text()}")
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    break
                await asyncio.sleep(0.05)
        yield TinyProxy(f"http://127.0.0.1:{port}", log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.asynccontextmanager
async def echo_server(ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    sio = aiosio.Server()

    @sio.on("echo")
    def echo(_socket: Any, value: Any) -> Any:
        return value

    server = await aiosio.serve(sio, "127.0.0.1", 0, ssl=ssl_context)
    try:
        yield server.port
    finally:
        await server.close()


async def round_trip(client: aiosio.Client) -> Any:
    await client.connect()
    try:
        return await client.emit_with_ack("echo", {"through": "proxy"}, timeout=5)
    finally:
        await client.disconnect()


@pytest.mark.parametrize("transports", [("polling", "websocket"), ("websocket",), ("polling",)])
async def test_through_an_explicit_proxy_with_credentials(
    tmp_path: Path, transports: tuple[str, ...]
) -> None:
    async with (
        tinyproxy(tmp_path, auth=("user", "s3cret")) as proxy,
        echo_server() as port,
    ):
        client = aiosio.Client(
            f"http://127.0.0.1:{port}",
            transports=transports,
            proxy=proxy.url.replace("http://", "http://user:s3cre%74@"),
            reconnection=False,
        )
        assert await round_trip(client) == {"through": "proxy"}
        tunnels = proxy.tunnels()
    assert tunnels
    assert set(tunnels) == {f"127.0.0.1:{port}"}


async def test_https_server_through_the_tunnel_end_to_end(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(*certificate)
    client_context = ssl.create_default_context(cafile=str(certificate[0]))
    async with tinyproxy(tmp_path) as proxy, echo_server(server_context) as port:
        client = aiosio.Client(
            f"https://localhost:{port}", ssl=client_context, proxy=proxy.url, reconnection=False
        )
        assert await round_trip(client) == {"through": "proxy"}
        assert set(proxy.tunnels()) == {f"localhost:{port}"}


async def test_the_environment_and_no_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with tinyproxy(tmp_path) as proxy, echo_server() as port:
        url = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        assert await round_trip(aiosio.Client(url, reconnection=False, force_new=True)) == {
            "through": "proxy"
        }
        through_env = len(proxy.tunnels())
        assert through_env > 0

        # proxy=False: the environment is ignored.
        client = aiosio.Client(url, proxy=False, reconnection=False, force_new=True)
        await round_trip(client)
        assert len(proxy.tunnels()) == through_env

        # NO_PROXY names the host: direct.
        monkeypatch.setenv("NO_PROXY", "localhost, 127.0.0.0/8")
        await round_trip(aiosio.Client(url, reconnection=False, force_new=True))
        assert len(proxy.tunnels()) == through_env

        # HTTPS_PROXY is for https:// servers only.
        monkeypatch.delenv("NO_PROXY")
        monkeypatch.delenv("HTTP_PROXY")
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        await round_trip(aiosio.Client(url, reconnection=False, force_new=True))
        assert len(proxy.tunnels()) == through_env


async def connect_error(client: aiosio.Client) -> aiosio.ConnectError:
    errors: list[aiosio.ConnectError] = []
    client.on("connect_error", errors.append)
    with contextlib.suppress(aiosio.ConnectError):
        await client.connect()
    async with asyncio.timeout(10):
        while not errors:
            await asyncio.sleep(0.02)
    await client.disconnect()
    return errors[0]


@pytest.mark.parametrize(
    ("credentials", "hint"),
    [("", "the proxy wants credentials"), ("user:wrong@", "refused the credentials")],
)
async def test_a_proxy_that_wants_credentials(tmp_path: Path, credentials: str, hint: str) -> None:
    async with tinyproxy(tmp_path, auth=("user", "secret")) as proxy, echo_server() as port:
        client = aiosio.Client(
            f"http://127.0.0.1:{port}",
            proxy=proxy.url.replace("http://", f"http://{credentials}"),
            reconnection=False,
        )
        error = await connect_error(client)
    assert error.stage is Stage.PROXY
    assert error.status in (401, 407)  # tinyproxy: 407 without credentials, 401 wrong ones
    assert "refused CONNECT" in error.message
    assert error.hint is not None
    assert hint in error.hint
    assert "wrong" not in str(error)  # the password is never shown


async def test_a_proxy_that_allows_another_port_only(tmp_path: Path) -> None:
    async with tinyproxy(tmp_path, connect_ports=(443,)) as proxy, echo_server() as port:
        client = aiosio.Client(
            f"http://127.0.0.1:{port}",
            proxy=proxy.url,
            transports=["websocket"],
            reconnection=False,
        )
        error = await connect_error(client)
    assert error.stage is Stage.PROXY
    assert error.status == 403
    assert error.hint is not None
    assert "443" in error.hint


async def test_no_proxy_listening() -> None:
    proxy = f"http://127.0.0.1:{free_port()}"
    async with echo_server() as port:
        client = aiosio.Client(f"http://127.0.0.1:{port}", proxy=proxy, reconnection=False)
        error = await connect_error(client)
    assert error.stage is Stage.PROXY
    assert f"cannot connect to the proxy {proxy}" in error.message
    assert error.hint is not None
    assert "NO_PROXY" in error.hint


def test_proxy_urls() -> None:
    plain = Proxy.from_url("http://proxy.example:3128")
    assert (plain.host, plain.port, plain.authorization) == ("proxy.example", 3128, None)
    assert Proxy.from_url("proxy.example").port == 80
    with_auth = Proxy.from_url("http://a%40b:c%3Ad@proxy:8080")
    assert with_auth.authorization == "Basic YUBiOmM6ZA=="  # a@b:c:d
    assert with_auth.shown == "http://proxy:8080"
    with pytest.raises(ValueError, match="only http:// proxies"):
        Proxy.from_url("socks5://proxy:1080")
    with pytest.raises(ValueError, match="only http:// proxies"):
        aiosio.Client("http://h", proxy="https://proxy:443")
    with pytest.raises(TypeError, match="proxy must be a proxy URL"):
        aiosio.Client("http://h", proxy=3128)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "no_proxy", "expected"),
    [
        ("api.example.com", "example.com", True),
        ("api.example.com", ".example.com", True),
        ("example.com", ".example.com", True),
        ("badexample.com", "example.com", False),
        ("10.1.2.3", "10.0.0.0/8", True),
        ("11.1.2.3", "10.0.0.0/8", False),
        ("::1", "::1", True),
        ("::1", "[::1]:8080", True),
        ("host", "host:3000", True),
        ("anything", "*", True),
        ("host", "", False),
        ("host", " , other ,", False),
    ],
)
def test_no_proxy_rules(host: str, no_proxy: str, expected: bool) -> None:
    assert bypassed(host, no_proxy) is expected


def test_proxy_for_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env: Callable[[str, str], None] = monkeypatch.setenv
    assert proxy_for(False, "h", None) is None
    set_env("http_proxy", "http://p:1")
    set_env("HTTPS_PROXY", "http://q:2")
    assert proxy_for(False, "h", None) == Proxy("p", 1)
    assert proxy_for(True, "h", None) == Proxy("q", 2)
    assert proxy_for(True, "h", False) is None
    assert proxy_for(True, "h", "http://r:3") == Proxy("r", 3)
    set_env("no_proxy", "h")
    assert proxy_for(True, "h", None) is None
    assert proxy_for(True, "h", "http://r:3") == Proxy("r", 3)  # explicit wins over NO_PROXY


# -- proxies that misbehave: a small asyncio server of the test plays the proxy ----------------


@contextlib.asynccontextmanager
async def misbehaving_proxy(answer: bytes | None) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A "proxy" that reads the CONNECT request, writes ``answer`` (nothing when ``None``) and
    closes the connection: no tunnel ever. Yields its URL and the requests it read."""
    requests: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            requests.append(await reader.readuntil(b"\r\n\r\n"))
            if answer is not None:
                writer.write(answer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", requests
    finally:
        server.close()
        await server.wait_closed()


_PORTAL = (
    b"<!DOCTYPE html><html><head><title>Guest Wi-Fi \xe2\x80\x94 sign in</title></head>"
    b"<body><form>Accept the terms</form></body></html>"
)


def _page_answer(status: str) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n"
    head += f"Content-Length: {len(_PORTAL)}\r\n\r\n"
    return head.encode() + _PORTAL


@pytest.mark.parametrize("transports", [("polling",), ("websocket",)])
@pytest.mark.parametrize("answer", [None, b"HTTP/1.1 200 Connec"], ids=["nothing", "half"])
async def test_a_proxy_that_closes_mid_connect(
    transports: tuple[str, ...], answer: bytes | None
) -> None:
    async with misbehaving_proxy(answer) as (proxy, requests), echo_server() as port:
        client = aiosio.Client(
            f"http://127.0.0.1:{port}", proxy=proxy, transports=transports, reconnection=False
        )
        error = await connect_error(client)
    assert requests
    assert requests[0].startswith(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n".encode())
    assert error.stage is Stage.PROXY
    assert error.message == (
        f"the proxy {proxy} closed the connection instead of answering CONNECT 127.0.0.1:{port}"
    )
    assert error.hint == "is it an HTTP proxy? (the proxy URL's host and port)"


@pytest.mark.parametrize("transports", [("polling",), ("websocket",)])
async def test_a_proxy_that_closes_the_tunnel_it_opened(transports: tuple[str, ...]) -> None:
    answer = b"HTTP/1.1 200 Connection established\r\n\r\n"
    async with misbehaving_proxy(answer) as (proxy, _), echo_server() as port:
        client = aiosio.Client(
            f"http://127.0.0.1:{port}", proxy=proxy, transports=transports, reconnection=False
        )
        error = await connect_error(client)
    assert error.stage is (Stage.HTTP if transports == ("polling",) else Stage.WEBSOCKET)
    assert "closed" in error.message
    assert error.hint == (
        f"the tunnel through the proxy {proxy} closed: the proxy accepted CONNECT but could not "
        "reach the server, or the server closed the connection (see the proxy's log)"
    )


@pytest.mark.parametrize("transports", [("polling",), ("websocket",)])
async def test_a_proxy_that_answers_200_with_a_page_instead_of_a_tunnel(
    transports: tuple[str, ...],
) -> None:
    async with (
        misbehaving_proxy(_page_answer("200 OK")) as (proxy, requests),
        echo_server() as port,
    ):
        client = aiosio.Client(
            f"http://127.0.0.1:{port}", proxy=proxy, transports=transports, reconnection=False
        )
        error = await connect_error(client)
    assert len(requests) == 1  # nothing was sent into the "tunnel"
    assert error.stage is Stage.PROXY
    assert error.status == 200
    assert error.body == _PORTAL
    assert error.message == (
        f"the proxy {proxy} answered CONNECT 127.0.0.1:{port} with HTTP/1.1 200 OK and an HTML "
        'page "Guest Wi-Fi \u2014 sign in" instead of opening a tunnel'
    )
    assert error.hint is not None
    assert "does not tunnel" in error.hint
    assert "captive portal" in error.hint


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        ("403 Forbidden", "policy forbids a tunnel"),
        ("407 Proxy Authentication Required", "the proxy wants credentials"),
        ("502 Bad Gateway", "could not reach"),
    ],
)
async def test_a_proxy_that_refuses_with_an_html_page(status: str, hint: str) -> None:
    async with misbehaving_proxy(_page_answer(status)) as (proxy, _), echo_server() as port:
        client = aiosio.Client(f"http://127.0.0.1:{port}", proxy=proxy, reconnection=False)
        error = await connect_error(client)
    assert error.stage is Stage.PROXY
    assert error.status == int(status.split()[0])
    assert error.body == _PORTAL
    assert error.message == (
        f"the proxy {proxy} refused CONNECT 127.0.0.1:{port}: HTTP/1.1 {status} and an HTML "
        'page "Guest Wi-Fi \u2014 sign in"'
    )
    assert error.hint is not None
    assert hint in error.hint


async def test_a_proxy_that_answers_with_something_else_than_http() -> None:
    answer = b"SSH-2.0-OpenSSH_9.2\r\n\r\n"
    async with misbehaving_proxy(answer) as (proxy, _), echo_server() as port:
        client = aiosio.Client(f"http://127.0.0.1:{port}", proxy=proxy, reconnection=False)
        error = await connect_error(client)
    assert error.stage is Stage.PROXY
    assert error.status is None
    assert (
        error.message == f"the proxy {proxy} refused CONNECT 127.0.0.1:{port}: SSH-2.0-OpenSSH_9.2"
    )
    assert error.hint == "the answer is not HTTP: is this an HTTP proxy?"


# -- aiosio doctor through the proxy ----------------------------------------------------------


async def test_the_doctor_through_the_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with tinyproxy(tmp_path) as proxy, echo_server() as port:
        url = f"http://127.0.0.1:{port}"
        report = await diagnose(DoctorOptions(url=url, timeout=5.0, proxy=proxy.url))
        assert report.ok, [(f.id, f.title) for f in report.findings]
        ids = [f.id for f in report.findings]
        assert ids[0] == "proxy.ok"
        assert "dns.ok" not in ids  # the proxy resolves the name, not this machine
        explicit = len(proxy.tunnels())
        assert explicit > 5  # every check went through it: handshake, WebSocket, sticky...

        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        report = await diagnose(DoctorOptions(url=url, timeout=5.0))
        assert report.ok
        assert len(proxy.tunnels()) > explicit

        # --proxy '': the environment ignored; without it, the environment's proxy.
        before = len(proxy.tunnels())
        status = await asyncio.to_thread(main, ["doctor", url, "--proxy", "", "--timeout", "5"])
        assert status == 0
        assert len(proxy.tunnels()) == before
        assert await asyncio.to_thread(main, ["doctor", url, "--timeout", "5"]) == 0
        assert len(proxy.tunnels()) > before


async def test_the_doctor_says_the_proxy_refuses(tmp_path: Path) -> None:
    async with tinyproxy(tmp_path, auth=("user", "secret")) as proxy, echo_server() as port:
        report = await diagnose(
            DoctorOptions(url=f"http://127.0.0.1:{port}", timeout=5.0, proxy=proxy.url)
        )
    primary = report.primary
    assert primary is not None
    assert primary.id == "proxy.auth_required"
    assert primary.fix is not None
    assert "credentials" in primary.fix
    report = await diagnose(
        DoctorOptions(
            url="http://127.0.0.1:9", timeout=5.0, proxy=f"http://127.0.0.1:{free_port()}"
        )
    )
    assert report.primary is not None
    assert report.primary.id == "proxy.unreachable"
