"""aiosio: a Socket.IO server and client for asyncio, wire-compatible with socket.io 4.x."""

from __future__ import annotations

from aiosio._compiled import compiled_modules
from aiosio._debug import configure_debug
from aiosio.client.errors import ConnectError
from aiosio.client.errors import Stage
from aiosio.client.socket import Client
from aiosio.client.sync import SyncClient
from aiosio.emitter import Emitter
from aiosio.engine.http import HttpRequest
from aiosio.engine.http import HttpResponse
from aiosio.engine.server import ConnectionRejected
from aiosio.engine.server import Cookie
from aiosio.engine.server import EngineServer
from aiosio.engine.server import EngineSocket
from aiosio.errors import AckTimeout
from aiosio.errors import AiosioError
from aiosio.errors import ConnectionRefused
from aiosio.errors import Disconnected
from aiosio.errors import EncodingError
from aiosio.errors import FetchSocketsTimeout
from aiosio.protocol.cors import Cors
from aiosio.protocol.limits import Limits
from aiosio.server.broadcast import BroadcastOperator
from aiosio.server.namespace import Namespace
from aiosio.server.remote import RemoteSocket
from aiosio.server.server import Recovery
from aiosio.server.server import Server
from aiosio.server.socket import Handshake
from aiosio.server.socket import Socket
from aiosio.transports.asgi import AsgiApp
from aiosio.transports.native import NativeServer
from aiosio.transports.native import ServerLimits
from aiosio.transports.native import run
from aiosio.transports.native import serve
from aiosio.transports.webtransport import WebTransport

__all__ = [
    "AckTimeout",
    "AiosioError",
    "AsgiApp",
    "BroadcastOperator",
    "Client",
    "ConnectError",
    "ConnectionRefused",
    "ConnectionRejected",
    "Cookie",
    "Cors",
    "Disconnected",
    "Emitter",
    "EncodingError",
    "EngineServer",
    "EngineSocket",
    "FetchSocketsTimeout",
    "Handshake",
    "HttpRequest",
    "HttpResponse",
    "Limits",
    "Namespace",
    "NativeServer",
    "Recovery",
    "RemoteSocket",
    "Server",
    "ServerLimits",
    "Socket",
    "Stage",
    "SyncClient",
    "WebTransport",
    "__mypyc__",
    "__version__",
    "run",
    "serve",
]

__version__ = "0.1.0"
#: The modules this installation runs compiled by mypyc (a wheel built where mypyc and a C
#: compiler were at hand: docs/performance.md, "The compiled build"); ``()`` when pure Python.
__mypyc__: tuple[str, ...] = compiled_modules()

configure_debug()
