"""The browser client served like Node's server serves it (``serveClient``):
``<script src="/socket.io/socket.io.js">`` is how most tutorials start.

The files are the bundles of the npm package ``socket.io-client`` (its ``dist/`` folder:
``socket.io.js``, ``socket.io.min.js``, ``socket.io.msgpack.min.js``, ``socket.io.esm.min.js``
and their source maps); aiosio does not ship them. They are looked for at the first request
for one of them, in ``node_modules/socket.io-client/dist`` under the current directory or one
of its parents (where ``npm install socket.io-client`` puts them), or in the folder given to
:meth:`aiosio.Server.serve_client`, and read once. Only those eight names are answered; no path
from a request is ever joined to a folder.

As the reference: ``ETag`` is the package's version, quoted; ``Cache-Control: public,
max-age=0``; ``application/javascript`` (``application/json`` for the maps); compressed when
the client accepts it. When the package is not installed, the 404 and one log line say how to
install it, or which CDN URL to use instead.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from aiosio.engine.http import HttpRequest
from aiosio.engine.http import HttpResponse
from aiosio.engine.static import StaticFile
from aiosio.engine.static import StaticFiles
from aiosio.protocol.cors import Cors

__all__ = ["CDN_VERSION", "CLIENT_FILES", "ClientFiles", "find_client_dist"]

logger = logging.getLogger("aiosio.server")

CLIENT_FILES = frozenset(
    {
        "socket.io.esm.min.js",
        "socket.io.esm.min.js.map",
        "socket.io.js",
        "socket.io.js.map",
        "socket.io.min.js",
        "socket.io.min.js.map",
        "socket.io.msgpack.min.js",
        "socket.io.msgpack.min.js.map",
    }
)
PACKAGE_DIST = Path("node_modules") / "socket.io-client" / "dist"
# The client version the 404's CDN suggestion names: the one aiosio is tested with.
CDN_VERSION = "4.8.1"
INSTALL = "npm install socket.io-client@4"


def find_client_dist(start: Path) -> Path | None:
    """``node_modules/socket.io-client/dist`` in ``start`` or the nearest parent that has it
    (Node's own lookup), or ``None``."""
    for folder in (start, *start.parents):
        candidate = folder / PACKAGE_DIST
        if (candidate / "socket.io.min.js").is_file():
            return candidate
    return None


def _version(dist: Path) -> str:
    """The package's version (the ETag), from ``dist/../package.json``; the files' size and
    modification times when it cannot be read (a copied ``dist`` folder)."""
    try:
        version = json.loads((dist.parent / "package.json").read_text("utf-8"))["version"]
        if isinstance(version, str) and version:
            return version
    except (OSError, ValueError, KeyError, TypeError):
        pass
    stats = [(dist / name).stat() for name in sorted(CLIENT_FILES) if (dist / name).is_file()]
    return "-".join(f"{s.st_size:x}{int(s.st_mtime):x}" for s in stats) or "0"


def _load(dist: Path) -> dict[str, StaticFile]:
    etag = '"' + _version(dist) + '"'
    files = {}
    for name in sorted(CLIENT_FILES):
        path = dist / name
        if not path.is_file():
            continue
        is_map = name.endswith(".map")
        files[name] = StaticFile(
            body=path.read_bytes(),
            content_type=f"application/{'json' if is_map else 'javascript'}; charset=utf-8",
            cache_control="public, max-age=0",
            etag=etag,
            compressible=True,
        )
    return files


class ClientFiles:
    """The client bundles under the server's path (``/socket.io/socket.io.min.js``)."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self._static: StaticFiles | None = None
        self._missing: str | None = None

    @staticmethod
    def name_in(path: str, prefix: str) -> str | None:
        """The client file a request path names under ``prefix`` (the server's path), or
        ``None``."""
        if not path.startswith(prefix):
            return None
        name = path[len(prefix) :]
        if not prefix.endswith("/"):  # add_trailing_slash=False: /socket.io + /socket.io.js
            name = name[1:] if name.startswith("/") else ""
        return name if name in CLIENT_FILES else None

    async def handle(self, request: HttpRequest, name: str, cors: Cors | None) -> HttpResponse:
        """Answer ``GET``/``HEAD`` of the client file ``name``, with the server's CORS headers
        as the reference (a ``<script type="module" crossorigin>`` from another origin)."""
        cors_headers = await _cors_headers(request, cors)
        static = self._static if self._static is not None else self._open()
        response = None
        if static is not None:
            response = await static.respond(request, name, cors_headers)
        if response is not None:
            return response
        return self._not_installed(request, name, cors_headers)

    def _open(self) -> StaticFiles | None:
        if self._missing is not None:
            return None
        if self.directory is not None:
            dist = self.directory
            if not (dist / "socket.io.min.js").is_file() and (dist / "dist").is_dir():
                dist = dist / "dist"  # the package's folder was given
        else:
            found = find_client_dist(Path.cwd())
            if found is None:
                self._missing = (
                    f"the socket.io-client package is not installed: no {PACKAGE_DIST} in "
                    f"{Path.cwd()} or its parents"
                )
                logger.warning("%s; %s", self._missing, _fix())
                return None
            dist = found
        files = _load(dist)
        if not files:
            self._missing = f"no socket.io-client bundle (socket.io.min.js, ...) in {dist}"
            logger.warning("%s; %s", self._missing, _fix())
            return None
        logger.info("serving the socket.io-client %s bundles from %s", _version(dist), dist)
        self._static = StaticFiles(files)
        return self._static

    def _not_installed(
        self, request: HttpRequest, name: str, cors_headers: list[tuple[str, str]]
    ) -> HttpResponse:
        reason = self._missing or f"the socket.io-client package installed has no {name}"
        body = f"Not Found: {request.path[:200]} is not served: {reason}; {_fix()}\n"
        headers = [("Content-Type", "text/plain; charset=utf-8"), *cors_headers]
        return HttpResponse(404, headers, body.encode())


async def _cors_headers(request: HttpRequest, cors: Cors | None) -> list[tuple[str, str]]:
    origin = request.headers.get("origin")
    if cors is None or origin is None:
        return []
    try:
        allowed = await cors.call_origin(origin)
    except Exception:  # the user's origin callable; the file is public anyway
        logger.exception("the CORS origin callable raised for %r", origin[:200])
        allowed = False
    return cors.response_headers(origin, allowed)


def _fix() -> str:
    return (
        f"install it with `{INSTALL}` in the server's working directory, or pass its dist "
        "folder with sio.serve_client(directory=...), or load the client from the CDN: "
        f'<script src="https://cdn.socket.io/{CDN_VERSION}/socket.io.min.js"></script> '
        "(sio.serve_client(False) turns this off)"
    )
