"""The ASGI app inside other ASGI apps: mounted under a sub-path of Starlette (``root_path``), in
front of another app (``other_app``), and behind uvicorn's ``--root-path``."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount
from starlette.routing import Route
from websockets.asyncio.client import connect

import aiosio
from conftest import _Uvicorn


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello from starlette")


def echo_server() -> aiosio.Server:
    sio = aiosio.Server()

    @sio.on("echo")
    def echo(socket: aiosio.Socket, *args: Any) -> tuple[Any, ...]:
        return args

    return sio


async def handshake(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await client.get(url, params={"EIO": "4", "transport": "polling"})
    assert response.status_code == 200, response.text
    assert response.text.startswith("0")
    value: dict[str, Any] = json.loads(response.text[1:])
    return value


async def websocket_echo(url: str) -> None:
    async with connect(url + "?EIO=4&transport=websocket") as ws:
        assert str(await ws.recv()).startswith("0{")
        await ws.send("40")
        assert str(await ws.recv()).startswith("40{")
        await ws.send('421["echo","hi",1]')
        assert await ws.recv() == '431["hi",1]'


@pytest.fixture
async def uvicorn_app() -> Any:
    running: list[_Uvicorn] = []

    async def start(app: Any, **config: Any) -> str:
        server = _Uvicorn(app, **config)
        await server.start()
        running.append(server)
        return f"127.0.0.1:{server.port}"

    yield start
    for server in running:
        await server.close()


async def test_mounted_under_a_sub_path(uvicorn_app: Any) -> None:
    sio = echo_server()
    app = Starlette(routes=[Route("/hello", hello), Mount("/rt", app=sio.asgi())])
    host = await uvicorn_app(app)
    async with httpx.AsyncClient() as client:
        data = await handshake(client, f"http://{host}/rt/socket.io/")
        assert data["upgrades"] == ["websocket"]
        assert (await client.get(f"http://{host}/hello")).text == "hello from starlette"
        # outside the mount, nothing answers at /socket.io/
        assert (
            await client.get(f"http://{host}/socket.io/?EIO=4&transport=polling")
        ).status_code == 404
    await websocket_echo(f"ws://{host}/rt/socket.io/")


async def test_in_front_of_another_app(uvicorn_app: Any) -> None:
    sio = echo_server()
    other = Starlette(routes=[Route("/hello", hello)])
    host = await uvicorn_app(sio.asgi(other_app=other))
    async with httpx.AsyncClient() as client:
        await handshake(client, f"http://{host}/socket.io/")
        assert (await client.get(f"http://{host}/hello")).text == "hello from starlette"
    await websocket_echo(f"ws://{host}/socket.io/")


async def test_uvicorn_root_path(uvicorn_app: Any) -> None:
    # Behind a proxy that strips /prefix, uvicorn --root-path /prefix: the engine still answers
    # at its own path, relative to the root path.
    sio = echo_server()
    host = await uvicorn_app(sio.asgi(), root_path="/prefix")
    async with httpx.AsyncClient() as client:
        await handshake(client, f"http://{host}/socket.io/")
    await websocket_echo(f"ws://{host}/socket.io/")


async def test_wrong_path_says_where_the_endpoint_is(uvicorn_app: Any) -> None:
    sio = echo_server()
    host = await uvicorn_app(sio.asgi())
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"http://{host}/wrong/", params={"EIO": "4", "transport": "polling"}
        )
    assert response.status_code == 404
    assert "/socket.io/" in response.text
    assert "path" in response.text
