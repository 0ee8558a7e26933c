"""The Admin UI served by the server itself (``instrument(..., ui_path="/admin-ui/")``), so that
nobody has to open a third-party site with production credentials.

The files are the built UI the npm package ``@socket.io/admin-ui`` ships in ``ui/dist``; aiosio
does not bundle them (install them with ``npm install @socket.io/admin-ui@0.5``). They are read
once, when :func:`~aiosio.admin.instrument` runs: a request never touches the disk, and only the
files found then are served (no path from a request is ever joined to a directory).

Caching: ``index.html`` and the files without a content hash in their name are revalidated
(``no-cache`` with an ``ETag``); the hashed bundles (``js/app.0d7d7845.js``) are ``immutable``
for a year. Text files are sent compressed to clients that accept it
(:class:`~aiosio.engine.static.StaticFiles`).
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from pathlib import Path

from aiosio.engine.http import HttpRequest
from aiosio.engine.http import HttpResponse
from aiosio.engine.static import StaticFile
from aiosio.engine.static import StaticFiles

__all__ = ["UiFiles", "find_ui_dir"]

PACKAGE = "@socket.io/admin-ui"
INSTALL = "npm install @socket.io/admin-ui@0.5"
DEFAULT_DIR = Path("node_modules") / PACKAGE / "ui" / "dist"

# The types of what the UI's build holds, fixed here rather than read from the system's
# mime.types (which differs between machines and may lack .map or .woff2).
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".map": "application/json; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".txt": "text/plain; charset=utf-8",
}
# A name the bundler gave a content hash (app.0d7d7845.js): its content never changes.
HASHED = re.compile(r"\.[0-9a-f]{8,}\.[a-z0-9]+$")
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
COMPRESSIBLE = ("text/", "application/json", "image/svg+xml")


def find_ui_dir(ui_dir: str | Path | None) -> Path:
    """The folder that holds the UI's ``index.html``: ``ui_dir`` itself, or its ``ui/dist``
    (the package's folder was given), or the default under the current directory.

    :raises FileNotFoundError: no ``index.html`` there; the message has the install command.
    """
    given = Path(ui_dir) if ui_dir is not None else Path.cwd() / DEFAULT_DIR
    for candidate in (given, given / "ui" / "dist"):
        if (candidate / "index.html").is_file():
            return candidate
    raise FileNotFoundError(
        f"the Admin UI is not installed: no index.html in {given}; install it with "
        f"`{INSTALL}` (its files go to {DEFAULT_DIR}) and pass that folder as ui_dir="
    )


def _content_type(path: Path) -> str:
    known = CONTENT_TYPES.get(path.suffix.lower())
    if known is not None:
        return known
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def _load(path: Path, name: str) -> StaticFile:
    body = path.read_bytes()
    content_type = _content_type(path)
    return StaticFile(
        body=body,
        content_type=content_type,
        cache_control=IMMUTABLE if HASHED.search(name) else REVALIDATE,
        etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        compressible=content_type.startswith(COMPRESSIBLE),
    )


class UiFiles:
    """The UI's files under ``ui_path``, answered by :meth:`handle` (mounted on the server)."""

    def __init__(self, ui_path: str, ui_dir: str | Path | None) -> None:
        self.prefix = ui_path.rstrip("/")
        if not self.prefix.startswith("/"):
            raise ValueError(
                f"ui_path must be a path under '/', such as '/admin-ui/', got {ui_path!r}"
            )
        self.directory = find_ui_dir(ui_dir)
        self.files = {
            path.relative_to(self.directory).as_posix(): _load(path, path.name)
            for path in sorted(self.directory.rglob("*"))
            if path.is_file()
        }
        self._static = StaticFiles(self.files)

    async def handle(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if path == self.prefix:
            # Relative links in index.html (css/..., js/...) need the trailing slash.
            location = request.root_path + self.prefix + "/"
            if request.query_string:
                location += "?" + request.query_string
            return HttpResponse(301, [("Location", location), ("Content-Length", "0")])
        if not path.startswith(self.prefix + "/"):
            return _not_found(path)
        if request.method not in ("GET", "HEAD"):
            return HttpResponse(
                405,
                [("Allow", "GET, HEAD"), ("Content-Type", "text/plain; charset=utf-8")],
                b"Method Not Allowed\n",
            )
        name = path[len(self.prefix) + 1 :] or "index.html"
        response = await self._static.respond(request, name)
        return response if response is not None else _not_found(path)


def _not_found(path: str) -> HttpResponse:
    body = f"Not Found: the Admin UI has no file at {path[:200]}\n".encode()
    return HttpResponse(404, [("Content-Type", "text/plain; charset=utf-8")], body)
