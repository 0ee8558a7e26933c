"""The doctor's code keeps the shape issue 13 gave it: every packet comes from aiosio.protocol's
encoders (no hand-written ``"40"``, ``"2probe"``, ``b"6"``), and no function is longer than 50
lines (the checks.py it replaced had one of 127)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import aiosio.doctor

DOCTOR = Path(aiosio.doctor.__file__).parent
MODULES = sorted(DOCTOR.rglob("*.py"))
# The report's rendering sends no packet; its ANSI codes ("1" for bold) would look like one.
PROTOCOL_MODULES = [path for path in MODULES if path.name != "findings.py"]
# An Engine.IO packet ("2", "3probe", "5"), or a Socket.IO one inside it ("40", "44/admin,").
PACKET = re.compile(r"^([0-6]|[23]probe|4[0-6]([/{\[].*)?)$", re.DOTALL)
MAX_LINES = 50


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def test_the_modules_are_found() -> None:
    names = {path.stem for path in MODULES}
    assert {"packets", "exchange", "handshake", "namespace", "sticky", "upgrade"} <= names


def test_no_packet_literals() -> None:
    found = []
    for path in PROTOCOL_MODULES:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
                text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
                if PACKET.match(text):
                    found.append(f"{path.relative_to(DOCTOR)}:{node.lineno}: {node.value!r}")
    assert not found, "build packets with aiosio.protocol (aiosio.doctor.packets):\n" + "\n".join(
        found
    )


def test_no_long_functions() -> None:
    long = []
    for path in MODULES:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{path.relative_to(DOCTOR)}:{node.lineno} {node.name}: {lines}")
    assert not long, "\n".join(long)


def test_the_pattern_catches_packets() -> None:
    for packet in ("2", "6", "2probe", "3probe", "40", "44/admin,", '40{"token":"x"}', "42[1]"):
        assert PACKET.match(packet), packet
    for text in ("1000", "31;1", "4xx", "EIO=4&transport=polling", "/socket.io/", "0:"):
        assert not PACKET.match(text), text
