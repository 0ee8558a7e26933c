"""Waiting for an acknowledgement (``aiosio._acks.wait_ack``): the one rule the server's
sockets and the client share for the answer, the time limit and the error past it."""

from __future__ import annotations

import asyncio

import pytest

from aiosio._acks import wait_ack
from aiosio.errors import AckTimeout


async def test_the_answer_is_returned_without_a_limit() -> None:
    future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(future.set_result, [1, 2])
    assert await wait_ack(future, None, "%r was not acknowledged", "q") == [1, 2]


async def test_an_answer_already_there_beats_a_zero_limit() -> None:
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    future.set_result("ok")
    assert await wait_ack(future, 0, "%r was not acknowledged", "q") == "ok"


async def test_past_the_limit_the_wait_is_cancelled_and_says_what_was_missing() -> None:
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    # The event name is an argument of the message, never its format: a '%' in it is text.
    with pytest.raises(AckTimeout, match=r"^socket s1 did not acknowledge '50%' within 0s$"):
        await wait_ack(future, 0, "socket %s did not acknowledge %r", "s1", "50%")
    assert future.cancelled()
    with pytest.raises(AckTimeout) as info:
        await wait_ack(asyncio.get_running_loop().create_future(), 0, "x")
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
