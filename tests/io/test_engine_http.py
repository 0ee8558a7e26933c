"""The Engine.IO server over real sockets: handshake, errors, polling, options, upgrade, CORS,
TLS and shutdown, against the native server and the ASGI app under uvicorn (``serve``).

Expected behaviour comes from the reference ``engine.io`` 6.x (``lib/server.ts``, ``socket.ts``,
``transports/polling.ts``) and the npm ``cors`` package; the seed cases are the curl commands of
the socket.io "Troubleshooting connection issues" page.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from _eio import EIO_PATH
from _eio import TIMEOUT
from _eio import Recorder
from _eio import assert_serving
from _eio import decode_payload
from _eio import eventually
from _eio import handshake
from _eio import poll
from _eio import post
from _eio import recorder
from _eio import recv
from _eio import url
from _eio import ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.exceptions import InvalidStatus

import aiosio

SIO_PATH = "/socket.io/"
OPEN_RE = re.compile(
    r'0\{"sid":"(?P<sid>[A-Za-z0-9_-]{20})","upgrades":\["websocket"\],"pingInterval":25000,'
    r'"pingTimeout":20000,"maxPayload":1000000\}'
)
TEXT = "text/plain;charset=UTF-8"  # what engine.io-client sends with a POST


def client(**kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=TIMEOUT, **kwargs)


# -- seed 001: the curl commands of the troubleshooting page --------------------------------------

SEED_CASES = [
    ("GET", "/socket.io/", 0, "Transport unknown"),
    ("GET", "/socket.io/?transport=udp", 0, "Transport unknown"),
    ("GET", "/socket.io/?transport=polling&sid=1234", 1, "Session ID unknown"),
    ("PUT", "/socket.io/?transport=polling", 2, "Bad handshake method"),
    ("GET", "/socket.io/?transport=polling&EIO=3", 5, "Unsupported protocol version"),
]


@pytest.mark.parametrize(("method", "target", "code", "message"), SEED_CASES)
async def test_seed_001_http_400(
    serve: Any, method: str, target: str, code: int, message: str
) -> None:
    base = await serve(aiosio.EngineServer(path=SIO_PATH))
    async with client() as c:
        response = await c.request(method, base + target)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    # byte for byte what the reference's abortRequest writes (JSON.stringify, no spaces)
    assert response.content == f'{{"code":{code},"message":"{message}"}}'.encode()
    await assert_serving(base, SIO_PATH)


async def _refuse_async(request: aiosio.HttpRequest) -> None:
    raise aiosio.ConnectionRefused("why")


def _refuse_sync(request: aiosio.HttpRequest) -> bool:
    return False


def _buggy_hook(request: aiosio.HttpRequest) -> None:
    raise ZeroDivisionError("internal detail")


@pytest.mark.parametrize(
    ("hook", "message"),
    [(_refuse_async, "why"), (_refuse_sync, "Forbidden"), (_buggy_hook, "Forbidden")],
    ids=["async-with-message", "sync-returns-false", "bug-in-hook-leaks-nothing"],
)
async def test_seed_001_allow_request_forbidden(serve: Any, hook: Any, message: str) -> None:
    # Reference: allowRequest(req, cb) with cb(message, false) -> abortRequest(res, FORBIDDEN,
    # {message}) -> 403 and the message if there is one, else "Forbidden".
    base = await serve(aiosio.EngineServer(path=SIO_PATH, allow_request=hook))
    async with client() as c:
        response = await c.get(url(base, SIO_PATH, EIO="4", transport="polling"))
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/json"
    assert (
        response.content
        == json.dumps({"code": 4, "message": message}, separators=(",", ":")).encode()
    )


async def test_seed_001_successful_handshake(serve: Any) -> None:
    base = await serve(aiosio.EngineServer(path=SIO_PATH))
    async with client() as c:
        response = await c.get(url(base, SIO_PATH, EIO="4", transport="polling"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=UTF-8"
    assert OPEN_RE.fullmatch(response.text), response.text  # exact keys, in the reference order
    assert int(response.headers["content-length"]) == len(response.content)


# -- connection_error: code, message, context, cause, hint, and a log line ------------------------

ERROR_CASES: list[tuple[str, str, dict[str, str], int, dict[str, Any], list[str], list[str]]] = [
    # (id, method, query, code, context, words in cause, words in hint)
    ("no-transport", "GET", {}, 0, {"transport": None}, ["no transport"], ["transport=polling"]),
    (
        "udp",
        "GET",
        {"transport": "udp"},
        0,
        {"transport": "udp"},
        ["unknown transport", "udp"],
        ["transport=polling"],
    ),
    (
        "unknown-sid",
        "GET",
        {"transport": "polling", "sid": "1234"},
        1,
        {"sid": "1234"},
        ["1234", "not open on this server"],
        ["sticky sessions", "transports=['websocket']"],
    ),
    (
        "put-handshake",
        "PUT",
        {"transport": "polling"},
        2,
        {"method": "PUT"},
        ["PUT"],
        ["GET"],
    ),
    (
        "eio3",
        "GET",
        {"transport": "polling", "EIO": "3"},
        5,
        {},
        ["Engine.IO 3"],
        ["allow_eio3=True"],
    ),
]


@pytest.mark.parametrize(
    ("method", "query", "code", "context", "cause_words", "hint_words"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
async def test_connection_error_event_and_log(
    serve: Any,
    caplog: pytest.LogCaptureFixture,
    method: str,
    query: dict[str, str],
    code: int,
    context: dict[str, Any],
    cause_words: list[str],
    hint_words: list[str],
) -> None:
    caplog.set_level(logging.INFO, logger="aiosio")
    rec = recorder(path=SIO_PATH)
    base = await serve(rec.engine)
    async with client() as c:
        response = await c.request(method, url(base, SIO_PATH, **query))
    assert response.status_code == 400
    assert len(rec.errors) == 1
    error = rec.errors[0]
    assert error.code == code
    assert error.message == response.json()["message"]
    assert error.request.method == method
    for key, value in context.items():
        assert error.context[key] == value
    for word in cause_words:
        assert word in error.cause
    for word in hint_words:
        assert word in error.hint
    records = [r for r in caplog.records if r.name == "aiosio.engine"]
    assert len(records) == 1
    line = records[0].getMessage()
    assert records[0].levelno == logging.WARNING
    assert f"code {code}" in line
    assert error.cause in line
    assert error.hint in line
    assert "127.0.0.1" in line


async def test_connection_error_eio3_context(serve: Any) -> None:
    # Reference handshake(): context {protocol} where protocol = EIO === "4" ? 4 : 3.
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        for eio in ("3", "abc"):
            response = await c.get(url(base, EIO=eio, transport="polling"))
            assert response.status_code == 400
            assert response.json() == {"code": 5, "message": "Unsupported protocol version"}
    assert [str(e.context["protocol"]) for e in rec.errors] == ["3", "abc"]
    assert "allow_eio3" in rec.errors[0].hint
    assert "EIO=4" in rec.errors[1].hint
    assert "'abc'" in rec.errors[1].cause


async def test_connection_error_forbidden_cause_and_log(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiosio")
    rec = recorder(allow_request=_refuse_async)
    base = await serve(rec.engine)
    async with client() as c:
        response = await c.get(url(base, EIO="4", transport="polling"))
    assert response.status_code == 403
    (error,) = rec.errors
    assert error.code == 4
    assert "allow_request refused the request: why" in error.cause
    assert "allow_request" in error.hint
    assert any(
        r.name == "aiosio.engine" and "code 4" in r.getMessage() and "why" in r.getMessage()
        for r in caplog.records
    )
    assert rec.engine.clients_count == 0


async def test_connection_error_forbidden_matches_reference(serve: Any) -> None:
    # server.ts: verify's fn(FORBIDDEN, {message}); handleRequest emits connection_error with
    # message errorMessages[4] and that context; abortRequest puts context.message in the body.
    rec = recorder(allow_request=_refuse_async)
    base = await serve(rec.engine)
    async with client() as c:
        response = await c.get(url(base, EIO="4", transport="polling"))
    assert response.json() == {"code": 4, "message": "why"}  # the body does carry it
    (error,) = rec.errors
    assert error.message == "Forbidden"
    assert error.context == {"message": "why"}


async def test_unknown_sid_of_a_session_that_ended_here_says_so(serve: Any) -> None:
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        response = await post(c, base, sid, "1", headers={"Content-Type": TEXT})
        assert response.text == "ok"
        assert await rec.closed(sid) == ("transport close", None)
        response = await poll(c, base, sid)
    assert response.status_code == 400
    assert response.json() == {"code": 1, "message": "Session ID unknown"}
    (error,) = rec.errors
    assert error.context["sid"] == sid
    assert error.context["closeReason"] == "transport close"
    assert "ended" in error.cause
    assert "transport close" in error.cause
    assert "new session" in error.hint


# -- polling -------------------------------------------------------------------------------------


async def test_long_poll_waits_until_the_server_sends(serve: Any) -> None:
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, first = await handshake(c, base)
        assert first.headers["cache-control"] == "no-store"
        pending = asyncio.create_task(poll(c, base, sid))
        await asyncio.sleep(0.3)
        assert not pending.done()
        rec.sockets[sid].send("hello")
        response = await pending
    assert response.status_code == 200
    assert response.text == "4hello"
    assert response.headers["content-type"] == "text/plain; charset=UTF-8"
    assert response.headers["cache-control"] == "no-store"
    assert "set-cookie" not in response.headers


async def test_post_answers_ok_and_delivers(serve: Any) -> None:
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        response = await post(c, base, sid, "4hello\x1e4world", headers={"Content-Type": TEXT})
    assert response.status_code == 200
    assert response.content == b"ok"
    assert response.headers["content-type"] == "text/html"
    assert response.headers["content-length"] == "2"
    assert response.headers["cache-control"] == "no-store"
    await rec.message(sid, "world")
    assert [m for s, m in rec.messages if s == sid] == ["hello", "world"]


async def test_batching_and_binary(serve: Any) -> None:
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        socket = rec.sockets[sid]
        socket.send("a")
        socket.send(b"\x01\x02\xff")
        socket.send("c")
        response = await poll(c, base, sid)
        assert decode_payload(response.text) == [
            "4a",
            "b" + base64.b64encode(b"\x01\x02\xff").decode(),
            "4c",
        ]
        # and binary from the client, base64 in the text payload
        await post(c, base, sid, "bAQI=\x1e4x", headers={"Content-Type": TEXT})
    await rec.message(sid, "x")
    assert (sid, b"\x01\x02") in rec.messages


@pytest.mark.parametrize(
    ("options", "accept", "size", "encoding"),
    [
        ({}, "gzip, deflate", 2000, "gzip"),
        ({}, "gzip", 1023, "gzip"),  # 1024 bytes with the "4" prefix: at the threshold
        ({}, "gzip", 1022, None),
        ({}, "deflate", 2000, "deflate"),
        ({}, "identity", 2000, None),
        ({}, "deflate;q=1, gzip;q=0.5", 2000, "deflate"),
        ({"http_compression": False}, "gzip, deflate", 2000, None),
        ({"http_compression": 100}, "gzip", 200, "gzip"),
    ],
    ids=["gzip", "threshold", "below", "deflate", "identity", "q", "off", "custom-threshold"],
)
async def test_http_compression(
    serve: Any, options: dict[str, Any], accept: str, size: int, encoding: str | None
) -> None:
    rec = recorder(**options)
    base = await serve(rec.engine)
    payload = "x" * size
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        rec.sockets[sid].send(payload)
        response = await poll(c, base, sid, headers={"Accept-Encoding": accept})
    assert response.status_code == 200
    assert response.text == "4" + payload  # httpx undoes the encoding
    assert response.headers.get("content-encoding") == encoding
    wire = int(response.headers["content-length"])
    if encoding is None:
        assert wire == size + 1
    else:
        assert wire < size + 1


async def test_cookie_on_the_handshake_only(serve: Any) -> None:
    rec = recorder(cookie=True)
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, response = await handshake(c, base)
        assert response.headers.get_list("set-cookie") == [
            f"io={sid}; Path=/; HttpOnly; SameSite=Lax"
        ]
        rec.sockets[sid].send("x")
        later = await poll(c, base, sid)
        assert later.text == "4x"
        assert "set-cookie" not in later.headers
        posted = await post(c, base, sid, "4y", headers={"Content-Type": TEXT})
        assert "set-cookie" not in posted.headers
    async with ws_connect(base) as ws:
        assert "Set-Cookie" not in ws.response.headers
        opened = await recv(ws)
        assert isinstance(opened, str)
        assert opened.startswith('0{"sid":')


async def test_cookie_options(serve: Any) -> None:
    cookie = aiosio.Cookie(name="sticky", path="/app", same_site="strict", secure=True)
    rec = recorder(cookie=cookie)
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, response = await handshake(c, base)
    assert response.headers["set-cookie"] == f"sticky={sid}; Path=/app; HttpOnly; Secure; " + (
        "SameSite=Strict"
    )


async def test_initial_headers_and_headers_hooks(serve: Any) -> None:
    rec = recorder()
    seen: list[tuple[str, str]] = []

    @rec.engine.on("initial_headers")
    def initial(headers: list[tuple[str, str]], request: aiosio.HttpRequest) -> None:
        seen.append(("initial", request.query.get("transport", "")))
        headers.append(("X-Initial", "1"))

    @rec.engine.on("headers")
    def every(headers: list[tuple[str, str]], request: aiosio.HttpRequest) -> None:
        seen.append(("headers", request.query.get("transport", "")))
        headers.append(("X-Every", "1"))

    base = await serve(rec.engine)
    async with client() as c:
        sid, _, first = await handshake(c, base)
        assert first.headers["x-initial"] == "1"
        assert first.headers["x-every"] == "1"
        rec.sockets[sid].send("x")
        later = await poll(c, base, sid)
        assert "x-initial" not in later.headers
        assert later.headers["x-every"] == "1"
        posted = await post(c, base, sid, "4y", headers={"Content-Type": TEXT})
        assert "x-initial" not in posted.headers
        assert posted.headers["x-every"] == "1"
        # the WebSocket of an upgrade is not an initial request
        async with ws_connect(base, sid=sid) as probe:
            assert "X-Initial" not in probe.response.headers
            assert probe.response.headers["X-Every"] == "1"
    async with ws_connect(base) as ws:  # a session opened on WebSocket: both hooks
        assert ws.response.headers["X-Initial"] == "1"
        assert ws.response.headers["X-Every"] == "1"
    assert seen[:2] == [("initial", "polling"), ("headers", "polling")]


async def test_websocket_only_server_refuses_polling(serve: Any) -> None:
    rec = recorder(transports=("websocket",))
    base = await serve(rec.engine)
    async with client() as c:
        response = await c.get(url(base, EIO="4", transport="polling"))
    assert response.status_code == 400
    assert response.json() == {"code": 0, "message": "Transport unknown"}
    (error,) = rec.errors
    assert error.context == {"transport": "polling"}
    assert "disabled" in error.cause
    async with ws_connect(base) as ws:
        opened = await recv(ws)
    assert isinstance(opened, str)
    data = json.loads(opened[1:])
    assert opened[0] == "0"
    assert data["upgrades"] == []


async def test_polling_only_server_refuses_websocket(serve: Any) -> None:
    rec = recorder(transports=("polling",))
    base = await serve(rec.engine)
    async with client() as c:
        _, data, _ = await handshake(c, base)
    assert data["upgrades"] == []
    with pytest.raises(InvalidStatus) as caught:
        async with ws_connect(base):
            pass
    assert caught.value.response.status_code == 400
    assert rec.errors[-1].code == 0
    await assert_serving(base)


async def test_allow_upgrades_false(serve: Any) -> None:
    base = await serve(aiosio.EngineServer(allow_upgrades=False))
    async with client() as c:
        _, data, response = await handshake(c, base)
    assert data["upgrades"] == []
    assert response.text.startswith('0{"sid":"' + data["sid"] + '","upgrades":[],"pingInterval"')


async def test_handshake_reflects_options(serve: Any) -> None:
    base = await serve(
        aiosio.EngineServer(ping_interval=1.5, ping_timeout=0.75, max_http_buffer_size=4096)
    )
    async with client() as c:
        _, data, _ = await handshake(c, base)
    assert list(data) == ["sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"]
    assert (data["pingInterval"], data["pingTimeout"], data["maxPayload"]) == (1500, 750, 4096)


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'pingInterval'"):
        aiosio.EngineServer(pingInterval=1000)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"ping_interval": 0}, ValueError, "ping_interval must be a positive number of seconds, "),
        ({"ping_timeout": -1}, ValueError, "ping_timeout must be a positive number of seconds"),
        ({"ping_timeout": "20"}, TypeError, "ping_timeout must be a number of seconds, got str"),
        ({"upgrade_timeout": True}, TypeError, "upgrade_timeout must be a number of seconds"),
        ({"cookie": 123}, TypeError, "cookie must be True, a cookie name or aiosio.Cookie"),
        ({"allow_upgrades": "yes"}, TypeError, "allow_upgrades and allow_eio3 must be True or"),
        (
            {"http_compression": -1},
            ValueError,
            r"http_compression must be True \(from 1024 bytes on\), False \(off\)",
        ),
        ({"max_http_buffer_size": 0}, TypeError, "max_http_buffer_size must be a positive int"),
        ({"max_http_buffer_size": 1.5}, TypeError, "max_http_buffer_size must be a positive int"),
        ({"transports": "polling"}, TypeError, "transports must be a sequence of names"),
        ({"transports": ("udp",)}, ValueError, "transports must be a non-empty subset of"),
        ({"transports": ()}, ValueError, "transports must be a non-empty subset of"),
        ({"cors": {"origin": "*"}}, TypeError, r"cors must be an aiosio\.Cors\(\.\.\.\), got dict"),
        ({"path": ""}, TypeError, "path must be a non-empty string"),
        ({"max_outbound_buffer": -1}, TypeError, "max_outbound_buffer must be a positive int"),
        ({"max_payload_packets": 0}, TypeError, "max_payload_packets must be a positive int"),
        ({"allow_request": "yes"}, TypeError, "allow_request must be a function"),
    ],
)
def test_invalid_option_values(options: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        aiosio.EngineServer(**options)


def test_options_are_validated_once_and_normalised() -> None:
    engine = aiosio.EngineServer(path="socket.io", cookie="sticky", http_compression=False)
    options = engine.options
    assert (options.path, engine.path) == ("/socket.io/", "/socket.io/")
    assert options.session_cookie == aiosio.Cookie(name="sticky")
    assert options.compression_threshold is None
    assert options.session_config.max_payload == options.max_http_buffer_size
    with pytest.raises(AttributeError):
        options.path = "/other/"  # type: ignore[misc]


def test_server_passes_its_engine_options_through() -> None:
    with pytest.raises(ValueError, match="ping_interval must be a positive number of seconds"):
        aiosio.Server(ping_interval=-1)
    assert aiosio.Server(transports=["websocket"]).engine.options.transports == ("websocket",)


def test_path_is_normalised() -> None:
    assert aiosio.EngineServer(path="socket.io").path == "/socket.io/"
    assert aiosio.EngineServer(path="/socket.io").path == "/socket.io/"
    assert aiosio.EngineServer().path == EIO_PATH


async def test_clients_count(serve: Any) -> None:
    rec = recorder()
    base = await serve(rec.engine)
    assert rec.engine.clients_count == 0
    async with client() as c:
        first, _, _ = await handshake(c, base)
        second, _, _ = await handshake(c, base)
        assert first != second
        assert rec.engine.clients_count == 2
        async with ws_connect(base) as ws:
            await recv(ws)
            assert rec.engine.clients_count == 3
        await eventually(lambda: rec.engine.clients_count == 2)
        rec.sockets[first].close()
        response = await poll(c, base, first)  # the close packet is fetched by the next GET
        assert decode_payload(response.text)[-1] == "1"
        await eventually(lambda: rec.engine.clients_count == 1)
    assert set(rec.engine.clients) == {second}


async def test_wrong_path_is_404_that_names_the_path(serve: Any) -> None:
    base = await serve(aiosio.EngineServer(path=SIO_PATH))
    async with client() as c:
        response = await c.get(url(base, "/engine.io/", EIO="4", transport="polling"))
    assert response.status_code == 404
    assert "'/socket.io/'" in response.text


# -- upgrade -------------------------------------------------------------------------------------


async def _upgrade(c: httpx.AsyncClient, base: str, rec: Recorder, sid: str, ws: Any) -> None:
    """The client's side of the upgrade, with a long-poll GET pending (socket.ts _maybeUpgrade)."""
    pending = asyncio.create_task(poll(c, base, sid))
    await asyncio.sleep(0.1)
    await ws.send("2probe")
    assert await recv(ws) == "3probe"
    response = await asyncio.wait_for(pending, TIMEOUT)
    assert response.text == "6"  # the pending GET is released with a noop
    await ws.send("5")
    await eventually(lambda: sid in rec.upgrades)


async def test_upgrade_over_real_sockets(serve: Any) -> None:
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, data, _ = await handshake(c, base)
        assert data["upgrades"] == ["websocket"]
        async with ws_connect(base, sid=sid) as ws:
            await _upgrade(c, base, rec, sid, ws)
            socket = rec.sockets[sid]
            assert socket.transport == "websocket"
            assert socket.upgraded
            socket.send("over ws")
            socket.send(b"\x00\x01")
            assert await recv(ws) == "4over ws"
            assert await recv(ws) == b"\x00\x01"
            await ws.send("4from client")
            await ws.send(b"\x07")
            await rec.message(sid, b"\x07")
            assert (sid, "from client") in rec.messages

            # polling is over for this session
            response = await poll(c, base, sid)
            assert response.status_code == 400
            assert response.json() == {"code": 3, "message": "Bad request"}
            assert rec.errors[-1].context["name"] == "TRANSPORT_MISMATCH"
            assert rec.errors[-1].context["previousTransport"] == "websocket"

            # a second WebSocket for the session: handshake completed, then closed at once
            async with ws_connect(base, sid=sid) as second:
                with pytest.raises(ConnectionClosed):
                    await recv(second, 2.0)
            assert second.close_code == 1000

            # the session is untouched
            socket.send("still here")
            assert await recv(ws) == "4still here"
            assert sid not in rec.closes
        await rec.closed(sid)  # the client closed its WebSocket
    assert rec.closes[sid][0] == "transport close"


async def test_messages_sent_during_the_upgrade_arrive_once(serve: Any) -> None:
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        async with ws_connect(base, sid=sid) as ws:
            await ws.send("2probe")
            assert await recv(ws) == "3probe"
            rec.sockets[sid].send("during")  # buffered: no GET is waiting
            await ws.send("5")
            assert await recv(ws) == "4during"
            rec.sockets[sid].send("after")
            assert await recv(ws) == "4after"


# -- CORS ----------------------------------------------------------------------------------------

APP = "https://app.example.com"
EVIL = "https://evil.example"


def _cors_headers(response: httpx.Response) -> list[tuple[str, str]]:
    return [
        (k, v)
        for k, v in response.headers.multi_items()
        if k.startswith("access-control-") or k == "vary"
    ]


async def test_cors_preflight(serve: Any) -> None:
    base = await serve(aiosio.EngineServer(cors=aiosio.Cors(origins=[APP], credentials=True)))
    async with client() as c:
        response = await c.options(
            url(base, EIO="4", transport="polling"),
            headers={
                "Origin": APP,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-foo",
            },
        )
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["content-length"] == "0"
    # what the npm cors package writes, in its order (see tests/core/test_cors.py)
    assert _cors_headers(response) == [
        ("access-control-allow-origin", APP),
        ("vary", "Origin, Access-Control-Request-Headers"),
        ("access-control-allow-credentials", "true"),
        ("access-control-allow-methods", "GET,HEAD,PUT,PATCH,POST,DELETE"),
        ("access-control-allow-headers", "content-type,x-foo"),
    ]
    # a preflight from an origin not in the list: answered, without Access-Control-Allow-Origin
    async with client() as c:
        refused = await c.options(
            url(base, EIO="4", transport="polling"),
            headers={"Origin": EVIL, "Access-Control-Request-Method": "GET"},
        )
    assert refused.status_code == 204
    assert _cors_headers(refused) == [
        ("vary", "Origin, Access-Control-Request-Headers"),
        ("access-control-allow-credentials", "true"),
        ("access-control-allow-methods", "GET,HEAD,PUT,PATCH,POST,DELETE"),
    ]


async def test_cors_actual_requests(serve: Any) -> None:
    rec = recorder(cors=aiosio.Cors(origins=[APP], credentials=True))
    base = await serve(rec.engine)
    expected = [
        ("access-control-allow-origin", APP),
        ("vary", "Origin"),
        ("access-control-allow-credentials", "true"),
    ]
    async with client(headers={"Origin": APP}) as c:
        sid, _, response = await handshake(c, base)
        assert _cors_headers(response) == expected
        posted = await post(c, base, sid, "4hi", headers={"Content-Type": TEXT})
        assert _cors_headers(posted) == expected
        rec.sockets[sid].send("x")
        polled = await poll(c, base, sid)
        assert _cors_headers(polled) == expected
        # error answers carry them too, so the page can read the error
        error = await c.get(url(base, EIO="4", transport="polling", sid="nope"))
        assert error.status_code == 400
        assert _cors_headers(error) == expected
    await rec.message(sid, "hi")


async def test_cors_refuses_an_origin_on_polling_and_websocket(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiosio")
    rec = recorder(cors=aiosio.Cors(origins=[APP], credentials=True))
    base = await serve(rec.engine)
    async with client(headers={"Origin": EVIL}) as c:
        response = await c.get(url(base, EIO="4", transport="polling"))
        assert response.status_code == 403
        assert response.json() == {"code": 4, "message": "Forbidden"}
        assert not response.headers.get("access-control-allow-origin")
        # also for an existing session (a forged request riding on a known sid)
        async with client() as good:
            sid, _, _ = await handshake(good, base)
        forged = await post(c, base, sid, "4evil", headers={"Content-Type": TEXT})
        assert forged.status_code == 403
    with pytest.raises(InvalidStatus) as caught:
        async with ws_connect(base, _origin=EVIL):
            pass
    assert caught.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        async with ws_connect(base, sid=sid, _origin=EVIL):  # nor an upgrade of that session
            pass
    assert rec.engine.clients_count == 1
    assert not [m for m in rec.messages if m[1] == "evil"]
    assert [e.code for e in rec.errors] == [4, 4, 4, 4]
    for error in rec.errors:
        assert error.context == {"name": "ORIGIN_NOT_ALLOWED", "origin": EVIL}
        assert repr(EVIL) in error.cause
        assert "Cors(origins=...)" in error.hint
    logged = [r.getMessage() for r in caplog.records if r.name == "aiosio.engine"]
    assert len(logged) == 4
    assert all(EVIL in line for line in logged)
    assert sum("(websocket)" in line for line in logged) == 2
    await assert_serving(base)


async def test_cors_allows_requests_without_origin_and_from_its_own_origin(serve: Any) -> None:
    rec = recorder(cors=aiosio.Cors(origins=[APP]))
    base = await serve(rec.engine)
    async with client() as c:  # no Origin: a non-browser client
        await handshake(c, base)
    async with client(headers={"Origin": base}) as c:  # a page served by this very host
        await handshake(c, base)
    async with ws_connect(base, _origin=base) as ws:
        assert (await recv(ws))[:1] == "0"
    async with ws_connect(base, _origin=APP) as ws:
        assert (await recv(ws))[:1] == "0"
    assert rec.errors == []


async def test_no_cors_headers_without_cors(serve: Any) -> None:
    base = await serve(aiosio.EngineServer())
    async with client(headers={"Origin": EVIL}) as c:
        _, _, response = await handshake(c, base)
        preflight = await c.options(
            url(base, EIO="4", transport="polling"),
            headers={"Access-Control-Request-Method": "POST"},
        )
    assert _cors_headers(response) == []
    assert _cors_headers(preflight) == []
    assert preflight.status_code == 400  # not a preflight answer: an OPTIONS handshake (code 2)
    assert preflight.json() == {"code": 2, "message": "Bad handshake method"}


def test_cors_wildcard_with_credentials_refused_at_construction() -> None:
    with pytest.raises(ValueError, match=r"origins='\*' cannot be combined with credentials=True"):
        aiosio.Cors(origins="*", credentials=True)


# -- TLS (native) ---------------------------------------------------------------------------------


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl CLI (cryptography is not installed in the venv)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


async def test_tls(serve_native: Any, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    rec = recorder()
    base = await serve_native(rec.engine, ssl=context)
    assert base.startswith("https://")
    async with httpx.AsyncClient(timeout=TIMEOUT, verify=False) as c:
        sid, _, _ = await handshake(c, base)
        await post(c, base, sid, "4secure", headers={"Content-Type": TEXT})
    await rec.message(sid, "secure")
    trusting = ssl.create_default_context(cafile=str(cert))
    async with httpx.AsyncClient(timeout=TIMEOUT, verify=trusting) as c:
        await handshake(c, base)
    async with ws_connect(base, _ssl=trusting) as ws:  # wss:// with the same certificate
        assert (await recv(ws))[:1] == "0"
    async with httpx.AsyncClient(timeout=TIMEOUT) as c:  # verification on, the default CAs
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await c.get(url(base, EIO="4", transport="polling"))
    # the failed TLS handshake did not disturb the server
    async with httpx.AsyncClient(timeout=TIMEOUT, verify=trusting) as c:
        await handshake(c, base)


def _tls_server_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "aiosio.server.http" and r.levelno == level and "TLS handshake" in r.message
    ]


async def _tls_line(
    caplog: pytest.LogCaptureFixture, *fragments: str, level: int = logging.WARNING
) -> str:
    """The line the server logs for a failed handshake (it comes after the client gave up)."""
    for _ in range(250):
        for line in _tls_server_lines(caplog, level):
            if all(fragment in line for fragment in fragments):
                return line
        await asyncio.sleep(0.02)
    pytest.fail(f"no TLS warning with {fragments}: {[r.getMessage() for r in caplog.records]}")


def _blocking_tls_client(port: int, context: ssl.SSLContext) -> str:
    """A client that sends a TLS alert when it refuses the certificate (like curl, browsers)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1"):
                return "connected"
        except ssl.SSLError as exc:
            return str(exc)


async def test_tls_failures_are_logged_with_cause_and_fix(
    serve_native: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """asyncio's TLS server drops failed handshakes silently; ours names the cause and the fix,
    once per client host and cause, and keeps serving."""
    caplog.set_level(logging.DEBUG, logger="aiosio.server.http")
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    base = await serve_native(recorder().engine, ssl=context)
    port = int(base.rsplit(":", 1)[1])

    # A client that refuses the self-signed certificate with an alert.
    verifying = ssl.create_default_context()
    answer = await asyncio.to_thread(_blocking_tls_client, port, verifying)
    assert "CERTIFICATE_VERIFY_FAILED" in answer
    line = await _tls_line(caplog, "rejected this server's certificate", "ALERT_UNKNOWN_CA")
    assert "NODE_EXTRA_CA_CERTS" in line
    assert "127.0.0.1:" in line

    # A plain HTTP request on the TLS port.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.read()  # the server closes it
    writer.close()
    await _tls_line(caplog, "plain HTTP request arrived on this TLS port", "use https://")

    # A client that closes without an alert (asyncio's, Node's), twice: said once at INFO (a
    # health check looks the same), then DEBUG.
    for _ in range(2):
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection("127.0.0.1", port, ssl=verifying)
    await _tls_line(
        caplog, "closed the connection during the TLS handshake", "certificate", level=logging.INFO
    )
    await asyncio.sleep(0.1)
    closed = [
        line for line in _tls_server_lines(caplog, logging.INFO) if "closed the connection" in line
    ]
    assert len(closed) == 1, closed
    assert any("closed the connection" in m for m in _tls_server_lines(caplog, logging.DEBUG))

    # The server still serves a client that trusts it, with the request in the first flight.
    trusting = ssl.create_default_context(cafile=str(cert))
    async with httpx.AsyncClient(timeout=TIMEOUT, verify=trusting) as c:
        await handshake(c, base)


async def test_tls_under_uvloop_with_concurrent_handshakes(tmp_path: Path) -> None:
    """uvloop starts reading right after connection_made, whatever it paused: a ClientHello read
    before start_tls took over must reach the handshake (it was lost, and the handshake hung
    until its timeout). The server runs on uvloop in a thread; 200 clients connect at once."""
    uvloop = pytest.importorskip("uvloop")
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    started: asyncio.Future[tuple[asyncio.AbstractEventLoop, asyncio.Event, int]] = (
        asyncio.get_running_loop().create_future()
    )
    caller = asyncio.get_running_loop()

    async def server_main() -> None:
        stop = asyncio.Event()
        server = await aiosio.serve(recorder().engine, "127.0.0.1", 0, ssl=context)
        caller.call_soon_threadsafe(
            started.set_result, (asyncio.get_running_loop(), stop, server.port)
        )
        await stop.wait()
        await server.close(grace=0.1)

    thread = asyncio.ensure_future(asyncio.to_thread(uvloop.run, server_main()))
    loop, stop, port = await asyncio.wait_for(started, 10)
    trusting = ssl.create_default_context(cafile=str(cert))

    async def one() -> str:
        try:
            _reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=trusting), 5
            )
        except (OSError, TimeoutError) as exc:
            return type(exc).__name__
        writer.close()
        return "ok"

    try:
        results = await asyncio.gather(*(one() for _ in range(200)))
    finally:
        loop.call_soon_threadsafe(stop.set)
        await asyncio.wait_for(thread, 10)
    assert results.count("ok") == 200, {r: results.count(r) for r in set(results)}


async def test_tls_close_ends_handshakes_under_way(tmp_path: Path) -> None:
    """A client that connects and never says hello does not hold up the server's close."""
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = await aiosio.serve(recorder().engine, "127.0.0.1", 0, ssl=context)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    for _ in range(100):
        if server.handshakes:
            break
        await asyncio.sleep(0.01)
    assert len(server.handshakes) == 1
    await asyncio.wait_for(server.close(grace=0.1), 5)
    assert not server.handshakes
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


# -- graceful shutdown (native) --------------------------------------------------------------------


async def test_graceful_shutdown() -> None:
    rec = recorder()
    server = await aiosio.serve(rec.engine, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with client() as c:
            sid, _, _ = await handshake(c, base)
            async with ws_connect(base) as ws:
                opened = await recv(ws)
                assert isinstance(opened, str)
                ws_sid = json.loads(opened[1:])["sid"]
                pending = asyncio.create_task(poll(c, base, sid))
                await asyncio.sleep(0.2)
                assert rec.engine.clients_count == 2
                async with asyncio.timeout(TIMEOUT):
                    await server.close()
                response = await pending
                assert response.status_code == 200
                assert response.text == "1"
                with pytest.raises(ConnectionClosed):
                    await recv(ws, 2.0)
            assert rec.engine.clients_count == 0
            assert rec.closes[sid] == ("forced close", None)
            assert rec.closes[ws_sid] == ("forced close", None)
            assert not server.connections
            with pytest.raises(httpx.ConnectError):
                await c.get(url(base, EIO="4", transport="polling"))
    finally:
        await server.close()


# -- WebSocket rejections (abortUpgrade) -----------------------------------------------------------


async def test_websocket_rejection_body(serve: Any) -> None:
    # Reference abortUpgrade: "HTTP/1.1 400 Bad Request", Content-type: text/html, the message.
    rec = recorder()
    base = await serve(rec.engine)
    with pytest.raises(InvalidStatus) as caught:
        async with ws_connect(base, sid="nope"):
            pass
    assert caught.value.response.status_code == 400
    assert caught.value.response.body == b"Session ID unknown"
    assert caught.value.response.headers["Content-type"] == "text/html"
    (error,) = rec.errors
    assert (error.code, error.context) == (1, {"sid": "nope"})
    with pytest.raises(InvalidStatus) as caught:
        async with ws_connect(base, EIO="3"):
            pass
    assert caught.value.response.status_code == 400
    assert caught.value.response.body == b"Unsupported protocol version"
    await assert_serving(base)


async def test_websocket_refused_by_allow_request_like_the_reference(serve: Any) -> None:
    # server.ts abortUpgrade: always "HTTP/1.1 400 Bad Request" with the message as the body.
    base = await serve(aiosio.EngineServer(allow_request=_refuse_async))
    with pytest.raises(InvalidStatus) as caught:
        async with ws_connect(base):
            pass
    assert caught.value.response.body == b"why"
    assert caught.value.response.status_code == 400


async def test_ie_gets_x_xss_protection(serve: Any) -> None:
    base = await serve(aiosio.EngineServer())
    async with client(headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Trident/7.0)"}) as c:
        sid, _, response = await handshake(c, base)
        posted = await post(c, base, sid, "4x", headers={"Content-Type": TEXT})
    assert response.headers["x-xss-protection"] == "0"
    assert posted.headers["x-xss-protection"] == "0"


async def test_empty_sid_handshake_is_an_initial_request(serve: Any) -> None:
    # verify() treats ?sid= as a handshake (`if (sid)`), and the transport "headers" listener of
    # handshake() as an initial request (`!req._query.sid`): cookie and initial_headers.
    rec = recorder(cookie=True)
    rec.engine.on("initial_headers", lambda headers, request: headers.append(("X-Initial", "1")))
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, response = await handshake(c, base, sid="")
    assert response.headers.get("set-cookie") == f"io={sid}; Path=/; HttpOnly; SameSite=Lax"
    assert response.headers.get("x-initial") == "1"
