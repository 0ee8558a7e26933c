"""The doctor's TLS verdicts (aiosio.doctor.checks.network, .handshake) against the native server
serving TLS with a self-signed certificate for ``localhost``, and plain HTTP: the certificate
not trusted, trusted with ``--ca``, for another name, ignored with ``--insecure``; https:// to a
plain port and http:// to a TLS port."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import aiosio
from aiosio.doctor.checks import DoctorOptions
from aiosio.doctor.checks import diagnose
from aiosio.doctor.checks.handshake import check_handshake
from aiosio.doctor.checks.network import check_network
from aiosio.doctor.diagnosis import Diagnosis
from aiosio.doctor.findings import Report
from aiosio.doctor.findings import Verdict
from aiosio.doctor.target import Target


@pytest.fixture
async def tls_port(certificate: tuple[Path, Path]) -> AsyncIterator[int]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    server = await aiosio.serve(aiosio.Server(), "127.0.0.1", 0, ssl=context)
    yield server.port
    await server.close()


def diagnosis(url: str, **options: Any) -> Diagnosis:
    target = Target(DoctorOptions(url=url, timeout=5.0, **options))
    return Diagnosis(target, Report(url))


async def test_self_signed(tls_port: int) -> None:
    d = diagnosis(f"https://localhost:{tls_port}")
    assert not await check_network(d)
    finding = d.report.findings[-1]
    assert finding.id == "tls.self_signed"
    assert "--ca FILE" in (finding.fix or "")


async def test_trusted_with_ca(tls_port: int, certificate: tuple[Path, Path]) -> None:
    report = await diagnose(
        DoctorOptions(url=f"https://localhost:{tls_port}", ca=str(certificate[0]), timeout=5.0)
    )
    assert report.ok, [f.id for f in report.findings]
    assert report.findings[1].title.startswith(f"TCP and TLS to localhost:{tls_port} in ")


async def test_certificate_for_another_name(tls_port: int, certificate: tuple[Path, Path]) -> None:
    d = diagnosis(f"https://127.0.0.1:{tls_port}", ca=str(certificate[0]))
    assert not await check_network(d)
    assert d.report.findings[-1].id == "tls.wrong_host"


async def test_insecure(tls_port: int) -> None:
    d = diagnosis(f"https://127.0.0.1:{tls_port}", insecure=True)
    assert await check_network(d)
    assert await check_handshake(d)
    assert [f.id for f in d.report.findings] == ["dns.ok", "tcp.ok", "handshake.ok"]


async def test_http_to_a_tls_port(tls_port: int) -> None:
    d = diagnosis(f"http://127.0.0.1:{tls_port}")
    assert await check_network(d)  # TCP works
    assert not await check_handshake(d)
    finding = d.report.findings[-1]
    assert finding.id == "tls.expected"
    assert finding.evidence[-1] == "a TLS handshake on the same port succeeds"


async def test_https_to_a_plain_port() -> None:
    server = await aiosio.serve(aiosio.Server(), "127.0.0.1", 0)
    try:
        d = diagnosis(f"https://127.0.0.1:{server.port}")
        assert not await check_network(d)
    finally:
        await server.close()
    finding = d.report.findings[-1]
    assert finding.id == "tls.not_tls"
    assert finding.verdict is Verdict.FAIL
