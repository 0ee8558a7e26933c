"""No test reads a private name of the library (issue 13).

A test that reads ``x._name`` of a library object pins an implementation detail: the next change
inside the library breaks the test, not the behaviour. What a test needs is a public name or a
documented hook. This test parses every test file and fails on ``x._name`` where the library
defines ``_name`` and the test module does not (read or written), on a private method of the
library overridden in a test, and on ``from aiosio... import _name`` (importing a private module
such as ``aiosio._memory`` is fine: its public names are the hook).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from test_layers import FOREIGN_PRIVATE_OK
from test_layers import defined_names
from test_layers import library_modules

TESTS_ROOT = Path(__file__).parent.parent


@functools.cache
def library_private_names() -> frozenset[str]:
    names: set[str] = set()
    for module in library_modules().values():
        names |= defined_names(module.tree)
    return frozenset(
        name
        for name in names
        if name.startswith("_") and not name.startswith("__") and name not in FOREIGN_PRIVATE_OK
    )


def all_test_files() -> list[Path]:
    return sorted(path for path in TESTS_ROOT.rglob("*.py") if "node_modules" not in path.parts)


def own_names(tree: ast.Module, library: frozenset[str]) -> set[str]:
    """The underscore names a test module defines for itself: not the library's methods it
    overrides, nor the attributes it sets on other objects (``server._limit = 1`` writes the
    library's private name, it does not define one)."""
    written = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"})
    }
    return defined_names(tree) - {name for name, _ in overrides(tree, library)} - written


def overrides(tree: ast.Module, library: frozenset[str]) -> set[tuple[str, int]]:
    """Methods of a subclass named as the library's private names: a test's own helper class
    (no base) may name its methods as it likes."""
    return {
        (node.name, node.lineno)
        for cls in ast.walk(tree)
        if isinstance(cls, ast.ClassDef) and cls.bases
        for node in cls.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in library
    }


def reads_in(tree: ast.Module) -> set[tuple[str, int]]:
    """The library's private names ``tree`` reads, writes, overrides or imports, with lines."""
    library = library_private_names()
    own = own_names(tree, library)
    modules = library_modules()
    found = overrides(tree, library)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if node.attr in library and node.attr not in own:
                found.add((node.attr, node.lineno))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aiosio"):
            found |= {
                (alias.name, node.lineno)
                for alias in node.names
                if alias.name in library and f"{node.module}.{alias.name}" not in modules
            }
    return found


@functools.cache
def private_reads() -> frozenset[tuple[str, str, int]]:
    """(test file relative to tests/, name, line) of every test file."""
    found: set[tuple[str, str, int]] = set()
    for path in all_test_files():
        relative = path.relative_to(TESTS_ROOT).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        found |= {(relative, name, line) for name, line in reads_in(tree)}
    return frozenset(found)


def test_no_test_reads_a_private_name_of_the_library() -> None:
    assert private_reads() == set(), "give the test a public or documented hook"


def test_the_checker_sees_a_read_a_write_an_override_and_an_import() -> None:
    source = """
from aiosio.protocol.client_session import ClientSession
from aiosio._memory import _find_malloc_trim
from aiosio import _memory

class Recording(ClientSession):
    def _set_state(self, new): ...

class Helper:
    def _run(self): ...

def test(session, ended, helper):
    ended._keys[0] = 1
    session._handlers = {}
    helper._run()
    _memory.malloc_trim
"""
    assert reads_in(ast.parse(source)) == {
        ("_find_malloc_trim", 3),
        ("_set_state", 7),
        ("_keys", 13),
        ("_handlers", 14),
    }
