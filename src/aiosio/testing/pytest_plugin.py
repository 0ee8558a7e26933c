"""pytest fixtures for testing an :class:`aiosio.Server` in memory.

Enable with ``-p aiosio.testing.pytest_plugin`` (in ``addopts``), or
``pytest_plugins = ["aiosio.testing.pytest_plugin"]`` in the top ``conftest.py``. The fixtures
are async: they need pytest-asyncio (``pip install pytest-asyncio``).

``aiosio_client``: ``client = await aiosio_client(sio, "/chat", auth={...})`` connects a
:class:`~aiosio.testing.TestClient` (the arguments of :func:`aiosio.testing.connect`); every
client it made is disconnected at the end of the test.

The module imports neither pytest nor pytest-asyncio: like every module of aiosio it imports with
the core dependencies alone; the fixtures are made when pytest loads the plugin
(:func:`pytest_configure`).
"""

from __future__ import annotations

import types
from collections.abc import AsyncIterator
from typing import Any

from aiosio.testing.client import ClientFactory
from aiosio.testing.client import TestClient
from aiosio.testing.client import open_client

__all__ = ["aiosio_clients", "pytest_configure"]


async def aiosio_clients() -> AsyncIterator[ClientFactory]:
    """The ``aiosio_client`` fixture's body: a factory of connected clients, each disconnected
    at the end."""
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


def pytest_configure(config: Any) -> None:
    """pytest's hook: register the fixtures, made with pytest-asyncio's decorator."""
    try:
        import pytest_asyncio  # only under pytest: see the module docstring
    except ImportError as exc:
        raise ImportError(
            "aiosio.testing.pytest_plugin: the aiosio_client fixture is async and needs "
            "pytest-asyncio: pip install pytest-asyncio"
        ) from exc
    fixtures = types.ModuleType("aiosio.testing.pytest_plugin.fixtures")
    fixtures.aiosio_client = pytest_asyncio.fixture(  # type: ignore[attr-defined]
        aiosio_clients, name="aiosio_client"
    )
    config.pluginmanager.register(fixtures, "aiosio.testing.fixtures")
