"""Every ```python block of README.md and docs/*.md runs as written.

In each file, the blocks run in order as separate programs with this environment's Python:

- a block after ``<!-- server -->`` is a server: it is started first (its ``3000`` becomes a free
  port), and must log "listening"; it runs while the file's other blocks run, and must log no
  error;
- a block after ``<!-- fragment -->`` is part of a larger program (no imports, a top-level
  ``await``): it is compiled only, and the fragments are counted, so that marking a block does not
  silently exempt it;
- every other block is a program that must exit 0 (its ``3000`` is the server's port, or a free
  port nothing listens on).

The ``curl`` lines of README.md's ```sh blocks run against the demo server (``aiosio serve``), and
their answer must match the ``# `` line below them (``...`` stands for any text).

Every test the pages cite (``tests/io/test_x.py::test_y``, as docs/hardening.md and docs/limits.md
do for each case and limit) exists: a renamed or removed test cannot leave a case that looks
covered.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# The fragments each file may have. Lower a number when a fragment becomes a program; raise it
# only for a block that cannot be one (a piece of a larger program), in the same change.
FRAGMENTS = {"docs/deployment.md": 6, "docs/parsers.md": 1}
BLOCK = re.compile(r"^```python\n(.*?)^```\n", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!--\s*(fragment|server)\s*-->\s*$")
CITED_TEST = re.compile(r"\b(tests/[\w/]+\.py)(?:::(\w+))?")
TIMEOUT = 60.0


@dataclass
class Block:
    path: Path
    line: int
    kind: str  # "server", "fragment" or "program"
    code: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    found = []
    for match in BLOCK.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(before)
        line = text.count("\n", 0, match.start()) + 2
        kind = marker.group(1) if marker else "program"
        found.append(Block(path, line, kind, match.group(1)))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _wait_listening(proc: subprocess.Popen[str], port: int, name: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{name}: the server exited with {proc.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    pytest.fail(f"{name}: the server did not listen on {port} within {TIMEOUT} s")


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        _out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
    return err


def test_fragments_are_counted() -> None:
    counted = {}
    for path in FILES:
        fragments = [b for b in blocks(path) if b.kind == "fragment"]
        if fragments:
            counted[str(path.relative_to(ROOT))] = len(fragments)
    assert counted == FRAGMENTS


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_python_examples_run(path: Path, tmp_path: Path) -> None:
    found = blocks(path)
    for block in found:
        if block.kind == "fragment":
            compile(block.code, block.name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    servers = [b for b in found if b.kind == "server"]
    programs = [b for b in found if b.kind == "program"]
    if not servers and not programs:
        return  # fragments only (compiled above), or no python at all
    assert len(servers) <= 1, "one server per file: its examples talk to port 3000"
    port = str(free_port())
    started: list[tuple[Block, subprocess.Popen[str]]] = []
    try:
        for block in servers:
            script = tmp_path / "server.py"
            script.write_text(block.code.replace("3000", port))
            proc = subprocess.Popen(
                [sys.executable, str(script)],
                cwd=tmp_path,
                env=_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            started.append((block, proc))
            _wait_listening(proc, int(port), block.name)
        for index, block in enumerate(programs):
            script = tmp_path / f"example_{index}.py"
            script.write_text(block.code.replace("3000", port))
            done = subprocess.run(
                [sys.executable, str(script)],
                cwd=tmp_path,
                env=_env(),
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                check=False,
            )
            assert done.returncode == 0, f"{block.name} failed:\n{done.stdout}{done.stderr}"
    finally:
        logs = [(block, _stop(proc)) for block, proc in started]
    for block, err in logs:
        # aiosio.run() says "listening on", uvicorn.run() "Uvicorn running on".
        announced = ("listening on http://127.0.0.1:", "running on http://127.0.0.1:")
        assert any(line in err for line in announced), f"{block.name} logged:\n{err}"
        assert "Traceback" not in err, f"{block.name} logged:\n{err}"
        assert " ERROR " not in err, f"{block.name} logged:\n{err}"


def _curl_examples() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    examples = []
    for block in re.findall(r"^```sh\n(.*?)^```\n", text, re.MULTILINE | re.DOTALL):
        lines = block.splitlines()
        for line, answer in zip(lines, [*lines[1:], ""], strict=True):
            if line.startswith("curl ") and answer.startswith("# "):
                examples.append((line, answer[2:]))
    return examples


def test_readme_curl_examples_answer_as_shown(tmp_path: Path) -> None:
    examples = _curl_examples()
    assert examples, "README.md shows a curl line and its answer"
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is needed for this test (apt-get install curl)")
    port = str(free_port())
    server = subprocess.Popen(
        [sys.executable, "-m", "aiosio", "serve", "--port", port],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_listening(server, int(port), "aiosio serve")
        for command, answer in examples:
            argv = shlex.split(command.replace("3000", port))
            done = subprocess.run(
                [curl, *argv[1:]], capture_output=True, text=True, timeout=TIMEOUT, check=False
            )
            pattern = ".*?".join(re.escape(part) for part in answer.split("..."))
            assert re.fullmatch(pattern, done.stdout), f"{command}\nanswered: {done.stdout!r}"
    finally:
        _stop(server)


def test_every_test_the_docs_cite_exists() -> None:
    cited, missing = 0, []
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        for module, name in CITED_TEST.findall(text):
            cited += 1
            source = ROOT / module
            where = f"{path.relative_to(ROOT)} cites {module}" + (f"::{name}" if name else "")
            if not source.is_file():
                missing.append(f"{where}: no such file")
            elif name and not re.search(
                rf"^(async )?def {name}\(", source.read_text(encoding="utf-8"), re.MULTILINE
            ):
                missing.append(f"{where}: no such test")
    assert cited > 200  # docs/hardening.md and docs/limits.md cite each case's tests
    assert missing == []
