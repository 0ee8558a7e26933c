"""The Engine.IO server's options, declared and validated once.

:class:`EngineOptions` is what ``EngineServer(...)`` (and ``aiosio.Server(...)``, which passes
its engine options through) is configured with: each option's name, type and default is written
there and nowhere else. Every check is done at construction, with a message that names the
option, what it must be and what was given: a typo or a wrong type fails at startup, never as a
silently different server.

The two servers take the options as keywords, typed by :class:`EngineKeywords`: ``**options:
Unpack[EngineKeywords]`` (``aiosio.Server`` passes every one of them on to its engine). A
``TypedDict`` cannot be derived from a dataclass, so it lists the names and types again, with no
default and no check; mypy verifies that each is a field of :class:`EngineOptions` of the same
type where the servers call ``EngineOptions(**options)``, and ``tests/core/test_engine_options.py``
that no field is missing from it.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Collection
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Literal
from typing import TypedDict

from aiosio._options import compression_threshold
from aiosio.engine.http import HttpRequest
from aiosio.protocol.cors import Cors
from aiosio.protocol.session import EngineConfig

__all__ = [
    "KNOWN_TRANSPORTS",
    "TRANSPORTS",
    "AllowRequest",
    "Cookie",
    "EngineKeywords",
    "EngineOptions",
    "check_keywords",
    "normalize_path",
]

TRANSPORTS = ("polling", "websocket")
"""The transports a server offers by default (the reference's too: WebTransport is opt-in)."""
KNOWN_TRANSPORTS = ("polling", "websocket", "webtransport")
"""Every transport a server can offer; ``webtransport`` runs on HTTP/3 beside the HTTP server
(:mod:`aiosio.transports.webtransport`)."""

AllowRequest = Callable[[HttpRequest], Awaitable[bool | None] | bool | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Cookie:
    """The session cookie set on the polling handshake, for cookie-based sticky sessions."""

    name: str = "io"
    path: str | None = "/"
    http_only: bool = True
    same_site: Literal["lax", "strict", "none"] | None = "lax"
    secure: bool = False
    domain: str | None = None
    max_age: int | None = None

    def serialize(self, value: str) -> str:
        parts = [f"{self.name}={value}"]
        if self.max_age is not None:
            parts.append(f"Max-Age={self.max_age}")
        if self.domain:
            parts.append(f"Domain={self.domain}")
        if self.path:
            parts.append(f"Path={self.path}")
        if self.http_only:
            parts.append("HttpOnly")
        if self.secure:
            parts.append("Secure")
        if self.same_site:
            parts.append(f"SameSite={self.same_site.capitalize()}")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineOptions:
    """The options of an Engine.IO server (see ``docs/limits.md`` for each limit).

    The given values are checked in ``__post_init__``; what the server reads is normalised there
    once: :attr:`path` ends with ``/`` (unless ``add_trailing_slash=False``), :attr:`transports`
    is a tuple, and the derived
    :attr:`session_cookie`, :attr:`compression_threshold` and :attr:`session_config`."""

    path: str = "/engine.io/"
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    upgrade_timeout: float = 10.0
    max_http_buffer_size: int = 1_000_000
    transports: Sequence[str] = TRANSPORTS
    allow_upgrades: bool = True
    allow_eio3: bool = False
    allow_request: AllowRequest | None = None
    cookie: bool | str | Cookie | None = None
    http_compression: bool | int = True
    per_message_deflate: bool = False
    cors: Cors | None = None
    max_outbound_buffer: int = 16_000_000
    add_trailing_slash: bool = True
    """As the reference's ``addTrailingSlash``: ``False`` serves ``path`` without the slash
    added (``/socket.io`` then matches ``/socket.io?EIO=4`` as well as ``/socket.io/...``)."""
    max_payload_packets: int = 10_000
    shutdown_timeout: float = 5.0
    session_cookie: Cookie | None = field(init=False)
    """The cookie set on the handshake: ``cookie`` as a :class:`Cookie`, or ``None``."""
    compression_threshold: int | None = field(init=False)
    """Polling bodies of at least this many bytes are compressed (``None``: never)."""
    session_config: EngineConfig = field(init=False)
    """What every session of the server is created with."""

    def __post_init__(self) -> None:
        for name in ("ping_interval", "ping_timeout", "upgrade_timeout", "shutdown_timeout"):
            _check_seconds(name, getattr(self, name))
        for name in ("max_http_buffer_size", "max_outbound_buffer", "max_payload_packets"):
            _check_size(name, getattr(self, name))
        if not isinstance(self.add_trailing_slash, bool):
            raise TypeError("add_trailing_slash must be True or False")
        path = normalize_path(self.path)
        _set(self, "path", path if self.add_trailing_slash else path.rstrip("/") or "/")
        _set(self, "transports", _checked_transports(self.transports))
        if not isinstance(self.allow_upgrades, bool) or not isinstance(self.allow_eio3, bool):
            raise TypeError("allow_upgrades and allow_eio3 must be True or False")
        if self.allow_request is not None and not callable(self.allow_request):
            raise TypeError(
                "allow_request must be a function (request) -> None, or None, got "
                f"{type(self.allow_request).__name__}"
            )
        if self.cors is not None and not isinstance(self.cors, Cors):
            raise TypeError(f"cors must be an aiosio.Cors(...), got {type(self.cors).__name__}")
        _set(self, "session_cookie", _session_cookie(self.cookie))
        _set(
            self,
            "compression_threshold",
            compression_threshold("http_compression", self.http_compression),
        )
        # The reference's polling.upgradesTo, filtered by the transports offered (socket.ts
        # getAvailableUpgrades); WebSocket and WebTransport sessions announce none.
        upgrades = tuple(
            name
            for name in ("websocket", "webtransport")
            if self.allow_upgrades and name in self.transports
        )
        config = EngineConfig(
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            upgrade_timeout=self.upgrade_timeout,
            max_payload=self.max_http_buffer_size,
            upgrades=upgrades,
            max_payload_packets=self.max_payload_packets,
        )
        _set(self, "session_config", config)


class EngineKeywords(TypedDict, total=False):
    """Every option of :class:`EngineOptions`: the type of ``EngineServer(**options)`` and of
    ``aiosio.Server(..., **engine)`` (whose ``path`` defaults to ``/socket.io/``)."""

    path: str
    ping_interval: float
    ping_timeout: float
    upgrade_timeout: float
    max_http_buffer_size: int
    transports: Sequence[str]
    allow_upgrades: bool
    allow_eio3: bool
    allow_request: AllowRequest | None
    cookie: bool | str | Cookie | None
    http_compression: bool | int
    per_message_deflate: bool
    cors: Cors | None
    max_outbound_buffer: int
    add_trailing_slash: bool
    max_payload_packets: int
    shutdown_timeout: float


def check_keywords(
    function: Callable[..., object], given: Collection[str], accepted: Collection[str]
) -> None:
    """Raise the ``TypeError`` Python raises for an unknown keyword of ``function`` (a
    constructor whose options come in ``**keywords``, which Python does not check against
    ``accepted``), naming the option meant when the name is close to one of ``accepted`` or of
    ``function``'s own keywords (``pingInterval``: ``ping_interval``)."""
    for name in given:
        if name not in accepted:
            signature = inspect.signature(function).parameters.values()
            known = [p.name for p in signature if p.kind is p.KEYWORD_ONLY]
            close = difflib.get_close_matches(
                _snake_case(name), sorted({*accepted, *known}), 1, 0.8
            )
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(
                f"{function.__qualname__}() got an unexpected keyword argument {name!r}{hint}"
            )


def _snake_case(name: str) -> str:
    # The JavaScript spelling of an option (pingInterval) to the Python one (ping_interval).
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _set(options: EngineOptions, name: str, value: object) -> None:
    # The normalised value of a frozen dataclass's field, set once in __post_init__.
    object.__setattr__(options, name, value)


def normalize_path(path: str) -> str:
    """``/socket.io`` and ``socket.io/`` both become ``/socket.io/``, as the reference does."""
    if not isinstance(path, str) or not path:
        raise TypeError(f"path must be a non-empty string such as '/socket.io/', got {path!r}")
    path = "/" + path.strip("/")
    return path + "/" if path != "/" else "/"


def _check_seconds(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


def _check_size(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise TypeError(f"{name} must be a positive int, got {value!r}")


def _checked_transports(transports: Sequence[str]) -> tuple[str, ...]:
    if isinstance(transports, str):
        raise TypeError(f"transports must be a sequence of names, got the string {transports!r}")
    unknown = [t for t in transports if t not in KNOWN_TRANSPORTS]
    if unknown or not transports:
        raise ValueError(
            f"transports must be a non-empty subset of {KNOWN_TRANSPORTS}, got "
            f"{tuple(transports)!r}"
        )
    return tuple(transports)


def _session_cookie(cookie: bool | str | Cookie | None) -> Cookie | None:
    if cookie is True:
        return Cookie()
    if isinstance(cookie, str):
        return Cookie(name=cookie)
    if isinstance(cookie, Cookie):
        return cookie
    if cookie is None or cookie is False:
        return None
    raise TypeError(f"cookie must be True, a cookie name or aiosio.Cookie(...), got {cookie!r}")
