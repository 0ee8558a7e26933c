"""The doctor's CORS verdicts against a real browser's.

For each CORS case a headless Chromium (Debian's package, driven by playwright-core through its
executable path) loads a page from the lab origin (http://127.0.0.1:<port A>, served by
tests/js/browser_check.mjs) that connects to the Socket.IO server with the official browser client.
The browser's verdict must equal the doctor's, run with --origin of that page (and --credentials
when the page sends credentials): blocked <-> a cors.* FAIL; connected over polling <-> no cors
finding. Each case runs against aiosio and against socket.io 4.8 configured the same way.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from aiosio.doctor.findings import Report
from aiosio.doctor.findings import Verdict
from conftest import free_port
from conftest import run_node
from lab.conftest import Lab
from lab.conftest import Proxy
from lab.conftest import ServerSpec
from lab.conftest import chromium_binary
from lab.conftest import doctor
from lab.conftest import rendered


async def browser(page_port: int, url: str, *, credentials: bool) -> dict[str, Any]:
    """What Chromium says of connecting to ``url`` from a page at 127.0.0.1:page_port."""
    args = ["--page-port", str(page_port), "--url", url, "--chromium", chromium_binary()]
    if credentials:
        args.append("--credentials")
    [result] = await run_node("browser_check.mjs", *args, timeout=60)
    assert "failed" not in result, result
    return result


def cors_failures(report: Report) -> list[str]:
    return [f.id for f in report.findings if f.id.startswith("cors.") and f.verdict is Verdict.FAIL]


@dataclass(frozen=True)
class Case:
    name: str
    credentials: bool  # the page sends credentials (withCredentials: true)
    blocked: bool  # what a browser must say
    doctor: str | None  # the doctor's cors finding, None for cors.ok
    console: str  # what the browser's console says (its reason)


CASES = {
    "correct": Case("correct", True, False, None, ""),
    "no_cors": Case(
        "no_cors", False, True, "cors.missing", "No 'Access-Control-Allow-Origin' header"
    ),
    "wildcard_with_credentials": Case(
        "wildcard_with_credentials",
        True,
        True,
        "cors.wildcard_with_credentials",
        "must not be the wildcard '*' when the request's credentials mode is 'include'",
    ),
    "nginx_duplicate_header": Case(
        "nginx_duplicate_header",
        False,
        True,
        "cors.duplicate_header",
        "contains multiple values",
    ),
    "other_origin": Case("other_origin", False, True, "cors.*", "has been blocked by CORS policy"),
}


async def deploy(lab: Lab, kind: str, case: Case, origin: str) -> str:
    """The deployment of ``case`` for a page at ``origin``; its URL."""
    if case.name == "correct":
        return await lab.server(kind, ServerSpec(cors_origin=[origin], cors_credentials=True))
    if case.name == "no_cors":
        return await lab.server(kind, ServerSpec())
    if case.name == "wildcard_with_credentials":
        # aiosio refuses '*' with credentials at construction; its '*' meets a credentialed page.
        credentials = kind == "node"
        return await lab.server(kind, ServerSpec(cors_origin="*", cors_credentials=credentials))
    if case.name == "nginx_duplicate_header":
        upstream = await lab.server(kind, ServerSpec(cors_origin=[origin]))
        return await lab.nginx([upstream], Proxy(add_cors="*"))
    assert case.name == "other_origin"
    return await lab.server(kind, ServerSpec(cors_origin="https://app.example.com"))


PARAMS = [
    pytest.param(
        kind,
        name,
        id=f"{name}-{kind}",
    )
    for name in CASES
    for kind in ("aiosio", "node")
]


@pytest.mark.parametrize(("kind", "name"), PARAMS)
async def test_browser_and_doctor_agree(lab: Lab, kind: str, name: str) -> None:
    case = CASES[name]
    page_port = free_port()
    origin = f"http://127.0.0.1:{page_port}"
    url = await deploy(lab, kind, case, origin)
    report, seen = await asyncio.gather(
        doctor(url, origin=origin, credentials=case.credentials),
        browser(page_port, url, credentials=case.credentials),
    )
    failures = cors_failures(report)
    verdicts = f"browser: {seen}\ndoctor:\n{rendered(report)}"
    assert (not seen["connected"]) is case.blocked, verdicts
    # The two verdicts are the same: blocked <-> a cors.* FAIL; connected <-> no cors finding.
    assert bool(failures) is (not seen["connected"]), verdicts
    if case.blocked:
        assert seen["error"] == "xhr poll error", verdicts
        if case.doctor != "cors.*":
            assert failures == [case.doctor], verdicts
        assert any(case.console in line for line in seen["console"]), verdicts
    else:
        # Opened over polling (where CORS applies), then upgraded (the upgrade may complete
        # before or after the namespace's CONNECT answer: the transport at "connect" varies).
        assert (seen["opened"], seen["upgraded"]) == ("polling", "websocket"), verdicts
        assert "cors.ok" in {f.id for f in report.findings}, verdicts
        assert report.ok, verdicts


async def test_browser_stuck_in_polling(lab: Lab, kind: str) -> None:
    """Not CORS, the transport: behind nginx without the upgrade headers the browser connects
    over polling and never upgrades, and the doctor says websocket.stuck_in_polling."""
    page_port = free_port()
    origin = f"http://127.0.0.1:{page_port}"
    upstream = await lab.server(kind, ServerSpec(cors_origin=[origin]))
    url = await lab.nginx([upstream], Proxy(upgrade_headers=False))
    report, seen = await asyncio.gather(
        doctor(url, origin=origin), browser(page_port, url, credentials=False)
    )
    verdicts = f"browser: {seen}\ndoctor:\n{rendered(report)}"
    assert seen["connected"], verdicts
    assert (seen["opened"], seen["upgraded"]) == ("polling", "polling"), verdicts
    assert report.primary is not None, verdicts
    assert report.primary.id == "websocket.stuck_in_polling", verdicts
    assert not cors_failures(report), verdicts
