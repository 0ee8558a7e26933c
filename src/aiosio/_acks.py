"""Waiting for an acknowledgement, for the server's sockets and the client alike: the answer,
or :class:`~aiosio.errors.AckTimeout` once the time limit has passed."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from aiosio.errors import AckTimeout

__all__ = ["wait_ack"]

T = TypeVar("T")


async def wait_ack(
    future: asyncio.Future[T], timeout: float | None, missing: str, *args: object
) -> T:
    """``future``'s result, waited for at most ``timeout`` seconds (``None``: no limit).

    Past the limit ``future`` is cancelled and :class:`AckTimeout` raised, its message
    ``missing % args`` (what was not acknowledged, by whom) followed by ``within {timeout}s``:
    formatted only then, not for every acknowledgement that arrives.
    """
    try:
        return await asyncio.wait_for(future, timeout)
    except TimeoutError:
        raise AckTimeout(f"{missing % args} within {timeout}s") from None
