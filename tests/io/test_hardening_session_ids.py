"""HARDENING 17: session ids carry at least 120 random bits, on one server and under
``aiosio serve --workers``, where the first character of a session id names its worker."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _eio import handshake

import aiosio
from conftest import free_port

URLSAFE = re.compile(r"[A-Za-z0-9_-]+")


async def sids(base: str, count: int) -> list[str]:
    async with httpx.AsyncClient(timeout=5) as client:
        return [(await handshake(client, base, "/socket.io/"))[0] for _ in range(count)]


async def test_session_ids_carry_120_random_bits(serve: Any) -> None:
    base = await serve(aiosio.Server())
    ids = await sids(base, 50)
    assert len(set(ids)) == len(ids)
    for sid in ids:
        assert URLSAFE.fullmatch(sid), sid
        assert len(sid) >= 20, sid  # 20 base64url characters: 120 bits


APP = textwrap.dedent(
    """
    import aiosio

    sio = aiosio.Server()
    """
)


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[str]:
    (tmp_path / "ids_app.py").write_text(APP)
    port = free_port()
    log = tmp_path / "server.log"
    # the workers run the aiosio this test imports (a worktree's, when run from one)
    source = str(Path(aiosio.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), source])}
    command = [sys.executable, "-m", "aiosio", "serve", "ids_app:sio", "--workers", "2"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(200):
            if b"listening" in log.read_bytes():
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"the workers did not start:\n{log.read_text()}")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_session_ids_under_workers_carry_120_random_bits(workers: str) -> None:
    ids = await sids(workers, 20)
    assert len(set(ids)) == len(ids)
    for sid in ids:
        assert URLSAFE.fullmatch(sid), sid
        assert len(sid[1:]) >= 20, sid  # after the worker's prefix: 120 bits
