"""The Engine.IO options, written once (``aiosio.engine.options``): ``EngineOptions`` declares
each option's name, type and default; ``EngineServer(**options)`` and ``Server(**engine)`` take
them all as keywords typed by ``EngineKeywords``. These tests hold the two declarations together
and the constructors' public API as it was when each listed its keywords (plus, for ``Server``,
the two it did not take then): the same names, defaults and errors, at runtime and for mypy.
The checks of each value are in tests/io/test_engine_http.py (``test_invalid_option_values``)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest

import aiosio
from aiosio.engine.options import EngineKeywords
from aiosio.engine.options import EngineOptions

# The keywords of the two constructors before the options were written once: the public API.
SERVER_ENGINE_KEYWORDS = {
    "path",
    "ping_interval",
    "ping_timeout",
    "upgrade_timeout",
    "max_http_buffer_size",
    "transports",
    "allow_upgrades",
    "allow_eio3",
    "allow_request",
    "cookie",
    "http_compression",
    "per_message_deflate",
    "cors",
    "max_outbound_buffer",
    "add_trailing_slash",  # added with the reference's addTrailingSlash (issue 17 item 8)
}
# Server took these two only later: every EngineServer option is a Server option too.
ENGINE_SERVER_KEYWORDS = SERVER_ENGINE_KEYWORDS | {"max_payload_packets", "shutdown_timeout"}


def option_fields() -> dict[str, Any]:
    """The options of EngineOptions (its init fields) with their types."""
    hints = typing.get_type_hints(EngineOptions)
    return {f.name: hints[f.name] for f in dataclasses.fields(EngineOptions) if f.init}


def test_the_keywords_are_the_options_with_their_types() -> None:
    # mypy checks the other way round: EngineOptions(**options) with options: EngineKeywords.
    assert typing.get_type_hints(EngineKeywords) == option_fields()
    assert EngineKeywords.__optional_keys__ == ENGINE_SERVER_KEYWORDS


def test_defaults_are_those_of_engine_options() -> None:
    assert aiosio.EngineServer().options == EngineOptions()
    assert aiosio.Server().engine.options == EngineOptions(path="/socket.io/")
    assert aiosio.Server(path="/io").engine.options == EngineOptions(path="/io/")
    assert EngineOptions().path == "/engine.io/"


def test_every_keyword_reaches_the_options() -> None:
    cors = aiosio.Cors(origins=["https://app.example.com"])

    async def allow(request: aiosio.HttpRequest) -> None:
        pass

    given: dict[str, Any] = {
        "path": "/rt/",
        "ping_interval": 1.5,
        "ping_timeout": 2.5,
        "upgrade_timeout": 3.5,
        "max_http_buffer_size": 4096,
        "transports": ("websocket",),
        "allow_upgrades": False,
        "allow_eio3": True,
        "allow_request": allow,
        "cookie": "sticky",
        "http_compression": 2048,
        "per_message_deflate": True,
        "cors": cors,
        "max_outbound_buffer": 8192,
        "add_trailing_slash": True,
        "max_payload_packets": 7,
        "shutdown_timeout": 0.5,
    }
    assert set(given) == ENGINE_SERVER_KEYWORDS
    assert {name: getattr(EngineOptions(), name) for name in given} != given  # not the defaults
    from_server = aiosio.Server(**given).engine.options
    from_engine = aiosio.EngineServer(**given).options
    for name, value in given.items():
        assert getattr(from_server, name) == value, name
        assert getattr(from_engine, name) == value, name
    assert from_server == from_engine


@pytest.mark.parametrize(
    ("keyword", "message"),
    [
        (
            "pingInterval",
            r"unexpected keyword argument 'pingInterval'; did you mean 'ping_interval'\?$",
        ),
        ("pth", r"unexpected keyword argument 'pth'; did you mean 'path'\?$"),
        ("engine", r"unexpected keyword argument 'engine'$"),
    ],
)
def test_an_unknown_keyword_is_a_type_error_naming_it(keyword: str, message: str) -> None:
    with pytest.raises(TypeError, match=r"^EngineServer\.__init__\(\) got an " + message):
        aiosio.EngineServer(**{keyword: 1})
    with pytest.raises(TypeError, match=r"^Server\.__init__\(\) got an " + message):
        aiosio.Server(**{keyword: 1})


def test_a_misspelt_socketio_option_of_the_server_is_named_too() -> None:
    expected = r"^Server\.__init__\(\) got an unexpected keyword argument 'conect_timeout'; did "
    with pytest.raises(TypeError, match=expected + r"you mean 'connect_timeout'\?$"):
        aiosio.Server(conect_timeout=1.0)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("keyword", "value", "error", "message"),
    [
        ("max_payload_packets", 0, TypeError, "max_payload_packets must be a positive int"),
        ("shutdown_timeout", 0, ValueError, "shutdown_timeout must be a positive number"),
    ],
)
def test_the_server_takes_and_validates_what_was_engine_only(
    keyword: str, value: int, error: type[Exception], message: str
) -> None:
    # aiosio.Server refused them before (a TypeError naming them as unexpected).
    assert getattr(aiosio.Server(**{keyword: 3}).engine.options, keyword) == 3
    with pytest.raises(error, match=message):
        aiosio.Server(**{keyword: value})


def test_the_options_are_read_on_the_engine_as_before() -> None:
    engine = aiosio.EngineServer(path="io", cookie="sticky", http_compression=False)
    options = engine.options
    assert engine.path == "/io/"
    assert engine.transports == ("polling", "websocket")
    assert (engine.allow_upgrades, engine.allow_eio3, engine.allow_request) == (True, False, None)
    assert engine.max_http_buffer_size == engine.max_body_size == options.max_http_buffer_size
    assert engine.max_outbound_buffer == options.max_outbound_buffer
    assert (engine.shutdown_timeout, engine.per_message_deflate, engine.cors) == (5.0, False, None)
    assert engine.cookie == aiosio.Cookie(name="sticky")
    assert engine.compression_threshold is None
    assert engine.config is options.session_config
    server = aiosio.Server()
    assert (server.path, server.max_body_size) == ("/socket.io/", 1_000_000)


@pytest.mark.parametrize("name", ["path", "cors", "cookie", "max_body_size"])
def test_the_options_on_the_engine_are_read_only(name: str) -> None:
    engine = aiosio.EngineServer()
    with pytest.raises(AttributeError, match=rf"^EngineServer\.{name} is read-only: the options"):
        setattr(engine, name, None)


MYPY_PROGRAM = """\
import aiosio

aiosio.EngineServer(path="/x", ping_interval=1.0, max_payload_packets=5, shutdown_timeout=2.0)
aiosio.Server(path="/x", connect_timeout=3.0, cors=aiosio.Cors(origins=["https://a.example"]))
engine = aiosio.EngineServer()
path: str = engine.path
cookie: aiosio.Cookie | None = engine.cookie
aiosio.EngineServer(pingInterval=1)  # E: call-arg
aiosio.EngineServer(ping_interval="1")  # E: arg-type
aiosio.Server(ping_interval="1")  # E: arg-type
aiosio.Server(pth="/x")  # E: call-arg
aiosio.Server(shutdown_timeout=1.0, max_payload_packets=5)
aiosio.Server(shutdown_timeout="1")  # E: arg-type
engine.path = "/y"  # E: assignment
"""


def test_mypy_checks_the_keywords_and_the_attributes(tmp_path: Path) -> None:
    """mypy --strict sees every keyword with its type, as when they were listed in each
    signature: an unknown or mistyped one is an error, and the attributes keep their types."""
    program = tmp_path / "program.py"
    program.write_text(MYPY_PROGRAM)
    src = Path(aiosio.__file__).parent.parent
    mypy = [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--show-error-codes"]
    result = subprocess.run(
        [*mypy, "--cache-dir", str(tmp_path / "cache"), str(program)],
        capture_output=True,
        text=True,
        timeout=300,
        # this checkout's src (the .venv may hold another one's); an installed aiosio (the
        # compiled wheel's run, tests/packaging) is found where it is, which mypy requires
        env={**os.environ, "MYPYPATH": str(src)} if "site-packages" not in src.parts else None,
        check=False,
    )
    errors = sorted(
        (int(line.split(":")[1]), line.rpartition("[")[2].rstrip("]"))
        for line in result.stdout.splitlines()
        if ": error: " in line
    )
    expected = [
        (number, line.rpartition("# E: ")[2])
        for number, line in enumerate(MYPY_PROGRAM.splitlines(), 1)
        if "# E: " in line
    ]
    assert errors == expected, result.stdout + result.stderr
    assert result.stderr == ""
