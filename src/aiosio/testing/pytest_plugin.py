"""pytest fixtures for testing an :class:`aiosio.Server` in memory.

Enable with ``-p aiosio.testing.pytest_plugin`` (in ``addopts``), or
``pytest_plugins = ["aiosio.testing.pytest_plugin"]`` in the top ``conftest.py``. The fixtures
are async: they need pytest-asyncio (``pip install pytest-asyncio``).

``aiosio_client``: ``client = await aiosio_client(sio, "/chat", auth={...})`` connects a
:class:`~aiosio.testing.TestClient` (the arguments of :func:`aiosio.testing.connect`); every
client it made is disconnected at the end of the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiosio.testing.client import ClientFactory, TestClient, open_client

__all__ = ["aiosio_client"]

try:
    import pytest_asyncio
except ImportError as exc:  # pragma: no cover - pytest-asyncio is a test dependency of aiosio
    raise ImportError(
        "aiosio.testing.pytest_plugin: the aiosio_client fixture is async and needs "
        'pytest-asyncio: pip install pytest-asyncio (pip install "aiosio[test]" brings it)'
    ) from exc


async def _clients() -> AsyncIterator[ClientFactory]:
    made: list[TestClient] = []

    async def factory(server: Any, namespace: str = "/", **options: Any) -> TestClient:
        client = await open_client(server, namespace, **options)
        made.append(client)
        return client

    try:
        yield factory
    finally:
        for client in made:
            await client.disconnect()


aiosio_client = pytest_asyncio.fixture(_clients, name="aiosio_client")
