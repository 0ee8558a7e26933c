"""The Engine.IO 4 handshake over long-polling: the first request every client makes."""

from __future__ import annotations

import time
from typing import Any

from aiosio.client.errors import ConnectError
from aiosio.client.errors import Stage
from aiosio.client.http import HttpResult
from aiosio.doctor.checks.endpoint import explain_handshake_failure
from aiosio.doctor.checks.network import speaks_tls
from aiosio.doctor.diagnosis import Diagnosis
from aiosio.doctor.exchange import describe
from aiosio.doctor.exchange import handshake_of
from aiosio.doctor.exchange import polling_query
from aiosio.doctor.exchange import request
from aiosio.doctor.exchange import try_request
from aiosio.doctor.findings import Finding
from aiosio.doctor.findings import Verdict

__all__ = ["POLLING_REFUSED", "check_handshake"]

# Code 0 "Transport unknown": the server does not accept long-polling.
POLLING_REFUSED = "handshake.refused_code_0"

# A handshake that fails with one of these leaves nothing else to check.
_FATAL = ("path.", "server.", "version.", "proxy.", "handshake.", "tls.")


async def check_handshake(diagnosis: Diagnosis) -> bool:
    """Open a polling session, or say why none opens. ``False`` (stop) when none opens and
    nothing else can be learnt: ``--transport polling``, or a failure that rules out the rest."""
    diagnosis.handshake = await _handshake(diagnosis)
    if diagnosis.handshake is not None:
        return True
    if diagnosis.options.transport == "polling":
        return False
    primary = diagnosis.report.primary
    if primary is not None and primary.id == POLLING_REFUSED:
        return True  # a WebSocket-only server, maybe: the WebSocket check tells
    return primary is None or not primary.id.startswith(_FATAL)


async def _handshake(diagnosis: Diagnosis) -> dict[str, Any] | None:
    target = diagnosis.target
    query = polling_query()
    started = time.perf_counter()
    try:
        result = await request(target, "GET", query)
    except ConnectError as error:
        await _no_http(diagnosis, error)
        return None
    rtt = (time.perf_counter() - started) * 1000
    diagnosis.handshake_rtt = rtt
    handshake = handshake_of(result)
    evidence = [f"GET {target.path}?{query} -> {describe(result)}"]
    if handshake is None and result.status == 403 and target.options.origin:
        handshake = await _refused_origin(diagnosis, evidence)
        if handshake is not None:
            return handshake
    if handshake is not None:
        diagnosis.report.add(
            Finding(
                "handshake.ok",
                Verdict.OK,
                f"Engine.IO 4 handshake at {target.path} in {rtt:.0f} ms",
                evidence,
                data={"handshake": handshake, "rtt_ms": round(rtt, 1)},
            )
        )
        return handshake
    await explain_handshake_failure(target, result, evidence, diagnosis.report)
    return None


async def _no_http(diagnosis: Diagnosis, error: ConnectError) -> None:
    """The handshake got no HTTP answer: a TLS server (asked in plain HTTP), or no HTTP server."""
    target = diagnosis.target
    # A TLS server closes an HTTP request at once; one that did not answer in time is something
    # else (and probing it would wait a second timeout).
    if not target.secure and error.stage is not Stage.TIMEOUT and await speaks_tls(target):
        diagnosis.report.add(
            Finding(
                "tls.expected",
                Verdict.FAIL,
                f"{target.host}:{target.port} speaks TLS, and the URL says http://",
                [str(error), "a TLS handshake on the same port succeeds"],
                "use https:// (the client then uses wss:// for the WebSocket)",
            )
        )
        return
    diagnosis.report.add(
        Finding(
            "handshake.no_http",
            Verdict.FAIL,
            f"{target.path} did not answer as an HTTP server: {error.message}",
            [str(error)],
            "something that is not an HTTP server listens on this port",
        )
    )


async def _refused_origin(diagnosis: Diagnosis, evidence: list[str]) -> dict[str, Any] | None:
    """Refused (403) with ``--origin``: ask again without it, as a non-browser client would. If
    that opens a session, the origin was refused; CORS is then judged."""
    origin = diagnosis.options.origin
    plain: HttpResult | None = await try_request(
        diagnosis.target, "GET", polling_query(), origin=False
    )
    handshake = handshake_of(plain)
    if handshake is not None:
        diagnosis.report.add(
            Finding(
                "cors.origin_refused",
                Verdict.FAIL,
                f"the server refuses the origin {origin} (403); without an Origin it answers",
                evidence,
                f"add {origin} to the server's CORS origins",
            )
        )
        diagnosis.cors_checked = True
    return handshake
