"""What ``aiosio doctor`` is asked to check: the command's options as one value."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any

from aiosio.client.http import Trace
from aiosio.client.proxy import ProxyOption

__all__ = ["DoctorOptions"]


@dataclass(slots=True, kw_only=True)
class DoctorOptions:
    url: str
    path: str | None = None
    namespace: str | None = None
    auth: dict[str, Any] | None = None
    origin: str | None = None
    credentials: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    transport: str | None = None  # "polling" or "websocket": only that one
    client: str | None = None  # "js" or "python": the language of the fixes (None: both)
    soak: float = 0.0
    probe_payload: bool = False
    insecure: bool = False
    ca: str | None = None
    timeout: float = 10.0
    sticky_sessions: int = 6
    sticky_requests: int = 3
    ping_samples: int = 5
    trace: Trace | None = None
    proxy: ProxyOption = None  # None: HTTP_PROXY/HTTPS_PROXY/NO_PROXY, as the client
    # WebTransport: pinned SHA-256 certificate hashes (base64 or hex), the UDP port (None: the
    # URL's port number).
    certificate_hashes: list[str] = field(default_factory=list)
    webtransport_port: int | None = None
