"""The browser client served like Node's server serves it (``serveClient``, on by default):
``/socket.io/socket.io.js`` and the other bundles of the npm package ``socket.io-client``
(installed in tests/js by scripts/install.sh), with the reference's headers, caching and
compression, on the native server and under uvicorn; a 404 that says how to get them when the
package is not installed; and a page written as the tutorials write it working in chromium."""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiosio import Server
from aiosio.engine.http import HttpRequest
from aiosio.engine.http import HttpResponse
from aiosio.server.client_files import CLIENT_FILES
from conftest import JS_DIR
from conftest import chromium
from conftest import run_node

PACKAGE = JS_DIR / "node_modules" / "socket.io-client"
DIST = PACKAGE / "dist"
VERSION = json.loads((PACKAGE / "package.json").read_text())["version"]


@pytest.fixture
def installed() -> Path:
    if not (DIST / "socket.io.min.js").is_file():
        pytest.fail("socket.io-client is not installed in tests/js: run scripts/install.sh")
    return DIST


async def test_every_bundle_with_the_reference_headers(serve: Any, installed: Path) -> None:
    sio = Server()
    sio.serve_client(directory=installed)
    url = await serve(sio)
    async with httpx.AsyncClient(base_url=url) as http:
        for name in sorted(CLIENT_FILES):
            response = await http.get(f"/socket.io/{name}", headers={"accept-encoding": "identity"})
            assert response.status_code == 200, name
            kind = "json" if name.endswith(".map") else "javascript"
            assert response.headers["content-type"] == f"application/{kind}; charset=utf-8"
            assert response.headers["cache-control"] == "public, max-age=0"
            assert response.headers["etag"] == f'"{VERSION}"'
            assert "content-encoding" not in response.headers
            assert response.content == (installed / name).read_bytes()
        # The package's folder works as well as its dist folder.
        sio.serve_client(directory=installed.parent)
        assert (await http.get("/socket.io/socket.io.js")).status_code == 200


async def test_revalidation_compression_and_head(serve: Any, installed: Path) -> None:
    sio = Server()
    sio.serve_client(directory=installed)
    url = await serve(sio)
    source = (installed / "socket.io.js").read_bytes()
    async with httpx.AsyncClient(base_url=url) as http:
        for etag in (f'"{VERSION}"', f'W/"{VERSION}"', f'"0.0.1", "{VERSION}"'):
            again = await http.get("/socket.io/socket.io.js", headers={"if-none-match": etag})
            assert again.status_code == 304, etag
            assert again.content == b""
        stale = await http.get("/socket.io/socket.io.js", headers={"if-none-match": '"0.0.1"'})
        assert stale.status_code == 200

        async with http.stream(
            "GET", "/socket.io/socket.io.js", headers={"accept-encoding": "gzip"}
        ) as raw:
            assert raw.headers["content-encoding"] == "gzip"
            assert gzip.decompress(b"".join([chunk async for chunk in raw.aiter_raw()])) == source
        async with http.stream(
            "GET", "/socket.io/socket.io.js", headers={"accept-encoding": "deflate"}
        ) as raw:
            assert raw.headers["content-encoding"] == "deflate"
            assert zlib.decompress(b"".join([chunk async for chunk in raw.aiter_raw()])) == source
        refused = await http.get(
            "/socket.io/socket.io.js", headers={"accept-encoding": "gzip;q=0, deflate;q=0"}
        )
        assert "content-encoding" not in refused.headers
        assert refused.content == source

        head = await http.head("/socket.io/socket.io.js", headers={"accept-encoding": "identity"})
        assert head.status_code == 200
        assert head.headers["content-length"] == str(len(source))
        assert head.content == b""


async def test_only_the_bundles_and_socketio_beside(serve: Any, installed: Path) -> None:
    sio = Server()
    sio.serve_client(directory=installed)
    url = await serve(sio)
    async with httpx.AsyncClient(base_url=url) as http:
        for path in (
            "/socket.io/socket.io.js.bak",
            "/socket.io/../socket.io.js",
            "/socket.io/dist/socket.io.js",
            "/socket.io/package.json",
            "/socket.io/socket.io.JS",
        ):
            response = await http.get(path)
            assert response.status_code != 200, path
            assert b"socket.io-client" not in response.content, path
        handshake = await http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
        assert handshake.status_code == 200
        assert handshake.text.startswith('0{"sid":')
        posted = await http.post("/socket.io/socket.io.js", content=b"x")
        assert posted.status_code != 200


async def test_turned_off_like_serve_client_false(serve: Any, installed: Path) -> None:
    sio = Server()
    sio.serve_client(False)
    url = await serve(sio)
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.get("/socket.io/socket.io.js")
    assert response.status_code == 400  # the engine's answer, as Node's with serveClient(false)
    assert b"npm install" not in response.content


async def test_found_under_the_working_directory_or_a_parent(
    serve: Any, installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "socket.io-client").symlink_to(installed.parent)
    deep = tmp_path / "app" / "src"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    url = await serve(Server())  # on by default, as Node's serveClient
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.get("/socket.io/socket.io.min.js")
    assert response.status_code == 200
    assert response.content == (installed / "socket.io.min.js").read_bytes()


async def test_not_installed_says_how_to_get_it(
    serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    url = await serve(Server())
    caplog.set_level(logging.WARNING, logger="aiosio")
    async with httpx.AsyncClient(base_url=url) as http:
        first = await http.get("/socket.io/socket.io.js")
        second = await http.get("/socket.io/socket.io.min.js")
    for response in (first, second):
        assert response.status_code == 404
        text = response.text
        assert "socket.io-client package is not installed" in text
        assert "npm install socket.io-client@4" in text
        assert "https://cdn.socket.io/4.8.1/socket.io.min.js" in text
        assert "serve_client(directory=" in text
    warnings = [
        r for r in caplog.records if "socket.io-client package is not installed" in r.message
    ]
    assert len(warnings) == 1  # once, not at every request


@pytest.mark.interop
@pytest.mark.parametrize("server_kind", ["native"], indirect=True)
async def test_the_tutorial_page_in_chromium(serve: Any, installed: Path) -> None:
    page = b"""<!doctype html><html><body>
<script src="/socket.io/socket.io.js"></script>
<script>
  if (typeof io === "undefined") {
    window.outcome = { io: "undefined" };
  } else {
    const socket = io();
    socket.on("connect", () => {
      socket.emit("echo", "hello", (answer) => {
        window.outcome = { io: typeof io, connected: socket.connected, echo: answer };
      });
    });
    socket.on("connect_error", (err) => {
      window.outcome = { io: typeof io, error: err.message };
    });
  }
</script></body></html>"""

    async def index(_request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, [("Content-Type", "text/html; charset=utf-8")], page)

    sio = Server()
    sio.serve_client(directory=installed)
    sio.mount("/page", index)

    @sio.on("echo")
    def echo(_socket: Any, text: str) -> str:
        return text.upper()

    url = await serve(sio)
    (result,) = await run_node("client_page.mjs", "--url", f"{url}/page", "--chromium", chromium())
    assert result.get("error") is None, result
    assert result == {**result, "io": "function", "connected": True, "echo": "HELLO"}
