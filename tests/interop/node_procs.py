"""Long-running Node.js scripts of tests/js for the cluster tests: JSON lines out, JSON commands
in; and the helpers around them (binary values as ``{"$bin": base64}``, polling until a
condition holds). Not a test module: imported by the adapter tests."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any

import pytest

from conftest import JS_DIR
from conftest import _node

Line = dict[str, Any]


def js(value: Any) -> Any:
    """Arguments for the scripts: bytes as ``{"$bin": base64}``."""
    if isinstance(value, bytes):
        return {"$bin": base64.b64encode(value).decode()}
    if isinstance(value, list | tuple):
        return [js(v) for v in value]
    if isinstance(value, dict):
        return {k: js(v) for k, v in value.items()}
    return value


def py(value: Any) -> Any:
    """What the scripts printed, ``{"$bin": base64}`` back to bytes."""
    if isinstance(value, list):
        return [py(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$bin"}:
            return base64.b64decode(value["$bin"])
        return {k: py(v) for k, v in value.items()}
    return value


async def until(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout}s: {what or predicate}")
        await asyncio.sleep(0.02)


# -- Node.js processes ----------------------------------------------------------------------------


class NodeProc:
    """A long-running script of tests/js: JSON lines out, JSON commands in (stdin)."""

    def __init__(self, script: str, *args: str) -> None:
        self.script = script
        self.args = list(args)
        self.lines: list[Line] = []
        self.stderr = b""
        self.proc: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ids = 0

    async def start(self) -> NodeProc:
        self.proc = await asyncio.create_subprocess_exec(
            _node(),
            str(JS_DIR / self.script),
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(JS_DIR),
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        self._tasks = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]
        return self

    async def _read_stdout(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            text = raw.decode().strip()
            if text.startswith("{"):
                self.lines.append(json.loads(text))

    async def _read_stderr(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        self.stderr = await self.proc.stderr.read()

    def describe(self) -> str:
        tail = "\n".join(json.dumps(line) for line in self.lines[-30:])
        return (
            f"{self.script} {' '.join(self.args)}\nlast lines:\n{tail}\n"
            f"stderr:\n{self.stderr.decode(errors='replace')[-3000:]}"
        )

    async def wait(self, predicate: Callable[[Line], bool], timeout: float = 5.0) -> Line:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if predicate(line):
                    return line
            seen = len(self.lines)
            assert self.proc is not None
            if self.proc.returncode is not None:
                await asyncio.sleep(0.05)  # let the readers finish
                pytest.fail(f"the script exited ({self.proc.returncode}):\n{self.describe()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no such line within {timeout}s:\n{self.describe()}")
            await asyncio.sleep(0.01)

    def send(self, command: dict[str, Any]) -> None:
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())

    async def call(self, do: str, timeout: float = 8.0, **fields: Any) -> Line:
        """Run a command of cluster_node.mjs and return its result line."""
        self._ids += 1
        ident = self._ids
        self.send({"id": ident, "do": do, **fields})
        result = await self.wait(
            lambda line: line.get("type") == "result" and line.get("id") == ident, timeout
        )
        if "error" in result:
            pytest.fail(f"{do} failed in Node: {result['error']}")
        return result

    async def close(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(Exception):
                assert proc.stdin is not None
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 3)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for task in self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 3)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        await self.close()


@contextlib.asynccontextmanager
async def node_procs() -> AsyncIterator[Callable[..., Awaitable[NodeProc]]]:
    """``start(script, *args)`` starts a :class:`NodeProc`; each is closed at the end."""
    running: list[NodeProc] = []

    async def start(script: str, *args: str) -> NodeProc:
        proc = NodeProc(script, *args)
        running.append(proc)
        return await proc.start()

    try:
        yield start
    finally:
        for proc in reversed(running):
            await proc.close()
