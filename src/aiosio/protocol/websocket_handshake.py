"""The WebSocket opening handshake (RFC 6455 section 4): both sides' checks and keys.

The HTTP request and response themselves are the I/O layer's (the native server's httptools
parser, the client's): these functions take the method or status and the headers, lowercase
names mapped to values, and return the key to answer with or raise :class:`HandshakeError` with
what was expected and what came.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping
from typing import Final

from aiosio.protocol.errors import RemoteProtocolError

__all__ = [
    "GUID",
    "HandshakeError",
    "accept_key",
    "check_client_handshake",
    "check_server_handshake",
    "new_client_key",
    "shorten",
]

GUID: Final = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

_MAX_ECHOED = 64


class HandshakeError(RemoteProtocolError):
    """The opening handshake is not acceptable; ``str(err)`` says what was expected and got.

    ``status`` is, on the server side, the HTTP status to answer with (400, 405 for a method other
    than GET, 426 for an unsupported version), and on the client side the status the server
    answered with. ``headers`` are response headers the server should add (``Allow`` for 405,
    ``Sec-WebSocket-Version`` for 426, RFC 6455 section 4.4).
    """

    def __init__(
        self, reason: str, status: int = 400, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.headers = headers


def shorten(value: str) -> str:
    """Bound a peer-supplied value echoed into an error message."""
    return value if len(value) <= _MAX_ECHOED else value[:_MAX_ECHOED] + "..."


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for ``key`` (RFC 6455 section 4.2.2, step 5.4)."""
    digest = hashlib.sha1((key + GUID).encode(), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def new_client_key() -> str:
    """A fresh ``Sec-WebSocket-Key``: 16 random bytes, base64 (RFC 6455 section 4.1)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def _require_token(
    headers: Mapping[str, str], name: str, display: str, token: str, status: int
) -> None:
    """Check that the comma-separated header ``name`` holds ``token`` (case-insensitive)."""
    value = headers.get(name)
    if value is None:
        raise HandshakeError(
            f"missing '{display}: {token}' header (got no '{display}' header)", status
        )
    if token not in (part.strip().lower() for part in value.split(",")):
        raise HandshakeError(
            f"missing '{display}: {token}' header (got '{display}: {shorten(value)}')", status
        )


def check_client_handshake(method: str, headers: Mapping[str, str]) -> str:
    """Validate a client's upgrade request; return the ``Sec-WebSocket-Accept`` value.

    ``headers`` maps lowercase header names to values (repeated headers joined with commas).
    Follows RFC 6455 section 4.2.1. Raises :class:`HandshakeError` with the status to answer.
    """
    if method != "GET":
        raise HandshakeError(
            f"expected method 'GET' for a websocket upgrade (got '{shorten(method)}')",
            405,
            (("Allow", "GET"),),
        )
    _require_token(headers, "upgrade", "Upgrade", "websocket", 400)
    _require_token(headers, "connection", "Connection", "upgrade", 400)
    version = headers.get("sec-websocket-version")
    if version is None or version.strip() != "13":
        got = "none" if version is None else f"'{shorten(version)}'"
        raise HandshakeError(
            f"unsupported 'Sec-WebSocket-Version' (expected '13', got {got})",
            426,
            (("Sec-WebSocket-Version", "13"),),
        )
    key = headers.get("sec-websocket-key")
    if key is None:
        raise HandshakeError("missing 'Sec-WebSocket-Key' header")
    key = key.strip()
    try:
        raw = base64.b64decode(key, validate=True)
    except ValueError:  # binascii.Error, or a non-ASCII str
        raw = b""
    if len(raw) != 16:
        raise HandshakeError(
            "invalid 'Sec-WebSocket-Key' header (expected base64 of 16 bytes, "
            f"got '{shorten(key)}')"
        )
    return accept_key(key)


def check_server_handshake(status: int, headers: Mapping[str, str], key: str) -> None:
    """Validate the server's answer to our upgrade request (RFC 6455 section 4.1, client side).

    ``key`` is the ``Sec-WebSocket-Key`` we sent. Raises :class:`HandshakeError` whose
    ``status`` is the status the server answered with.
    """
    if status != 101:
        raise HandshakeError(f"expected status 101 for a websocket upgrade (got {status})", status)
    _require_token(headers, "upgrade", "Upgrade", "websocket", status)
    _require_token(headers, "connection", "Connection", "upgrade", status)
    expected = accept_key(key)
    got = headers.get("sec-websocket-accept")
    if got is None:
        raise HandshakeError(
            f"missing 'Sec-WebSocket-Accept' header (expected '{expected}')", status
        )
    if got.strip() != expected:
        raise HandshakeError(
            f"invalid 'Sec-WebSocket-Accept' header (expected '{expected}', got '{shorten(got)}')",
            status,
        )
