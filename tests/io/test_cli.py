"""The ``aiosio`` command as a user meets it: help, version, options, a wrong target, no uvloop,
and what the log shows with Python's default logging.

Argument handling runs in-process through ``aiosio.cli.main(argv)``; what needs a server that runs
until a signal (or a missing uvloop) runs in a subprocess, read through its stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from collections.abc import Iterator
from pathlib import Path

import pytest

import aiosio
from aiosio._compiled import MYPYC_MODULES
from aiosio.cli import main

LISTENING = re.compile(r"aiosio listening on http://127\.0\.0\.1:(\d+)")


class Process:
    """A Python subprocess whose stderr is collected line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.changed = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip())
            self.changed.set()
        self.changed.set()

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    async def wait_for(self, pattern: str | re.Pattern[str], timeout: float = 30) -> re.Match[str]:
        """The first stderr line matching ``pattern``; fails if the process ends first."""
        regex = re.compile(pattern)

        async def scan() -> re.Match[str]:
            while True:
                for line in self.lines:
                    match = regex.search(line)
                    if match:
                        return match
                if self.reader.done():
                    pytest.fail(f"the process ended without {regex.pattern!r}:\n{self.stderr}")
                self.changed.clear()
                await self.changed.wait()

        try:
            return await asyncio.wait_for(scan(), timeout)
        except TimeoutError:
            pytest.fail(f"no {regex.pattern!r} within {timeout} s:\n{self.stderr}")

    async def stop(self, sig: int = signal.SIGINT) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        try:
            code = await asyncio.wait_for(self.proc.wait(), 30)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
        await self.reader
        return code


@contextlib.asynccontextmanager
async def python(code: str) -> AsyncIterator[Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        textwrap.dedent(code),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    process = Process(proc)
    try:
        yield process
    finally:
        await process.stop(signal.SIGKILL)


# -- arguments -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _keep_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # load_app puts the directory first


def test_help_names_the_commands_and_nothing_internal(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["serve", "--help"], ["doctor", "--help"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 0
        out = capsys.readouterr().out
        assert "_worker" not in out
        assert "SUPPRESS" not in out
        assert "``" not in out  # reST markup in a terminal
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "serve" in out
    assert "doctor" in out


@pytest.mark.parametrize("argv", [["--version"], ["serve", "--version"]])
def test_version(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    out = capsys.readouterr().out.strip()
    if aiosio.__mypyc__:  # an install of the compiled wheel (tests/packaging)
        compiled = len(MYPYC_MODULES)  # all of them, or the build is broken
        assert out == f"aiosio {aiosio.__version__} ({compiled} modules compiled with mypyc)"
    else:
        assert out == f"aiosio {aiosio.__version__} (pure Python)"


@pytest.mark.parametrize(
    "argv",
    [
        ["--log-level", "debug", "serve", "no_such_module_for_cli_test:sio"],
        ["serve", "--log-level", "debug", "no_such_module_for_cli_test:sio"],
        ["serve", "no_such_module_for_cli_test:sio", "--log-level", "DEBUG"],
    ],
)
def test_log_level_is_accepted_before_and_after_the_command(argv: list[str]) -> None:
    # the arguments parse; the run then stops at the module that does not exist
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert "cannot import module 'no_such_module_for_cli_test'" in str(exited.value.code)


def test_unknown_log_level_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--log-level", "loud"])
    assert exited.value.code == 2
    assert "invalid choice: 'loud'" in capsys.readouterr().err
    monkeypatch.setenv("AIOSIO_LOG_LEVEL", "loud")
    with pytest.raises(SystemExit) as exited:
        main(["serve"])
    assert exited.value.code == (
        "aiosio: AIOSIO_LOG_LEVEL must be one of debug, info, warning, error, critical, got 'loud'"
    )


# -- the target of aiosio serve ------------------------------------------------------------------

TARGETS = """
import json

import aiosio

sio = aiosio.Server()
app = sio.asgi()
webtransport = aiosio.Server(transports=("polling", "websocket", "webtransport"))


async def raw_asgi(scope, receive, send):
    pass


def make_server():
    return aiosio.Server()


number = 42
"""


@pytest.fixture
def target_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"cli_target_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(TARGETS)
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("attribute", "found"),
    [
        ("app", "is an ASGI application (AsgiApp)"),
        ("raw_asgi", "is an ASGI application (function)"),
        ("make_server", "is the function make_server"),
        ("json", "is the module json"),
        ("number", "is a int object"),
    ],
)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_refuses_an_object_that_is_not_a_server(
    target_module: str, attribute: str, found: str, workers: str
) -> None:
    target = f"{target_module}:{attribute}"
    with pytest.raises(SystemExit) as exited:
        main(["serve", target, "--port", "0", "--workers", workers])
    message = str(exited.value.code)
    assert message.startswith(f"aiosio: {target} {found}, ")
    assert "expected an aiosio.Server or an aiosio.EngineServer" in message
    if "ASGI" in found:
        assert message.endswith(f'pip install "aiosio[asgi]", then uvicorn {target}')
    else:
        assert message.endswith(f"(for example {target_module}:sio, where sio = aiosio.Server())")


def test_serve_workers_with_redis_without_the_extra_is_refused_before_starting(
    target_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the check, every worker died with a traceback and the master waited for them.
    monkeypatch.setitem(sys.modules, "redis", None)  # as if redis were not installed
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with socket.socket() as taken:  # were workers started, the master would fail to bind first
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        argv = ["serve", f"{target_module}:sio", "--port", port, "--workers", "2"]
        with pytest.raises(SystemExit) as exited:
            main([*argv, "--redis", "redis://127.0.0.1:6379"])
    message = str(exited.value.code)
    assert message.startswith("aiosio: aiosio serve --redis needs the 'redis' package"), message
    assert message.endswith('pip install "aiosio[redis]"')


@pytest.mark.parametrize(
    ("attribute", "option"), [("webtransport", []), ("sio", ["--webtransport-port", "4433"])]
)
def test_serve_workers_refuses_webtransport_before_starting(
    target_module: str, attribute: str, option: list[str]
) -> None:
    """--workers cannot serve WebTransport: an app that offers it is refused (else every
    handshake would offer an upgrade that nothing serves, and clients would try it first)."""
    with socket.socket() as taken:  # were workers started, the master would fail to bind first
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        argv = ["serve", f"{target_module}:{attribute}", "--port", port, "--workers", "2"]
        with pytest.raises(SystemExit) as exited:
            main([*argv, *option])
    assert str(exited.value.code) == (
        "aiosio: --workers does not serve WebTransport: the workers share the TCP port through "
        "the master, but QUIC on UDP would need routing by connection id (its handshakes would "
        "offer an upgrade nothing serves); remove 'webtransport' from the server's transports, "
        "or run one process (without --workers)"
    )


# -- running -------------------------------------------------------------------------------------


async def test_serve_without_uvloop_runs_on_the_default_loop() -> None:
    code = """
        import sys

        sys.modules["uvloop"] = None  # as if uvloop were not installed
        from aiosio.cli import main

        sys.exit(main(["serve", "--port", "0"]))
    """
    async with python(code) as server:
        port = int((await server.wait_for(LISTENING)).group(1))
        client = aiosio.Client(f"http://127.0.0.1:{port}", reconnection=False)
        await client.connect()
        try:
            assert await client.emit_with_ack("echo", "hi", timeout=10) == "hi"
        finally:
            await client.disconnect()
        assert await server.stop() == 0
    info = [line for line in server.lines if "uvloop" in line]
    assert len(info) == 1, server.stderr
    assert (
        " INFO aiosio.cli: uvloop is not installed: running on asyncio's default event loop"
        in (info[0])
    )
    assert "Traceback" not in server.stderr


async def test_run_shows_refused_clients_with_default_logging() -> None:
    # aiosio.run() in a program that configured no logging: Python shows WARNING and above
    code = """
        import aiosio

        sio = aiosio.Server()
        admin = sio.of("/admin")


        @admin.use
        async def require_token(socket):
            raise aiosio.ConnectionRefused("not authorized")


        aiosio.run(sio, host="127.0.0.1", port=0)
    """
    async with python(code) as server:
        port = int((await server.wait_for(LISTENING)).group(1))
        for namespace in ("/admin", "/nowhere"):
            client = aiosio.Client(f"http://127.0.0.1:{port}{namespace}", reconnection=False)
            with pytest.raises(aiosio.ConnectError):
                await client.connect()
            await client.disconnect()
        await server.wait_for(r"namespace /admin refused \S+ from 127\.0\.0\.1\S*: not authorized")
        await server.wait_for(r"refused a connection to unknown namespace '/nowhere' from ")
        assert await server.stop(signal.SIGTERM) == 0
    assert " INFO aiosio" in server.lines[0]  # "listening" is routine, not a warning
    assert "shutting down" in server.lines[-1]
    refusals = [line for line in server.lines if "refused" in line]
    assert len(refusals) == 2, server.stderr
    assert all(" WARNING " in line for line in refusals), server.stderr
