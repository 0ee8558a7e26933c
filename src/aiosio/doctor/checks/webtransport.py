"""WebTransport over HTTP/3, when the server offers it (its handshake's upgrades name it): the
QUIC handshake on UDP (a network that blocks UDP is named as such), the certificate (or the
hash pinned with ``--certificate-hash``), the session request, and the Engine.IO handshake over
the session's stream."""

from __future__ import annotations

import asyncio

from aiosio.client.errors import ConnectError
from aiosio.client.errors import Stage
from aiosio.client.webtransport import WebTransportConnection
from aiosio.client.webtransport import open_webtransport
from aiosio.client.webtransport import parse_certificate_hash
from aiosio.doctor.diagnosis import Diagnosis
from aiosio.doctor.findings import Finding
from aiosio.doctor.findings import Verdict
from aiosio.doctor.packets import is_handshake_message

__all__ = ["check_webtransport", "offers_webtransport"]


def offers_webtransport(diagnosis: Diagnosis) -> bool:
    """The server's handshake offers the upgrade to WebTransport."""
    handshake = diagnosis.handshake
    return handshake is not None and "webtransport" in handshake.get("upgrades", [])


async def check_webtransport(diagnosis: Diagnosis) -> bool:
    target = diagnosis.target
    options = target.options
    port = options.webtransport_port or target.port
    try:
        conn = await open_webtransport(
            target.host,
            port,
            f"{target.path}?EIO=4&transport=webtransport",
            target.headers(),
            sid=None,
            timeout=options.timeout,
            max_message=10_000_000,
            certificate_hashes=[parse_certificate_hash(h) for h in options.certificate_hashes],
            verify=not options.insecure,
            url=f"https://{target.host}:{port}{target.path}",
        )
    except ConnectError as error:
        diagnosis.report.add(_failed(error, port))
        return True
    first = await _first_message(conn, options.timeout)
    conn.close()
    if is_handshake_message(first):
        diagnosis.report.add(
            Finding(
                "webtransport.ok",
                Verdict.OK,
                f"a WebTransport session works over HTTP/3 (udp port {port})",
            )
        )
    else:
        diagnosis.report.add(
            Finding(
                "webtransport.no_handshake",
                Verdict.FAIL,
                "the WebTransport session opened but no Engine.IO handshake came over it",
                [f"first message: {str(first)[:80]!r}"],
                "the UDP port is served by another HTTP/3 server than the Socket.IO one",
            )
        )
    return True


async def _first_message(conn: WebTransportConnection, timeout: float) -> str | bytes:
    messages: asyncio.Queue[str | bytes] = asyncio.Queue()
    conn.on_message = messages.put_nowait
    conn.start()
    try:
        async with asyncio.timeout(timeout):
            return await messages.get()
    except TimeoutError:
        return ""


_FALLBACK = (
    "clients whose transports include 'websocket' or 'polling' fall back to them (the "
    "default in browsers; tryAllTransports for a client that starts with WebTransport)"
)


def _failed(error: ConnectError, port: int) -> Finding:
    """The step that failed, as a warning: the other transports still serve the clients."""
    if error.stage is Stage.QUIC:
        return Finding(
            "webtransport.udp_blocked",
            Verdict.WARN,
            f"the server offers WebTransport but nothing answers QUIC on udp port {port}: "
            "UDP is blocked on the way (a firewall, a corporate or hotel network, a "
            "load balancer without UDP), or the server listens on another port",
            [str(error)],
            f"open udp port {port} to the server (and its load balancer), or set the port "
            f"clients use (transportOptions.webtransport.port); {_FALLBACK}",
            data={"cause": "udp_blocked"},
        )
    if error.stage is Stage.TLS:
        return Finding(
            "webtransport.certificate",
            Verdict.WARN,
            "the WebTransport server's certificate is refused: " + error.message,
            [str(error)],
            "serve a certificate that browsers trust, or a development certificate (ECDSA, "
            "at most 14 days) that pages pin with serverCertificateHashes (here: "
            "--certificate-hash); see docs/webtransport.md",
            data={"cause": "certificate"},
        )
    return Finding(
        "webtransport.refused",
        Verdict.WARN,
        "the WebTransport session is refused: " + error.message,
        [str(error)],
        f"check the path and the server's transports; {_FALLBACK}",
        data={"cause": "refused"},
    )
