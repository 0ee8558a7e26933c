"""The Admin UI served by the server itself (``instrument(..., ui_path="/admin-ui/")``), on the
native server and under uvicorn: the files of the npm package's ``ui/dist`` (installed in
tests/js by scripts/install.sh) with their content types and caching headers, beside a working
Socket.IO endpoint; nothing outside those files; a clear error when they are not installed."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiosio import Server
from aiosio.admin import instrument
from conftest import JS_DIR

UI_DIR = JS_DIR / "node_modules" / "@socket.io" / "admin-ui" / "ui" / "dist"


@pytest.fixture
async def ui(serve: Any) -> str:
    if not (UI_DIR / "index.html").is_file():
        pytest.fail("the Admin UI is not installed in tests/js: run scripts/install.sh")
    sio = Server()
    instrument(sio, auth=False, ui_path="/admin-ui/", ui_dir=UI_DIR)
    return str(await serve(sio))


def _bundle(kind: str) -> str:
    """The name of the hashed app bundle of ``kind`` (js or css), as index.html links it."""
    return next((UI_DIR / kind).glob(f"app.*.{kind}")).name


async def test_index_and_bundles(ui: str) -> None:
    async with httpx.AsyncClient(base_url=ui) as http:
        redirect = await http.get("/admin-ui")
        assert redirect.status_code == 301
        assert redirect.headers["location"] == "/admin-ui/"

        index = await http.get("/admin-ui/")
        assert index.status_code == 200
        assert index.headers["content-type"] == "text/html; charset=utf-8"
        assert index.headers["cache-control"] == "no-cache"
        assert index.content == (UI_DIR / "index.html").read_bytes()
        assert (await http.get("/admin-ui/index.html")).content == index.content

        again = await http.get("/admin-ui/", headers={"if-none-match": index.headers["etag"]})
        assert again.status_code == 304
        assert again.content == b""

        script = f"/admin-ui/js/{_bundle('js')}"
        js = await http.get(script, headers={"accept-encoding": "gzip"})
        assert js.status_code == 200
        assert js.headers["content-type"] == "text/javascript; charset=utf-8"
        assert js.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert js.headers["content-encoding"] == "gzip"
        assert js.content == (UI_DIR / "js" / _bundle("js")).read_bytes()  # httpx inflated it
        raw = await http.get(script, headers={"accept-encoding": "identity"})
        assert "content-encoding" not in raw.headers
        assert raw.content == js.content

        css = await http.get(f"/admin-ui/css/{_bundle('css')}")
        assert css.headers["content-type"] == "text/css; charset=utf-8"
        icon = await http.get("/admin-ui/favicon.png")
        assert icon.headers["content-type"] == "image/png"
        assert icon.headers["cache-control"] == "no-cache"
        svg = next((UI_DIR / "img").glob("*.svg")).name
        assert (await http.get(f"/admin-ui/img/{svg}")).headers["content-type"] == "image/svg+xml"

        head = await http.head("/admin-ui/", headers={"accept-encoding": "identity"})
        assert head.status_code == 200
        assert head.headers["content-length"] == str(len(index.content))
        assert head.content == b""


async def test_only_the_ui_files(ui: str) -> None:
    async with httpx.AsyncClient(base_url=ui) as http:
        for path in (
            "/admin-ui/nothing.js",
            "/admin-ui/../package.json",
            "/admin-ui/%2e%2e/package.json",
            "/admin-ui/js/../../package.json",
            "/admin-uix/index.html",
        ):
            answer = await http.get(path)
            assert answer.status_code == 404, path
        refused = await http.post("/admin-ui/index.html", content=b"x")
        assert refused.status_code == 405
        assert refused.headers["allow"] == "GET, HEAD"
        # The Socket.IO endpoint is untouched.
        handshake = await http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
        assert handshake.status_code == 200
        assert handshake.text.startswith('0{"sid":')


async def test_compressed_body_is_gzip(ui: str) -> None:
    async with httpx.AsyncClient(base_url=ui) as http:
        name = f"/admin-ui/js/{_bundle('js')}"
        async with http.stream("GET", name, headers={"accept-encoding": "gzip"}) as answer:
            body = b"".join([chunk async for chunk in answer.aiter_raw()])
        assert gzip.decompress(body) == (UI_DIR / "js" / _bundle("js")).read_bytes()
        assert answer.headers["content-length"] == str(len(body))
        assert answer.headers["vary"] == "Accept-Encoding"


def test_missing_ui_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"npm install @socket\.io/admin-ui@0\.5"):
        instrument(Server(), auth=False, ui_path="/admin-ui/", ui_dir=tmp_path)


def test_the_package_folder_is_accepted() -> None:
    admin = instrument(Server(), auth=False, ui_path="/ui/", ui_dir=UI_DIR.parent.parent)
    assert admin.ui is not None
    assert "index.html" in admin.ui.files


def test_ui_path_is_a_path() -> None:
    with pytest.raises(ValueError, match="ui_path"):
        instrument(Server(), auth=False, ui_path="admin-ui", ui_dir=UI_DIR)
