"""Name resolution, TCP, TLS: the path to the server before any HTTP."""

from __future__ import annotations

import asyncio
import socket
import ssl as ssl_module
import time
from dataclasses import replace

from aiosio.client.errors import ConnectError
from aiosio.client.errors import Stage
from aiosio.client.http import open_stream
from aiosio.doctor.diagnosis import Diagnosis
from aiosio.doctor.findings import Finding
from aiosio.doctor.findings import Verdict
from aiosio.doctor.target import Target

__all__ = ["check_network", "speaks_tls"]

_PROXY_IDS = {
    401: "proxy.auth_required",
    407: "proxy.auth_required",
    403: "proxy.forbidden",
    405: "proxy.forbidden",
    502: "proxy.upstream_failed",
    503: "proxy.upstream_failed",
    504: "proxy.upstream_failed",
}


async def check_network(diagnosis: Diagnosis) -> bool:
    """One finding for the first of resolution, TCP and TLS that fails (and ``False``: nothing
    else can be checked), else an ok line for each. Through a proxy (``--proxy`` or the
    environment's), the proxy resolves and connects: what is checked from here is the tunnel."""
    target, report = diagnosis.target, diagnosis.report
    proxy = target.endpoint.proxy
    started = time.perf_counter()
    if proxy is None and not await _resolves(diagnosis):
        return False
    try:
        await _connect(target, target.ssl)
    except ConnectError as error:
        report.add(_network_finding(target, error))
        return False
    elapsed = (time.perf_counter() - started) * 1000
    path = f"{' and TLS' if target.secure else ''} to {target.host}:{target.port}"
    if proxy is None:
        ok = Finding("tcp.ok", Verdict.OK, f"TCP{path} in {elapsed:.0f} ms")
    else:
        ok = Finding(
            "proxy.ok",
            Verdict.OK,
            f"a tunnel{path} through the proxy {proxy.shown} in {elapsed:.0f} ms",
            data={"proxy": proxy.shown},
        )
    ok.data["connect_ms"] = round(elapsed, 1)
    report.add(ok)
    return True


async def _resolves(diagnosis: Diagnosis) -> bool:
    target, report = diagnosis.target, diagnosis.report
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            target.host, target.port, type=socket.SOCK_STREAM
        )
    except socket.gaierror as exc:
        report.add(
            Finding(
                "dns.unresolvable",
                Verdict.FAIL,
                f"the host name {target.host} does not resolve",
                [f"getaddrinfo({target.host!r}): {exc.strerror}"],
                "check the host name in the URL, and DNS on the client's network",
            )
        )
        return False
    addresses = sorted({str(i[4][0]) for i in infos})
    report.add(Finding("dns.ok", Verdict.OK, f"{target.host} resolves to {', '.join(addresses)}"))
    return True


async def _connect(target: Target, context: ssl_module.SSLContext | None) -> None:
    """Open and close a connection (TLS when the target is secure, or ``context`` is given)."""
    secure = target.secure or context is not None
    endpoint = replace(target.endpoint, secure=secure, ssl_context=context, trace=None)
    _reader, writer = await open_stream(endpoint, url=target.origin_url)
    writer.close()


async def speaks_tls(target: Target) -> bool:
    """Whether a TLS handshake (certificate not checked) succeeds on the target's port."""
    context = ssl_module.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl_module.CERT_NONE
    try:
        await _connect(target, context)
    except ConnectError:
        return False
    return True


def _network_finding(target: Target, error: ConnectError) -> Finding:
    if error.stage is Stage.PROXY:
        ident = (
            _PROXY_IDS.get(error.status, "proxy.refused") if error.status else "proxy.unreachable"
        )
        return Finding(ident, Verdict.FAIL, error.message, [_evidence(error)], error.hint)
    where = f"{target.host}:{target.port}"
    if error.stage is Stage.TLS:
        ident, fix = _tls_failure(target, error)
        return Finding(
            ident, Verdict.FAIL, f"TLS with {where} fails: {error.message}", [str(error)], fix
        )
    if error.stage is Stage.TIMEOUT:
        return Finding(
            "tcp.timeout",
            Verdict.FAIL,
            f"{where} does not answer (connect timed out)",
            [str(error)],
            "a firewall drops the packets or the host is down",
        )
    return Finding(
        "tcp.refused" if "refused" in error.message else "tcp.unreachable",
        Verdict.FAIL,
        error.message,
        [_evidence(error)],
        error.hint or "is the server running on this host and port?",
    )


def _evidence(error: ConnectError) -> str:
    """The error as evidence; its hint is the finding's fix: said once, as the fix."""
    return str(error).removesuffix(f"; hint: {error.hint}") if error.hint else str(error)


def _tls_failure(target: Target, error: ConnectError) -> tuple[str, str]:
    """The finding id and the fix for a failed TLS handshake, from what OpenSSL said."""
    message = error.message.lower()
    if "self-signed" in message or "self signed" in message:
        return "tls.self_signed", (
            "trust the certificate on the client (aiosio.Client(ssl=ssl.create_default_context"
            "(cafile='cert.pem')), Node: ca: fs.readFileSync('cert.pem')) or use a certificate "
            "from a public CA; --ca FILE checks with it"
        )
    if "hostname" in message or "mismatch" in message:
        return "tls.wrong_host", (
            f"the certificate is not for {target.host}: connect with the name it was issued for"
        )
    if "expired" in message:
        return "tls.expired", "renew the server's certificate"
    if "wrong version number" in message or "record layer failure" in message:
        return "tls.not_tls", (
            f"{target.host}:{target.port} does not speak TLS (an HTTP server answers there): use "
            "http:// and ws://, or serve TLS on it (aiosio serve --certfile --keyfile, or a TLS "
            "proxy)"
        )
    return "tls.failed", error.hint or "check the server's TLS configuration"
