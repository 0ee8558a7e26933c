"""The library's layers, read from its source: who may import whom, and no private reach-ins.

DESIGN.md and docs/architecture.md draw the layers; these tests hold them. Every ``import``
statement counts, wherever it stands (in a function, under ``if TYPE_CHECKING:``): an import
moved into a function to dodge a cycle is still the cycle.

- Layers: ``protocol`` (sans-I/O) <- ``engine`` <- ``server`` <- ``adapters``, ``admin`` and
  ``metrics`` (which may read the adapters' health too);
  ``transports`` and ``client`` beside; ``doctor`` on the client; ``testing`` on the server
  and the client; ``cli``, ``workers``, ``demo``
  and the package's ``__init__`` on top. The library's own helpers (``aiosio._debug``,
  ``aiosio.errors``, ...) are the base anyone may import; they import only the base and protocol/.
- No import cycle between modules.
- No read or call of another module's underscore name: ``x._name`` where ``x`` is not ``self``
  or ``cls`` and no class or function of the same module defines ``_name``, and
  ``from module import _name`` across modules.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import aiosio

PACKAGE_ROOT = Path(aiosio.__file__).parent

# Each layer and the layers it may import (itself always allowed).
LAYERS: dict[str, frozenset[str]] = {
    "base": frozenset({"protocol"}),
    "protocol": frozenset({"base"}),
    "engine": frozenset({"base", "protocol"}),
    "server": frozenset({"base", "protocol", "engine"}),
    "adapters": frozenset({"base", "protocol", "server"}),
    "transports": frozenset({"base", "protocol", "engine"}),
    "client": frozenset({"base", "protocol"}),
    "doctor": frozenset({"base", "protocol", "client"}),
    "emitter": frozenset({"base", "protocol", "adapters"}),
    "admin": frozenset({"base", "protocol", "engine", "server"}),
    "metrics": frozenset({"base", "protocol", "engine", "server", "adapters"}),
    # aiosio.testing: the client driven against a server in memory (issue 17).
    "testing": frozenset({"base", "protocol", "engine", "server", "client"}),
    # aiosio.asyncapi: the AsyncAPI document of a server, from its handlers (issue 17).
    "asyncapi": frozenset({"base", "protocol", "engine", "server"}),
    "top": frozenset(
        {
            "admin",
            "metrics",
            "base",
            "protocol",
            "engine",
            "server",
            "adapters",
            "transports",
            "client",
            "doctor",
            "emitter",
            "asyncapi",
        }
    ),
}

TOP_MODULES = {
    "aiosio",
    "aiosio.__main__",
    "aiosio.cli",
    "aiosio.loader",
    "aiosio.workers",
    "aiosio.demo",
}

# Underscore names of other libraries' objects the library may use (documented in their APIs).
FOREIGN_PRIVATE_OK = frozenset(
    {
        "_replace",
        "_asdict",
        "_fields",
        "_make",
        "_Compress",
        "_Decompress",
        # aioquic's QuicConnection streams: the one way to read how much of a WebTransport
        # stream is still unsent (transports/webtransport.py, buffered_amount), which aioquic
        # has no public API for.
        "_streams",
        # aioquic's TLS context keeps the server's certificate there only: the client checks
        # a pinned hash against it (client/webtransport.py, server_certificate_hashes).
        "_peer_certificate",
    }
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    if module in TOP_MODULES:
        return "top"
    parts = module.split(".")
    if len(parts) >= 3 or (len(parts) == 2 and parts[1] in LAYERS):
        return parts[1]
    if module == "aiosio.emitter":
        return "emitter"
    return "base"


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    tree: ast.Module

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


@functools.cache
def library_modules() -> dict[str, Module]:
    modules = {}
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        name = module_name(path)
        modules[name] = Module(name, path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return modules


def resolve(module: Module, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.name.split(".")
    if not module.is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: Module, known: dict[str, Module]) -> Iterator[tuple[str, int]]:
    """The library modules ``module`` imports, with the line of each import."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("aiosio"):
                    yield nearest(alias.name, known), node.lineno
        elif isinstance(node, ast.ImportFrom):
            target = resolve(module, node)
            if not target.startswith("aiosio"):
                continue
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                yield (candidate if candidate in known else nearest(target, known)), node.lineno


def nearest(name: str, known: dict[str, Module]) -> str:
    while name not in known and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def import_graph() -> dict[str, dict[str, int]]:
    known = library_modules()
    graph: dict[str, dict[str, int]] = {}
    for name, module in known.items():
        edges = graph.setdefault(name, {})
        for target, line in imports_of(module, known):
            # A module's own package (its __init__ runs first anyway) is not an edge, but the
            # root package is: a layer that imports ``aiosio`` imports everything.
            if target == name or (target != "aiosio" and name.startswith(target + ".")):
                continue
            edges.setdefault(target, line)
    return graph


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[frozenset[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, larger than one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(frozenset(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def upward_imports() -> set[tuple[str, str]]:
    found = set()
    for name, edges in import_graph().items():
        layer = layer_of(name)
        for target in edges:
            target_layer = layer_of(target)
            if target_layer != layer and target_layer not in LAYERS[layer]:
                found.add((name, target))
    return found


def defined_names(tree: ast.Module) -> set[str]:
    """Every name a module defines anywhere: functions, classes, attributes, variables."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def private_reach_ins() -> set[tuple[str, str]]:
    """``x._name`` (x not self or cls) where ``_name`` is not this module's alone.

    A name defined in this module only is a class of the module reading another's state,
    which the module's author sees; a name another module also defines may be that module's.
    """
    found = set()
    modules = library_modules()
    defined = {name: defined_names(module.tree) for name, module in modules.items()}
    for name, module in modules.items():
        own = defined[name]
        elsewhere = set().union(*(names for other, names in defined.items() if other != name))
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Attribute):
                attr = node.attr
                if not attr.startswith("_") or attr.startswith("__") or attr in FOREIGN_PRIVATE_OK:
                    continue
                if isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"}:
                    continue
                if attr in own and attr not in elsewhere:
                    continue
                found.add((name, attr))
            elif (
                isinstance(node, ast.ImportFrom)
                and node.level == 0
                and (node.module or "").startswith("aiosio")
            ):
                for alias in node.names:
                    private = alias.name.startswith("_") and not alias.name.startswith("__")
                    # Importing a private module (aiosio._debug) is the base layer; a private
                    # name from another module is a reach-in.
                    if private and f"{node.module}.{alias.name}" not in modules:
                        found.add((name, alias.name))
    return found


def test_no_import_cycles() -> None:
    cycles = set(strongly_connected(import_graph()))
    assert cycles == set(), "import cycles (break them with an interface)"


def test_no_upward_imports() -> None:
    assert upward_imports() == set(), "imports from a lower layer to a higher one"


def test_no_private_reach_ins() -> None:
    assert private_reach_ins() == set(), "another module's underscore names used"


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("aiosio.protocol.session", "protocol"),
        ("aiosio.engine.server", "engine"),
        ("aiosio.server", "server"),
        ("aiosio.server.socket", "server"),
        ("aiosio.transports.native.http", "transports"),
        ("aiosio.adapters.redis", "adapters"),
        ("aiosio._debug", "base"),
        ("aiosio.errors", "base"),
        ("aiosio.emitter", "emitter"),
        ("aiosio.cli", "top"),
        ("aiosio", "top"),
    ],
)
def test_layer_of(module: str, layer: str) -> None:
    assert layer_of(module) == layer


def test_checker_sees_a_cycle_and_an_upward_import() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert strongly_connected(graph) == [frozenset({"a", "b", "c"})]
    assert layer_of("aiosio.server.socket") not in LAYERS["protocol"]
