"""Files answered from memory: read once from a folder an npm package installed, never joined
to a path from a request, revalidated by ``ETag`` and sent compressed to clients that accept it.

What the server serves beside Socket.IO: the browser client's bundles
(``/socket.io/socket.io.min.js``, :mod:`aiosio.server.client_files`) and the Admin UI
(:mod:`aiosio.admin.ui`).
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from dataclasses import dataclass

from aiosio.engine.http import HttpRequest
from aiosio.engine.http import HttpResponse

__all__ = ["StaticFile", "StaticFiles", "accepted_encoding", "etag_matches"]

# Smaller bodies are not worth a compressed copy (and a Content-Encoding header).
MIN_COMPRESSED = 1024


@dataclass(frozen=True, slots=True)
class StaticFile:
    """One file: its bytes and the headers it is served with."""

    body: bytes
    content_type: str
    cache_control: str
    etag: str
    """Quoted, as the standard wants it (``"4.8.1"``)."""
    compressible: bool


def etag_matches(etag: str, if_none_match: str) -> bool:
    """True when ``If-None-Match`` names ``etag``, strong or weak (``W/"4.8.1"``), or ``*``."""
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate in (etag, "W/" + etag, "*"):
            return True
    return False


def accepted_encoding(accept_encoding: str) -> str | None:
    """``gzip`` or ``deflate`` (in that order of preference, as the reference after ``br``,
    which the standard library cannot write) when ``Accept-Encoding`` accepts it, else
    ``None``. A coding with ``q=0`` is refused."""
    accepted: set[str] = set()
    for item in accept_encoding.lower().split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip()
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            accepted.add(coding)
    for coding in ("gzip", "deflate"):
        if coding in accepted or "*" in accepted:
            return coding
    return None


def _compress(coding: str, body: bytes) -> bytes:
    if coding == "gzip":
        return gzip.compress(body, 6, mtime=0)
    return zlib.compress(body, 6)


class StaticFiles:
    """Files by name, answered by :meth:`respond`. Compressed copies are made on first
    demand (in a thread: a bundle takes a tenth of a second) and kept."""

    def __init__(self, files: dict[str, StaticFile]) -> None:
        self.files = files
        self._compressed: dict[tuple[str, str], bytes] = {}

    async def respond(
        self, request: HttpRequest, name: str, extra_headers: list[tuple[str, str]] | None = None
    ) -> HttpResponse | None:
        """The response for the file ``name`` (``None`` when there is none): 304 when the
        client's copy is current, the body compressed when the client accepts it (the
        transports leave the body out for ``HEAD``)."""
        found = self.files.get(name)
        if found is None:
            return None
        headers = [
            ("Cache-Control", found.cache_control),
            ("ETag", found.etag),
            ("Vary", "Accept-Encoding"),
            *(extra_headers or ()),
        ]
        if etag_matches(found.etag, request.headers.get("if-none-match", "")):
            return HttpResponse(304, headers)
        body = found.body
        coding = None
        if found.compressible and len(body) >= MIN_COMPRESSED:
            coding = accepted_encoding(request.headers.get("accept-encoding", ""))
        if coding is not None:
            body = await self._compressed_body(name, coding, found)
            headers.append(("Content-Encoding", coding))
        headers += [
            ("Content-Type", found.content_type),
            ("X-Content-Type-Options", "nosniff"),
            ("Content-Length", str(len(body))),
        ]
        return HttpResponse(200, headers, body)

    async def _compressed_body(self, name: str, coding: str, found: StaticFile) -> bytes:
        key = (name, coding)
        compressed = self._compressed.get(key)
        if compressed is None:
            compressed = await asyncio.to_thread(_compress, coding, found.body)
            self._compressed[key] = compressed
        return compressed
