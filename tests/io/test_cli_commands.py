"""``aiosio serve`` and ``aiosio doctor`` run as a user runs them, end to end.

The server is ``aiosio serve`` itself, in a subprocess (its coverage is measured there too): the
demo, with and without uvloop, and with TLS. The doctor runs in-process through
``aiosio.cli.main(argv)`` against it, and its exit status, its report on stdout (as text and as
JSON) and its ``--verbose`` trace on stderr are checked.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiosio.cli import main
from conftest import free_port

LISTENING = re.compile(r"aiosio listening on (https?)://127\.0\.0\.1:(\d+)")
START_TIMEOUT = 60.0


class ServeProcess:
    """``python -m aiosio serve ARGS`` whose stderr is collected by a thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiosio", "serve", "--port", "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        self.started = threading.Event()
        self.port = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            match = LISTENING.search(line)
            if match and not self.port:
                self.port = int(match.group(2))
                self.started.set()
        self.started.set()  # ended: wait_listening() reports it

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def wait_listening(self) -> int:
        if not self.started.wait(START_TIMEOUT) or not self.port:
            pytest.fail(f"aiosio serve did not start:\n{self.stderr}")
        return self.port

    def stop(self) -> int:
        """Ctrl-C, as a user stops it (the process writes its coverage data on the way out)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(30)
        self.reader.join(30)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        return code


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    """The demo of ``aiosio serve`` with no argument: its URL."""
    server = ServeProcess("--log-level", "debug")
    try:
        yield f"http://127.0.0.1:{server.wait_listening()}"
    finally:
        assert server.stop() == 0, server.stderr


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost``."""
    openssl = shutil.which("openssl")
    assert openssl is not None, "needs the openssl command (Debian package openssl)"
    folder = tmp_path_factory.mktemp("cli-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-days", "1", "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def doctor(*argv: str) -> int:
    return main(["doctor", *argv, "--timeout", "10"])


# -- aiosio doctor against aiosio serve ----------------------------------------------------------


def test_doctor_reports_the_demo_as_working(demo: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert doctor(demo) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"OK: {demo} works as a Socket.IO deployment"
    findings = [line for line in lines if line.startswith("[")]
    assert findings, out
    assert all(line.startswith(("[ ok ]", "[info]")) for line in findings), out
    assert "\033[" not in out  # stdout is not a terminal: no colour


def test_doctor_json_with_every_request_option(
    demo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = doctor(
        demo,
        "--json",
        "--verbose",
        "--header",
        "X-Request-Id: 42",
        "--auth",
        '{"token": "t"}',
        "--origin",
        "http://app.example.com",
        "--probe-payload",
        "--soak",
        "0.5",
    )
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert status == 0, captured.out
    assert report["ok"] is True
    assert report["url"] == demo
    assert report["primary"] is None
    assert report["summary"] == f"OK: {demo} works as a Socket.IO deployment"
    ids = [finding["id"] for finding in report["findings"]]
    assert {finding["verdict"] for finding in report["findings"]} <= {"ok", "info"}
    assert any(i.startswith("payload") for i in ids), ids
    assert any(i.startswith("soak") for i in ids), ids
    # --verbose: the connection steps and the requests, like curl -v, on stderr
    assert "* connected to 127.0.0.1 port" in captured.err
    assert "X-Request-Id: 42" in captured.err


def test_doctor_finds_that_the_demo_refuses_credentials(
    demo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The demo answers any origin (Cors(origins=True)) but without credentials, as a page that
    # sends cookies would find out.
    assert doctor(demo, "--origin", "http://app.example.com", "--credentials", "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["primary"] == "cors.credentials_missing"
    (finding,) = [f for f in report["findings"] if f["id"] == "cors.credentials_missing"]
    assert finding["verdict"] == "fail"
    assert finding["fix"]


def test_doctor_checks_only_the_transport_asked_for(
    demo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert doctor(demo, "--transport", "websocket", "--json") == 0
    ids = [finding["id"] for finding in json.loads(capsys.readouterr().out)["findings"]]
    assert "websocket.ok" in ids
    assert not [i for i in ids if i.startswith(("handshake", "sticky"))], ids


def test_doctor_reports_a_closed_port_as_the_problem_with_its_fix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there any more
    assert doctor(url) == 1
    out = capsys.readouterr().out
    assert out.startswith("PROBLEM: ")
    assert "[FAIL]" in out
    assert "       fix: " in out


def test_doctor_refuses_auth_that_is_not_json() -> None:
    with pytest.raises(SystemExit) as exited:
        doctor("http://127.0.0.1:1", "--auth", "{token}")
    assert str(exited.value.code).startswith("aiosio doctor: --auth must be JSON: ")


# -- aiosio serve: the loop and TLS --------------------------------------------------------------


def test_serve_no_uvloop_says_nothing_about_uvloop(capsys: pytest.CaptureFixture[str]) -> None:
    server = ServeProcess("--no-uvloop")
    try:
        url = f"http://127.0.0.1:{server.wait_listening()}"
        assert doctor(url, "--transport", "polling") == 0, capsys.readouterr().out
    finally:
        assert server.stop() == 0, server.stderr
    assert not [line for line in server.lines if "uvloop" in line], server.stderr


def test_serve_with_a_certificate_serves_https(
    certificate: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = certificate
    server = ServeProcess("--certfile", str(cert), "--keyfile", str(key))
    try:
        port = server.wait_listening()
        assert LISTENING.search(server.stderr)[1] == "https"  # type: ignore[index]
        assert doctor(f"https://localhost:{port}", "--ca", str(cert)) == 0
        assert capsys.readouterr().out.startswith(f"OK: https://localhost:{port} works")
        assert doctor(f"https://localhost:{port}", "--insecure") == 0
    finally:
        assert server.stop() == 0, server.stderr


def test_serve_refuses_workers_with_tls(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--workers", "2", "--certfile", str(cert), "--keyfile", str(key)])
    assert exited.value.code == (
        "aiosio: --workers with TLS is not supported; terminate TLS in a proxy"
    )
