"""aiosio: a Socket.IO server and client for asyncio, wire-compatible with socket.io 4.x."""

from __future__ import annotations

from aiosio.engine.http import HttpRequest, HttpResponse
from aiosio.engine.server import ConnectionRejected, Cookie, EngineServer, EngineSocket
from aiosio.protocol.cors import Cors
from aiosio.transports.native import NativeServer, ServerLimits, run, serve

__all__ = [
    "ConnectionRejected",
    "Cookie",
    "Cors",
    "EngineServer",
    "EngineSocket",
    "HttpRequest",
    "HttpResponse",
    "NativeServer",
    "ServerLimits",
    "__version__",
    "run",
    "serve",
]

__version__ = "0.1.0"
