"""``AIOSIO_DEBUG``: turn on debug logging for matching loggers, as ``DEBUG=socket.io*`` does for
Node users. ``AIOSIO_DEBUG=aiosio.client*`` shows a connection's trace; ``AIOSIO_DEBUG=*`` shows
everything; several patterns are separated by commas.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import sys

__all__ = ["configure_debug"]

_LOGGERS = (
    "aiosio.engine",
    "aiosio.server",
    "aiosio.server.http",
    "aiosio.server.asgi",
    "aiosio.adapter",
    "aiosio.client",
    "aiosio.client.manager",
    "aiosio.client.socket",
    "aiosio.client.engine",
    "aiosio.client.http",
    "aiosio.client.trace",
)


def configure_debug(value: str | None = None) -> list[str]:
    """Enable DEBUG on the aiosio loggers matching ``value`` (default: ``$AIOSIO_DEBUG``);
    returns their names."""
    value = os.environ.get("AIOSIO_DEBUG", "") if value is None else value
    patterns = [p.strip() for p in value.split(",") if p.strip()]
    if not patterns:
        return []
    enabled = []
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    for name in _LOGGERS:
        if any(
            fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(name, p + ".*") for p in patterns
        ):
            logger = logging.getLogger(name)
            logger.setLevel(logging.DEBUG)
            if not any(getattr(h, "_aiosio_debug", False) for h in logger.handlers):
                handler._aiosio_debug = True  # type: ignore[attr-defined]
                logger.addHandler(handler)
                logger.propagate = False
            enabled.append(name)
    return enabled
