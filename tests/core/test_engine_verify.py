"""Request verification (``aiosio.engine.verify``): the verdict for a request, with no response
written and no session changed. The HTTP behaviour of each rejection is in
tests/io/test_engine_http.py; here, the verdicts themselves, against the sessions of a real
EngineServer."""

from __future__ import annotations

from typing import Any

import pytest

import aiosio
from aiosio.engine.driver import EngineSocket
from aiosio.engine.ended import EndedSessions
from aiosio.engine.http import HttpRequest
from aiosio.engine.options import EngineOptions
from aiosio.engine.verify import Handshake
from aiosio.engine.verify import Rejection
from aiosio.engine.verify import SessionRequest
from aiosio.engine.verify import Verdict
from aiosio.engine.verify import protocol_of
from aiosio.engine.verify import verify


def request(query: str, method: str = "GET", **headers: str) -> HttpRequest:
    return HttpRequest(method, "/engine.io/", query, headers)


async def verdict(
    query: str,
    *,
    method: str = "GET",
    upgrade: bool = False,
    sessions: dict[str, EngineSocket] | None = None,
    ended: EndedSessions | None = None,
    **options: Any,
) -> Verdict[EngineSocket]:
    return await verify(
        request(query, method),
        upgrade=upgrade,
        options=EngineOptions(**options),
        sessions=sessions or {},
        ended=ended or EndedSessions(8),
        now=lambda: 12.5,
    )


async def open_session(engine: aiosio.EngineServer) -> EngineSocket:
    response = await engine.handle_request(request("EIO=4&transport=polling"))
    assert response.status == 200
    (socket,) = engine.clients.values()
    return socket


async def test_a_handshake_is_accepted_as_a_new_session() -> None:
    assert await verdict("EIO=4&transport=polling") == Handshake()


async def test_a_request_of_an_open_session_names_the_session() -> None:
    engine = aiosio.EngineServer()
    socket = await open_session(engine)
    query = f"EIO=4&transport=polling&sid={socket.id}"
    assert await verdict(query, sessions=engine.clients) == SessionRequest(socket)
    upgrade = f"EIO=4&transport=websocket&sid={socket.id}"
    assert await verdict(upgrade, upgrade=True, sessions=engine.clients) == SessionRequest(socket)
    engine.close()


async def test_a_session_that_ended_here_says_why_and_when() -> None:
    ended = EndedSessions(8)
    ended.add("gone", "ping timeout", 10.0)
    refused = await verdict("EIO=4&transport=polling&sid=gone", ended=ended)
    assert isinstance(refused, Rejection)
    assert (refused.code, refused.message) == (1, "Session ID unknown")
    assert refused.context == {"sid": "gone", "closeReason": "ping timeout"}
    assert refused.cause == "session gone ended 2.5s ago on this server (ping timeout)"


async def test_an_unknown_session_points_at_sticky_sessions() -> None:
    refused = await verdict("EIO=4&transport=polling&sid=elsewhere")
    assert isinstance(refused, Rejection)
    assert refused.code == 1
    assert "sticky sessions" in refused.hint


@pytest.mark.parametrize(
    ("query", "method", "options", "code", "name"),
    [
        ("EIO=4", "GET", {}, 0, None),
        ("EIO=4&transport=flash", "GET", {}, 0, None),
        ("EIO=4&transport=websocket", "GET", {"transports": ["polling"]}, 0, None),
        ("EIO=4&transport=polling", "POST", {}, 2, None),
        ("EIO=4&transport=websocket", "GET", {}, 3, "TRANSPORT_HANDSHAKE_ERROR"),
    ],
)
async def test_rejections_carry_the_reference_code(
    query: str, method: str, options: dict[str, Any], code: int, name: str | None
) -> None:
    refused = await verdict(query, method=method, **options)
    assert isinstance(refused, Rejection)
    assert refused.code == code
    assert refused.context.get("name") == name
    assert refused.cause
    assert refused.hint


async def test_allow_request_refusal_puts_its_message_in_the_body() -> None:
    def hook(_request: HttpRequest) -> None:
        raise aiosio.ConnectionRefused("members only")

    refused = await verdict("EIO=4&transport=polling", allow_request=hook)
    assert isinstance(refused, Rejection)
    assert (refused.code, refused.message) == (4, "members only")
    assert refused.context == {"message": "members only"}


async def test_allow_request_returning_false_is_forbidden() -> None:
    refused = await verdict("EIO=4&transport=polling", allow_request=lambda _request: False)
    assert isinstance(refused, Rejection)
    assert (refused.code, refused.message) == (4, "Forbidden")


def test_protocol_of_the_handshake() -> None:
    assert protocol_of(request("EIO=4"), allow_eio3=False) == 4
    assert protocol_of(request("EIO=3"), allow_eio3=True) == 3
    refused = protocol_of(request("EIO=3"), allow_eio3=False)
    assert isinstance(refused, Rejection)
    assert (refused.code, refused.context) == (5, {"protocol": "3"})
    assert "allow_eio3=True" in refused.hint
