"""permessage-deflate negotiation (RFC 7692 section 7): the server's answer to an offer, the
client's offer and its check of the answer. The compression itself runs in
:class:`~aiosio.protocol.websocket.WebSocketProtocol`, built from the :class:`DeflateParams`
negotiated here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aiosio.protocol.websocket_handshake import HandshakeError
from aiosio.protocol.websocket_handshake import shorten

__all__ = [
    "DeflateParams",
    "accept_deflate_response",
    "client_deflate_offer",
    "negotiate_deflate",
]

_EXTENSION: Final = "permessage-deflate"
_MAX_EXTENSIONS_HEADER: Final = 4096
_MAX_EXTENSION_OFFERS: Final = 32
# RFC 7692 section 7.1.2.1: "a decimal integer value without leading zeros between 8 to 15".
_WINDOW_BITS: Final = {str(bits): bits for bits in range(8, 16)}
_SERVER_NCT: Final = "server_no_context_takeover"
_CLIENT_NCT: Final = "client_no_context_takeover"
_SERVER_BITS: Final = "server_max_window_bits"
_CLIENT_BITS: Final = "client_max_window_bits"


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """Negotiated permessage-deflate parameters, named from the RFC (server/client) viewpoint.

    Both ends build their :class:`WebSocketProtocol` from the same value; the protocol picks the
    ``server_*`` or ``client_*`` half for its compressor according to its :class:`Side`.
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15


def _parse_deflate_params(params: list[str], *, response: bool) -> dict[str, int | None] | str:
    """Parse ``name[=value]`` extension parameters; return them, or what is wrong as a string.

    ``client_max_window_bits`` may come without a value in an offer, never in a response.
    Values may be quoted (RFC 7692 section 7.1: "quoted-string ... MUST conform to the token").
    """
    seen: dict[str, int | None] = {}
    for param in params:
        name, eq, value = param.partition("=")
        name = name.strip().lower()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if name in seen:
            return f"duplicate parameter '{shorten(name)}'"
        if name in (_SERVER_NCT, _CLIENT_NCT):
            if eq:
                return f"parameter '{name}' takes no value (got '{shorten(value)}')"
            seen[name] = None
        elif name in (_SERVER_BITS, _CLIENT_BITS):
            if not eq:
                if name == _SERVER_BITS or response:
                    return f"parameter '{name}' requires a value"
                seen[name] = None
                continue
            bits = _WINDOW_BITS.get(value)
            if bits is None:
                return f"invalid '{name}' value (expected 8 to 15, got '{shorten(value)}')"
            seen[name] = bits
        else:
            return f"unknown parameter '{shorten(name)}'"
    return seen


def negotiate_deflate(offer: str | None, enabled: bool) -> tuple[str | None, DeflateParams | None]:
    """Server side: accept the first acceptable permessage-deflate offer.

    ``offer`` is the request's ``Sec-WebSocket-Extensions`` value. Returns the response header
    value and the negotiated parameters, or ``(None, None)`` when disabled, when nothing is
    acceptable, or when the header is absurdly large (more than 4096 characters or 32 offers:
    declined outright so the work stays bounded).

    Offers are split on commas without honouring quoted strings; a quoted comma in some other
    extension's parameter only makes that element unparsable, and it is skipped.
    """
    if not enabled or not offer or len(offer) > _MAX_EXTENSIONS_HEADER:
        return None, None
    if offer.count(",") >= _MAX_EXTENSION_OFFERS:
        return None, None
    for extension in offer.split(","):
        name, *raw_params = extension.split(";")
        if name.strip().lower() != _EXTENSION:
            continue
        params = _parse_deflate_params(raw_params, response=False)
        if isinstance(params, str):
            continue  # RFC 7692 section 5: decline this offer, consider the next one
        response = [_EXTENSION]
        # RFC 7692 section 7.1.1.1: a server accepting server_no_context_takeover must echo it.
        if _SERVER_NCT in params:
            response.append(_SERVER_NCT)
        # Section 7.1.1.2: echoing client_no_context_takeover lets us drop the inflater state
        # between messages too.
        if _CLIENT_NCT in params:
            response.append(_CLIENT_NCT)
        server_bits = params.get(_SERVER_BITS) or 15
        if _SERVER_BITS in params:  # section 7.1.2.1: the response must carry it
            response.append(f"{_SERVER_BITS}={server_bits}")
        # Section 7.1.2.2: without a value the client only says it understands the parameter;
        # we leave its window at 15. With a value we echo it.
        client_bits = params.get(_CLIENT_BITS) or 15
        if params.get(_CLIENT_BITS) is not None:
            response.append(f"{_CLIENT_BITS}={client_bits}")
        return "; ".join(response), DeflateParams(
            server_no_context_takeover=_SERVER_NCT in params,
            client_no_context_takeover=_CLIENT_NCT in params,
            server_max_window_bits=server_bits,
            client_max_window_bits=client_bits,
        )
    return None, None


def client_deflate_offer() -> str:
    """Client side: the ``Sec-WebSocket-Extensions`` value we offer."""
    return f"{_EXTENSION}; {_CLIENT_BITS}"


def accept_deflate_response(header: str | None, *, offered: bool = True) -> DeflateParams | None:
    """Client side: check the server's ``Sec-WebSocket-Extensions`` answer to our offer
    (``offered=False``: we offered no extension at all).

    Returns ``None`` when the server declined compression. Raises :class:`HandshakeError` when
    the answer names an extension we did not offer or parameters RFC 7692 forbids; the client
    must then fail the connection (RFC 6455 section 4.1, RFC 7692 section 5).
    """
    if header is None or not header.strip():
        return None
    if not offered:
        raise HandshakeError(
            f"unexpected extension '{shorten(header.strip())}' (offered none: "
            "per_message_deflate is off)",
            101,
        )
    if len(header) > _MAX_EXTENSIONS_HEADER:
        raise HandshakeError(
            "invalid 'Sec-WebSocket-Extensions' header (expected at most "
            f"{_MAX_EXTENSIONS_HEADER} characters, got {len(header)})",
            101,
        )
    extensions = [ext for ext in header.split(",") if ext.strip()]
    if len(extensions) != 1:
        raise HandshakeError(
            "invalid 'Sec-WebSocket-Extensions' header (expected one 'permessage-deflate', "
            f"got '{shorten(header)}')",
            101,
        )
    name, *raw_params = extensions[0].split(";")
    if name.strip().lower() != _EXTENSION:
        raise HandshakeError(
            f"unexpected extension '{shorten(name.strip())}' (offered only '{_EXTENSION}')", 101
        )
    params = _parse_deflate_params(raw_params, response=True)
    if isinstance(params, str):
        raise HandshakeError(f"invalid permessage-deflate response: {params}", 101)
    return DeflateParams(
        server_no_context_takeover=_SERVER_NCT in params,
        client_no_context_takeover=_CLIENT_NCT in params,
        server_max_window_bits=params.get(_SERVER_BITS) or 15,
        client_max_window_bits=params.get(_CLIENT_BITS) or 15,
    )
