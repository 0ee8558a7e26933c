"""The Managers that clients of one server share (multiplexing, as socket.io-client's ``io()``
cache): ``aiosio.Client("http://h/a")`` and ``aiosio.Client("http://h/b")`` in one event loop use
one Engine.IO connection, unless ``force_new`` or ``multiplex=False``, or unless the manager
already has a socket for that namespace.

The cache is per event loop, held weakly both ways: a Manager stays while a client uses it, a
loop's entry while the loop lives (a program that runs many loops, or many SyncClients, kept every
Manager it ever made when this was a plain dict keyed by id(loop), and a new loop could take a
dead loop's id).
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
import weakref

from aiosio.client.host import ManagerHost
from aiosio.client.host import ManagerOptions
from aiosio.client.manager import Manager
from aiosio.protocol.parser import Parser

__all__ = ["cached_loops", "manager_for"]

_ManagerCache = weakref.WeakValueDictionary[tuple[str, str, int, str, Parser], Manager]
_managers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _ManagerCache] = (
    weakref.WeakKeyDictionary()
)
_NO_LOOP: _ManagerCache = weakref.WeakValueDictionary()  # clients made outside a running loop


def manager_for(
    *,
    scheme: str,
    host: str,
    port: int,
    namespace: str,
    options: ManagerOptions,
    ssl: ssl_module.SSLContext | None,
    share: bool,
) -> ManagerHost:
    """The Manager for a client of ``namespace``: the shared one of this server and path when
    ``share`` and it has no socket for that namespace yet, else a new one (shared from then on
    if there was none)."""
    try:
        managers = _managers.setdefault(asyncio.get_running_loop(), _ManagerCache())
    except RuntimeError:
        managers = _NO_LOOP
    # One connection has one parser: clients with different ones do not share it.
    key = (scheme.replace("ws", "http"), host, port, options.path, options.parser)
    cached = managers.get(key)
    if share and cached is not None and not cached.has_socket(namespace):
        return cached
    manager = Manager(host, port, scheme in ("https", "wss"), options, ssl=ssl)
    if share and cached is None:
        managers[key] = manager
    return manager


def cached_loops() -> list[asyncio.AbstractEventLoop]:
    """The event loops that hold shared Managers (the cache lets go of a loop that ended)."""
    return list(_managers)
