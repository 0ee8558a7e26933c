"""``AIOSIO_DEBUG``: turn on debug logging for matching loggers, as ``DEBUG=socket.io*`` does for
Node users. ``AIOSIO_DEBUG=aiosio.client*`` shows a connection's trace; ``AIOSIO_DEBUG=*`` shows
everything; several patterns are separated by commas.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import sys

__all__ = ["configure_debug", "configure_default_logging"]

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


def configure_default_logging() -> bool:
    """Show aiosio's INFO lines on stderr when the application has not configured logging.

    Python's default shows WARNING and above, through a last-resort handler, so a server started
    with ``aiosio.run()`` would not say where it listens. If neither the root logger nor the
    ``aiosio`` logger has a handler, give ``aiosio`` one (and the INFO level if it has none);
    otherwise leave logging as the application set it. Returns whether it did anything.
    """
    own = logging.getLogger("aiosio")
    if own.handlers or logging.getLogger().handlers:
        return False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    own.addHandler(handler)
    if own.level == logging.NOTSET:
        own.setLevel(logging.INFO)
    return True
