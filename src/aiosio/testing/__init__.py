"""Testing a :class:`aiosio.Server` without a port: the real client, in memory.

``async with aiosio.testing.connect(sio) as client:`` connects :class:`TestClient`, an
:class:`aiosio.Client`, to ``sio`` through a WebSocket in memory
(:mod:`aiosio.testing.memory`): the client, the server and the protocol encoders are the ones
used in production, so a test sees what a real client sees (acks, rooms, broadcasts, middleware
refusals, disconnect reasons). pytest fixtures: :mod:`aiosio.testing.pytest_plugin`. Imports
nothing beyond aiosio's own dependencies (pytest only in the plugin). See docs/testing.md.
"""

from __future__ import annotations

from aiosio.testing.client import ClientFactory
from aiosio.testing.client import Received
from aiosio.testing.client import TestClient
from aiosio.testing.client import WaitTimeout
from aiosio.testing.client import connect
from aiosio.testing.client import open_client
from aiosio.testing.memory import MemoryPipe
from aiosio.testing.memory import ServerOpener

__all__ = [
    "ClientFactory",
    "MemoryPipe",
    "Received",
    "ServerOpener",
    "TestClient",
    "WaitTimeout",
    "connect",
    "open_client",
]
