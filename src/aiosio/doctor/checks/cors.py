"""CORS as a browser page at ``--origin`` sees the polling transport (a WebSocket needs none)."""

from __future__ import annotations

from aiosio.client.errors import ConnectError
from aiosio.client.http import HttpResult
from aiosio.doctor.advice import websocket_only
from aiosio.doctor.advice import with_credentials
from aiosio.doctor.diagnosis import Diagnosis
from aiosio.doctor.exchange import describe
from aiosio.doctor.exchange import polling_query
from aiosio.doctor.exchange import try_request
from aiosio.doctor.findings import Finding
from aiosio.doctor.findings import Verdict
from aiosio.doctor.target import Target

__all__ = ["check_cors"]


async def check_cors(diagnosis: Diagnosis) -> bool:
    target = diagnosis.target
    origin = target.options.origin
    assert origin is not None  # the registry runs this check with --origin only
    query = polling_query()
    result = await try_request(target, "GET", query)
    if result is None:
        return True
    evidence = [f"GET {target.path}?{query} with Origin: {origin} -> {describe(result)}"]
    values = _header_values(result, "access-control-allow-origin")
    credentials = _header_values(result, "access-control-allow-credentials")
    evidence += [f"Access-Control-Allow-Origin: {v}" for v in values]
    evidence += [f"Access-Control-Allow-Credentials: {v}" for v in credentials]
    finding = _answer_finding(target, result, values, credentials, evidence)
    if finding is None:
        finding = await _preflight_finding(target, evidence)
    diagnosis.report.add(
        finding or Finding("cors.ok", Verdict.OK, f"CORS allows {origin}", evidence)
    )
    return True


def _header_values(result: HttpResult, name: str) -> list[str]:
    return [value for key, value in result.headers if key.lower() == name]


def _answer_finding(
    target: Target,
    result: HttpResult,
    values: list[str],
    credentials: list[str],
    evidence: list[str],
) -> Finding | None:
    """What is wrong with the CORS headers of the polling answer, if anything."""
    origin = target.options.origin
    if result.status == 403 and not values:
        return Finding(
            "cors.origin_refused",
            Verdict.FAIL,
            f"the server refuses the origin {origin} (403)",
            evidence,
            f"add {origin} to the server's cors origins",
        )
    if len(values) > 1:
        return Finding(
            "cors.duplicate_header",
            Verdict.FAIL,
            "Access-Control-Allow-Origin appears more than once: browsers refuse the response",
            evidence,
            "both the proxy and the server add CORS headers: remove them from the proxy (or from "
            "the server), not from both",
        )
    if not values:
        return Finding(
            "cors.missing",
            Verdict.FAIL,
            f"no Access-Control-Allow-Origin for {origin}: a browser page from this origin "
            "cannot use long-polling",
            evidence,
            f"configure CORS on the Socket.IO server for {origin} (Node: new Server({{cors: "
            f"{{origin: '{origin}'}}}}); aiosio: cors=aiosio.Cors(origins=['{origin}'])), or "
            f"connect with WebSocket only (no CORS for WebSocket): "
            f"{websocket_only(target.options)}",
        )
    return _value_finding(target, values[0], credentials, evidence)


def _value_finding(
    target: Target, value: str, credentials: list[str], evidence: list[str]
) -> Finding | None:
    """What is wrong with the one Access-Control-Allow-Origin, or with credentials."""
    origin = target.options.origin
    if value not in ("*", origin):
        return Finding(
            "cors.other_origin",
            Verdict.FAIL,
            f"Access-Control-Allow-Origin is {value!r}, not {origin!r}",
            evidence,
            f"allow {origin} on the server (the value must equal the page's origin exactly: "
            "scheme, host and port, no trailing slash)",
        )
    if target.options.credentials and value == "*":
        return Finding(
            "cors.wildcard_with_credentials",
            Verdict.FAIL,
            "Access-Control-Allow-Origin is * but the client sends credentials: browsers refuse it",
            evidence,
            "list the origin explicitly (or origin: true to reflect it) with credentials: true",
        )
    if target.options.credentials and not any(v.lower() == "true" for v in credentials):
        return Finding(
            "cors.credentials_missing",
            Verdict.FAIL,
            "the client sends credentials but the server does not answer "
            "Access-Control-Allow-Credentials: true",
            evidence,
            "set credentials: true in the server's CORS options (Node: cors: { credentials: true "
            "}; aiosio: aiosio.Cors(..., credentials=True)), and on the client: "
            f"{with_credentials(target.options)}",
        )
    return None


async def _preflight_finding(target: Target, evidence: list[str]) -> Finding | None:
    preflight = await _preflight(target)
    if preflight is None or preflight.status < 400:
        return None
    return Finding(
        "cors.preflight_refused",
        Verdict.FAIL,
        f"the preflight of the polling POST is refused ({preflight.status})",
        [*evidence, f"OPTIONS {target.path} -> {describe(preflight)}"],
        "answer OPTIONS on the Socket.IO path with the CORS headers (the Socket.IO server does "
        "it; a proxy must not block it)",
    )


async def _preflight(target: Target) -> HttpResult | None:
    """The browser's preflight of a polling POST (its ``Content-Type`` is not a simple one)."""
    conn = target.connection()
    try:
        return await conn.request(
            "OPTIONS",
            f"{target.path}?{polling_query(cache_buster=False)}",
            target.headers(
                {
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type",
                }
            ),
            url=target.origin_url + target.path,
        )
    except ConnectError:
        return None
    finally:
        conn.close()
