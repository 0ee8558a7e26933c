"""Optional packages, imported where a feature needs them, never when ``aiosio`` is imported.

``pip install aiosio`` brings the core dependencies only (httptools, orjson, msgpack): the server,
the client, ``aiosio serve`` (``--workers`` included) and ``aiosio doctor`` work with them alone.
Each extra adds packages for one feature:

- ``speed``: uvloop (the native server's event loop) and websockets (its C unmasking of frames);
- ``asgi``: uvicorn and websockets (uvicorn speaks WebSocket only with websockets or wsproto);
- ``redis``: redis-py, for ``RedisAdapter`` and ``Emitter`` given a URL, ``--workers --redis``;
- ``admin``: bcrypt, for the Admin UI's basic authentication (:mod:`aiosio.admin`);
- ``metrics``: prometheus_client, for Prometheus metrics (:mod:`aiosio.metrics`);
- ``typed``: pydantic, for handlers whose payloads are validated (:mod:`aiosio.typed`);
- ``postgres``: asyncpg, for ``PostgresAdapter`` (:mod:`aiosio.adapters.postgres`);
- ``webtransport``: aioquic, for WebTransport over HTTP/3 (:mod:`aiosio.transports.webtransport`,
  the client's ``transports=[..., "webtransport"]``).

A module of aiosio never imports one of these packages at module level, except inside a ``try``
that handles its absence (a test checks every module). A feature used without its extra raises an
``ImportError`` from :func:`import_extra` that names the extra to install.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["EXTRAS", "import_extra"]

EXTRAS: dict[str, tuple[str, ...]] = {
    "speed": ("uvloop", "websockets"),
    "asgi": ("uvicorn", "websockets"),
    "redis": ("redis",),
    "admin": ("bcrypt",),
    "metrics": ("prometheus_client",),
    "typed": ("pydantic",),
    "postgres": ("asyncpg",),
    "webtransport": ("aioquic",),
}
"""The extras of the ``aiosio`` distribution and the top-level packages each one brings."""


def import_extra(module: str, *, extra: str, feature: str) -> Any:
    """Import ``module`` for ``feature``, or raise an ImportError that names ``extra``.

    :raises ImportError: ``module`` (or a package it needs) is not installed; the message says
        which feature needed it and the ``pip install`` command that brings it.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{feature} needs the {module.partition('.')[0]!r} package, which is not installed "
            f'({exc}): pip install "aiosio[{extra}]"',
            name=exc.name,
        ) from exc
