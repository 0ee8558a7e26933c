"""The native server: HTTP/1.1 and WebSocket on asyncio protocol objects, no task per connection.

- :mod:`.server`: :class:`NativeServer` (listening, closing, the ``--workers`` hand-off),
  :func:`serve` and :func:`run`;
- :mod:`.http`: :class:`HttpConnection`, one per TCP connection (requests in order, the limits,
  backpressure, the WebSocket upgrade);
- :mod:`.websocket`: the WebSocket channel the engine writes to, and the write batcher;
- :mod:`.tls`: the TLS handshake, run by the server so that its failures are explained;
- :mod:`.limits`: :class:`ServerLimits`.
"""

from aiosio.transports.native.http import Handoff
from aiosio.transports.native.http import HttpConnection
from aiosio.transports.native.limits import ServerLimits
from aiosio.transports.native.server import NativeServer
from aiosio.transports.native.server import loop_factory
from aiosio.transports.native.server import run
from aiosio.transports.native.server import serve

__all__ = [
    "Handoff",
    "HttpConnection",
    "NativeServer",
    "ServerLimits",
    "loop_factory",
    "run",
    "serve",
]
