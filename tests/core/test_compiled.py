"""The rules of the compiled build (``aiosio._compiled``, setup.py), which hold in both builds.

This file runs in the checkout (pure Python) and again against an install of the compiled wheel
(tests/packaging/test_packaging_compiled.py), where the encoding tests are the ones that failed:
compiled, the encoder's recursive walks were C calls that Python's recursion limit does not count,
and a value containing itself crashed the process instead of raising RecursionError.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import aiosio
from aiosio._compiled import MYPYC_MODULES
from aiosio.protocol.socketio import Packet
from aiosio.protocol.socketio import PacketType
from aiosio.protocol.socketio import dumps
from aiosio.protocol.socketio import encode


def _public_packages() -> list[str]:
    """aiosio and its subpackages whose names have no underscore part: those with an
    ``__all__`` are the public API (STYLE.md 7)."""
    packages = pkgutil.walk_packages(aiosio.__path__, "aiosio.")
    return ["aiosio"] + [
        info.name
        for info in packages
        if info.ispkg and not any(part.startswith("_") for part in info.name.split("."))
    ]


def test_no_public_name_is_defined_in_a_compiled_module() -> None:
    # mypyc checks argument types at run time and its classes take no new attribute and no
    # interpreted subclass: what users call, make or subclass must stay interpreted
    public = []
    for name in _public_packages():
        module = importlib.import_module(name)
        for export in getattr(module, "__all__", ()):
            value = getattr(module, export)
            public.append((f"{name}.{export}", getattr(value, "__module__", None)))
    assert len(public) > 40, public  # aiosio's own exports at least: not an empty walk
    assert [(name, where) for name, where in public if where in MYPYC_MODULES] == []


def test_the_compiled_modules_are_all_or_none() -> None:
    # a wheel compiles every listed module or none (setup.py): a half-compiled install would be
    # a broken build
    assert aiosio.__mypyc__ in ((), MYPYC_MODULES)
    for name in MYPYC_MODULES:
        importlib.import_module(name)  # each exists


def _containing_itself(leaf: object) -> list[object]:
    value: list[object] = [leaf]
    value.append(value)
    return value


@pytest.mark.parametrize(
    "value",
    [
        # orjson refuses the integer beyond 64 bits; the standard library's fallback walks it
        pytest.param(_containing_itself(2**70), id="big integer"),
        # the attachment is taken out of the value by a walk of its own
        pytest.param(_containing_itself(b"\x01"), id="attachment"),
    ],
)
def test_a_value_containing_itself_fails_with_recursion_error(value: list[object]) -> None:
    with pytest.raises(RecursionError, match="nested deeper than 200"):
        encode(Packet(PacketType.EVENT, "/", ["x", value]))


def test_a_value_nested_deeper_than_the_walks_go_fails_with_recursion_error() -> None:
    value: object = 2**70
    for _ in range(300):
        value = [value]
    with pytest.raises(RecursionError, match="nested deeper than 200"):
        dumps(value)
    shallow: object = 2**70
    for _ in range(150):
        shallow = [shallow]
    assert dumps(shallow) == "[" * 150 + str(2**70) + "]" * 150
