"""The fault lab: each failure of the catalogue (shared/seeds) reproduced with real components, the
doctor's primary finding for it, and the line the aiosio server logs about it.

Every case that concerns the server's configuration runs against aiosio and against the official
socket.io 4.8 server configured the same way (the ``kind`` parameter); what concerns something else
(nginx in front, a server that is not Socket.IO, a closed port) runs once per server behind it or
once. The doctor runs in-process; ``test_cli_json`` runs the command once as a user does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any

import pytest

import aiosio
from aiosio.doctor.checks import DoctorOptions
from aiosio.doctor.checks import diagnose
from aiosio.doctor.findings import Verdict
from conftest import free_port
from lab.conftest import Lab
from lab.conftest import Proxy
from lab.conftest import ServerSpec
from lab.conftest import assert_primary
from lab.conftest import doctor
from lab.conftest import rendered

ORIGIN = "http://127.0.0.1:8089"  # a page's origin that is not the server's


class ServerLog:
    """What the in-process aiosio servers logged (``aiosio.*`` loggers, INFO and above)."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        caplog.set_level(logging.INFO, logger="aiosio")

    def lines(self) -> list[str]:
        return [
            record.getMessage()
            for record in self.caplog.records
            if record.name.startswith("aiosio") and record.levelno >= logging.INFO
        ]

    async def wait_for(self, *fragments: str, timeout: float = 5.0) -> str:
        """Like :meth:`find`, for a line logged by a task that ends after the client is done."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            for line in self.lines():
                if all(fragment in line for fragment in fragments):
                    return line
            await asyncio.sleep(0.02)
        return self.find(*fragments)

    def find(self, *fragments: str) -> str:
        """The first line holding every fragment; fails with the whole log otherwise."""
        for line in self.lines():
            if all(fragment in line for fragment in fragments):
                return line
        shown = "\n".join(self.lines()) or "(nothing)"
        pytest.fail(f"no server log line with {fragments!r}; the server logged:\n{shown}")


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> ServerLog:
    return ServerLog(caplog)


# -- a correct deployment ------------------------------------------------------------------------


async def test_correct_deployment(lab: Lab, kind: str, server_log: ServerLog) -> None:
    """nginx as the deployment guide configures it, in front of a server with CORS for the page:
    no finding, over polling and WebSocket, with the page's origin."""
    spec = ServerSpec(cors_origin=[ORIGIN], cors_credentials=True, namespaces=("/chat",))
    upstream = await lab.server(kind, spec)
    url = await lab.nginx([upstream])
    report = await doctor(url + "/chat", origin=ORIGIN, credentials=True)
    assert report.ok, rendered(report)
    assert report.primary is None
    ids = {finding.id for finding in report.findings}
    assert {"handshake.ok", "cors.ok", "websocket.ok", "websocket.upgrade_ok"} <= ids
    assert {"sticky.ok", "namespace.ok", "latency.ok"} <= ids
    latency = next(finding for finding in report.findings if finding.id == "latency.ok")
    assert len(latency.data["ping_ms"]) == 5
    assert latency.data["handshake_ms"] > 0
    if kind == "aiosio":
        assert not [line for line in server_log.lines() if "refused" in line], server_log.lines()


async def test_slow_path_against_ping_timeout(lab: Lab, kind: str) -> None:
    """A path whose round trip reaches half the pingTimeout: heartbeats will time out. The ping
    is measured (the upgrade probe), not guessed from the handshake."""
    upstream = await lab.server(kind, ServerSpec(ping_timeout=0.06))
    url = await lab.slow_link(upstream, delay=0.02)  # 40 ms there and back, per exchange
    report = await doctor(url)
    slow = [finding for finding in report.findings if finding.id == "latency.slow"]
    assert slow, rendered(report)
    assert slow[0].verdict is Verdict.WARN
    assert min(slow[0].data["ping_ms"]) >= 40
    assert "raise pingTimeout" in (slow[0].fix or "")


# -- nginx in front ----------------------------------------------------------------------------


async def test_nginx_drops_upgrade_headers(lab: Lab, kind: str, server_log: ServerLog) -> None:
    """nginx without proxy_http_version 1.1 and the Upgrade/Connection headers: the WebSocket
    request reaches the server as plain HTTP, clients stay on long-polling."""
    upstream = await lab.server(kind)
    url = await lab.nginx([upstream], Proxy(upgrade_headers=False))
    report = await doctor(url)
    assert_primary(report, "websocket.stuck_in_polling")
    assert report.primary is not None
    assert report.primary.verdict is Verdict.WARN
    assert report.primary.data["cause"] == "websocket.upgrade_headers_dropped"
    if kind == "aiosio":
        line = server_log.find(
            "transport=websocket request arrived as plain HTTP",
            "without the 'Upgrade: websocket'",
        )
        assert "proxy_set_header Upgrade $http_upgrade" in line
    else:
        # socket.io says less: its connection_error event carries the code and a name.
        event = await lab.node_event(type="connection_error", code=3)
        assert event["context"]["name"] == "TRANSPORT_HANDSHAKE_ERROR"


async def test_nginx_read_timeout_below_ping_interval(
    lab: Lab, kind: str, server_log: ServerLog
) -> None:
    """nginx proxy_read_timeout (1s) shorter than the server's ping interval (3s): an idle
    connection is cut by the proxy before the first ping."""
    upstream = await lab.server(kind, ServerSpec(ping_interval=3.0, ping_timeout=2.0))
    url = await lab.nginx([upstream], Proxy(read_timeout="1s"))
    report = await doctor(url, soak=2.5)
    assert_primary(report, "soak.idle_timeout")
    assert report.primary is not None
    assert 0.8 < report.primary.data["lasted"] < 2.0
    assert report.primary.data["pings"] == 0
    assert "proxy_read_timeout" in (report.primary.fix or "")


async def test_nginx_read_timeout_server_log(lab: Lab, server_log: ServerLog) -> None:
    upstream = await lab.aiosio(ServerSpec(ping_interval=3.0, ping_timeout=2.0))
    url = await lab.nginx([upstream], Proxy(read_timeout="1s"))
    await doctor(url, soak=2.5)
    server_log.find("proxy", "idle")


async def test_soak_with_websocket_only(lab: Lab) -> None:
    upstream = await lab.aiosio(ServerSpec(ping_interval=3.0, ping_timeout=2.0))
    url = await lab.nginx([upstream], Proxy(read_timeout="1s"))
    report = await doctor(url, soak=2.5, transport="websocket")
    assert_primary(report, "soak.idle_timeout")


async def test_nginx_round_robin_without_stickiness(
    lab: Lab, kind: str, server_log: ServerLog
) -> None:
    """Two servers behind nginx round-robin (no ip_hash): requests of one session land on the
    other server, which answers code 1 Session ID unknown."""
    # A short ping interval: the doctor's GET that reaches the session's server without the
    # CONNECT (it went to the other one) long-polls until the next ping.
    first = await lab.server(kind, ServerSpec(ping_interval=0.5))
    second = await lab.server(kind, ServerSpec(ping_interval=0.5))
    url = await lab.nginx([first, second], Proxy(sticky=False))
    report = await doctor(url)
    assert_primary(report, "sticky.missing")
    assert report.primary is not None
    assert report.primary.data["unknown"] > 0
    if kind == "aiosio":
        line = server_log.find("Session ID unknown", "is not open on this server")
        assert "sticky sessions" in line
    else:
        event = await lab.node_event(type="connection_error", code=1)
        assert event["message"] == "Session ID unknown"


async def test_nginx_sticky_two_servers_is_fine(lab: Lab, kind: str) -> None:
    """The same two servers with ip_hash: no finding (the sticky check does not cry wolf)."""
    first = await lab.server(kind)
    second = await lab.server(kind)
    url = await lab.nginx([first, second], Proxy(sticky=True))
    report = await doctor(url)
    assert report.ok, rendered(report)


async def test_nginx_path_does_not_match(lab: Lab, kind: str, server_log: ServerLog) -> None:
    """location /socket.io/ with proxy_pass http://upstream/ (a trailing slash): nginx strips the
    location and the server receives /?EIO=4..., which is not its path."""
    upstream = await lab.server(kind)
    url = await lab.nginx([upstream], Proxy(pass_path="/"))
    report = await doctor(url)
    assert_primary(report, "path.not_found_proxy")
    if kind == "aiosio":
        line = server_log.find("does not match the server path '/socket.io/'")
        assert "`path` option" in line


async def test_nginx_adds_its_own_cors_header(lab: Lab, kind: str) -> None:
    """nginx add_header Access-Control-Allow-Origin * on top of the server's own CORS header:
    the response carries two values, which browsers refuse."""
    upstream = await lab.server(kind, ServerSpec(cors_origin=[ORIGIN]))
    url = await lab.nginx([upstream], Proxy(add_cors="*"))
    report = await doctor(url, origin=ORIGIN)
    assert_primary(report, "cors.duplicate_header")
    # The server cannot see what the proxy adds: its own answer is right, so it logs no refusal.


async def test_nginx_upstream_down(lab: Lab) -> None:
    """nginx in front of a port where nothing listens: 502 from the proxy."""
    url = await lab.nginx([lab.closed_port()])
    report = await doctor(url)
    assert_primary(report, "proxy.upstream_down")


# -- the server's configuration --------------------------------------------------------------------


async def test_no_cors_for_the_origin(lab: Lab, kind: str, server_log: ServerLog) -> None:
    """A server with no CORS configuration and a page from another origin: the polling responses
    carry no Access-Control-Allow-Origin, the browser blocks them."""
    url = await lab.server(kind, ServerSpec())
    report = await doctor(url, origin=ORIGIN)
    assert_primary(report, "cors.missing")


async def test_no_cors_server_log(lab: Lab, server_log: ServerLog) -> None:
    url = await lab.aiosio(ServerSpec())
    await doctor(url, origin=ORIGIN, transport="polling")
    server_log.find(ORIGIN, "Cors(origins=")


async def test_cors_for_another_origin(lab: Lab, kind: str, server_log: ServerLog) -> None:
    """CORS lists an origin, but not the page's. aiosio refuses the request (403) and says why;
    socket.io answers with the configured origin, which the browser compares and refuses."""
    url = await lab.server(kind, ServerSpec(cors_origin="https://app.example.com"))
    report = await doctor(url, origin=ORIGIN)
    if kind == "aiosio":
        # aiosio refuses the origin at the handshake (403); the doctor names it as CORS.
        assert_primary(report, "cors.origin_refused")
        line = server_log.find(f"origin '{ORIGIN}' is not allowed", "https://app.example.com")
        assert "add it to aiosio.Cors(origins=...)" in line
    else:
        assert_primary(report, "cors.other_origin")


async def test_cors_origin_refused_by_aiosio(lab: Lab) -> None:
    url = await lab.aiosio(ServerSpec(cors_origin="https://app.example.com"))
    report = await doctor(url, origin=ORIGIN)
    assert_primary(report, "cors.origin_refused")


async def test_wildcard_with_credentials(lab: Lab, kind: str) -> None:
    """origin '*' and a page that sends credentials (withCredentials: true): browsers refuse a
    wildcard for credentialed requests. aiosio refuses the combination at construction; an aiosio
    server with '*' still meets such pages, and the doctor says the same of both."""
    if kind == "aiosio":
        with pytest.raises(ValueError, match=r"origins='\*' cannot be combined with credentials"):
            aiosio.Cors(origins="*", credentials=True)
        spec = ServerSpec(cors_origin="*")
    else:
        spec = ServerSpec(cors_origin="*", cors_credentials=True)
    url = await lab.server(kind, spec)
    report = await doctor(url, origin=ORIGIN, credentials=True)
    assert_primary(report, "cors.wildcard_with_credentials")
    # Without credentials the same server is fine for that page.
    assert (await doctor(url, origin=ORIGIN)).ok


async def test_custom_server_path(lab: Lab, kind: str, server_log: ServerLog) -> None:
    """The server runs at path /my-custom-path/, the client at the default /socket.io/."""
    url = await lab.server(kind, ServerSpec(path="/my-custom-path/"))
    report = await doctor(url)
    assert_primary(report, "path.not_found")
    if kind == "aiosio":
        line = server_log.find("does not match the server path '/my-custom-path/'")
        assert "`path` option" in line
    # Told the path, the doctor finds the server.
    assert (await doctor(url, path="/my-custom-path/")).ok


async def test_custom_server_path_in_the_url(lab: Lab, kind: str) -> None:
    url = await lab.server(kind, ServerSpec(path="/my-custom-path/"))
    report = await doctor(url + "/my-custom-path/")
    assert_primary(report, "path.mismatch")


async def test_missing_namespace(lab: Lab, kind: str, server_log: ServerLog) -> None:
    """The client connects to /admin, the server has no such namespace."""
    url = await lab.server(kind, ServerSpec(namespaces=("/chat",)))
    report = await doctor(url + "/admin")
    assert_primary(report, "namespace.invalid")
    if kind == "aiosio":
        line = server_log.find("unknown namespace '/admin'")
        assert "sio.of('/admin') creates it" in line


async def test_middleware_refuses_expired_token(lab: Lab, kind: str, server_log: ServerLog) -> None:
    """A namespace middleware refuses {"token": "expired..."} with Error("token expired")."""
    url = await lab.server(kind, ServerSpec(secure="/secure"))
    report = await doctor(url + "/secure", auth={"token": "expired-2024"})
    assert_primary(report, "namespace.token_expired")
    assert report.primary is not None
    assert report.primary.data == {"message": "token expired", "data": {"code": "EXPIRED"}}
    if kind == "aiosio":
        server_log.find("namespace /secure refused", "token expired")
    # A valid token passes.
    assert (await doctor(url + "/secure", auth={"token": "fresh"})).ok


async def test_socketio_v2_server(lab: Lab) -> None:
    """A socket.io 2.x server (npm socket.io@2.5.0): it speaks Engine.IO 3."""
    url = await lab.node_v2()
    async with asyncio.timeout(5):
        report = await doctor(url, timeout=1.0)
    assert_primary(report, "version.v2_server")


async def test_v2_client_on_aiosio_server_log(lab: Lab, server_log: ServerLog) -> None:
    """The version mismatch seen from an aiosio server: a 2.x client (EIO=3) is refused with
    code 5, and the log names allow_eio3."""
    url = await lab.aiosio(ServerSpec())
    port = int(url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /socket.io/?EIO=3&transport=polling&t=x HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Connection: close\r\n\r\n"
    )
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    assert b'{"code":5,"message":"Unsupported protocol version"}' in answer
    server_log.find("Unsupported protocol version", "allow_eio3")


async def test_self_signed_tls(lab: Lab, kind: str) -> None:
    """A server with a self-signed certificate: TLS fails unless the client trusts it."""
    cert, key = lab.self_signed()
    url = await lab.server(kind, ServerSpec(tls=(cert, key)))
    assert url.startswith("https://")
    report = await doctor(url)
    assert_primary(report, "tls.self_signed")
    assert report.primary is not None
    assert "--ca FILE" in (report.primary.fix or "")
    # Trusting the certificate (--ca) the same server is fine.
    assert (await doctor(url, ca=str(cert))).ok


async def test_self_signed_tls_server_log(lab: Lab, server_log: ServerLog) -> None:
    cert, key = lab.self_signed()
    url = await lab.aiosio(ServerSpec(tls=(cert, key)))
    await doctor(url)
    await server_log.wait_for(
        "TLS handshake with 127.0.0.1:",
        "rejected this server's certificate",
        "a CA the clients trust",
    )


async def test_https_against_plain_http(lab: Lab, kind: str, server_log: ServerLog) -> None:
    """https:// in the client's URL, a plain HTTP server on the port."""
    url = await lab.server(kind)
    report = await doctor(url.replace("http://", "https://"))
    assert_primary(report, "tls.not_tls")
    assert report.primary is not None
    assert "use http://" in (report.primary.fix or "")
    if kind == "aiosio":
        await server_log.wait_for("a TLS handshake from", "plain HTTP port", "use http://")


async def test_http_against_tls(lab: Lab, kind: str, server_log: ServerLog) -> None:
    """http:// in the client's URL, a TLS server on the port."""
    cert, key = lab.self_signed()
    url = await lab.server(kind, ServerSpec(tls=(cert, key)))
    report = await doctor(url.replace("https://", "http://"))
    assert_primary(report, "tls.expected")
    assert [f.id for f in report.findings if f.verdict.name == "FAIL"] == ["tls.expected"]
    if kind == "aiosio":
        await server_log.wait_for("plain HTTP request arrived on this TLS port", "use https://")


# -- not a Socket.IO server ------------------------------------------------------------------------


async def test_plain_websocket_server(lab: Lab) -> None:
    url = await lab.plain_websocket()
    report = await doctor(url)
    assert_primary(report, "server.plain_websocket")


async def test_html_server(lab: Lab) -> None:
    url = await lab.html_site()
    report = await doctor(url)
    assert_primary(report, "server.html_page")


async def test_server_that_never_answers(lab: Lab) -> None:
    url = await lab.silent_http()
    async with asyncio.timeout(12):
        report = await doctor(url, timeout=1.0)
    assert report.primary is not None
    assert report.primary.verdict is Verdict.FAIL


async def test_closed_port(lab: Lab) -> None:
    report = await doctor(lab.closed_port())
    assert_primary(report, "tcp.refused")


# -- the command ----------------------------------------------------------------------------------


async def run_cli(*args: str) -> tuple[int, dict[str, Any]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiosio",
        "doctor",
        *args,
        "--json",
        "--timeout",
        "5",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    try:
        return proc.returncode, json.loads(stdout)
    except ValueError:
        pytest.fail(f"not JSON:\n{stdout.decode()}\nstderr:\n{stderr.decode()}")


async def test_cli_json(lab: Lab) -> None:
    """`aiosio doctor URL --json` as a user runs it: exit 0 and no primary on a correct
    deployment, exit 1 and the primary finding's id on a broken one."""
    good = await lab.aiosio(ServerSpec(ping_interval=0.5, ping_timeout=2.0))
    code, report = await run_cli(good)
    assert code == 0, report
    assert report["ok"] is True
    assert report["primary"] is None
    assert report["summary"].startswith("OK: ")
    assert {f["id"] for f in report["findings"]} >= {"handshake.ok", "websocket.ok", "sticky.ok"}

    first = await lab.aiosio(ServerSpec(ping_interval=0.5, ping_timeout=2.0))
    second = await lab.aiosio(ServerSpec(ping_interval=0.5, ping_timeout=2.0))
    url = await lab.nginx([first, second], Proxy(sticky=False))
    code, report = await run_cli(url)
    assert code == 1, report
    assert report["ok"] is False
    assert report["primary"] == "sticky.missing"
    primary = next(f for f in report["findings"] if f["id"] == "sticky.missing")
    assert primary["verdict"] == "fail"
    assert "ip_hash" in (primary["fix"] or "")

    code, report = await run_cli(f"http://127.0.0.1:{free_port()}")
    assert (code, report["primary"]) == (1, "tcp.refused")


async def test_doctor_is_quick_on_a_healthy_server(lab: Lab) -> None:
    url = await lab.aiosio(ServerSpec())  # pingInterval 25s, the default
    started = time.monotonic()
    try:
        # a doctor that waited for the server's ping would take 25 s: a bound well short of it,
        # with room for a busy machine
        async with asyncio.timeout(15):
            report = await diagnose(DoctorOptions(url=url))
    except TimeoutError:
        pytest.fail(f"the doctor ran over {time.monotonic() - started:.0f}s on a healthy server")
    assert report.ok, rendered(report)
