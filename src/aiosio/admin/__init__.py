"""The official Socket.IO Admin UI (``@socket.io/admin-ui`` 0.5) against an aiosio server.

::

    from aiosio.admin import BasicAuth, instrument

    instrument(sio, auth=BasicAuth("admin", "$2b$10$..."), ui_path="/admin-ui/")

See ``docs/admin.md``.
"""

from __future__ import annotations

from aiosio.admin.auth import BasicAuth
from aiosio.admin.instrument import Admin
from aiosio.admin.instrument import Mode
from aiosio.admin.instrument import instrument
from aiosio.admin.stores import InMemoryStore
from aiosio.admin.stores import RedisStore
from aiosio.admin.stores import SessionStore

__all__ = [
    "Admin",
    "BasicAuth",
    "InMemoryStore",
    "Mode",
    "RedisStore",
    "SessionStore",
    "instrument",
]
