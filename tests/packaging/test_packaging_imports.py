"""No module of aiosio imports an optional package when it is imported; a feature used without its
extra raises an ImportError that names the extra; the extras of pyproject.toml are the ones
``aiosio._extras`` and README.md name.

``pip install aiosio`` brings httptools, orjson and msgpack only. The bare install itself is
exercised by ``test_packaging_install.py``; this file checks the rule over the source, so a new
module-level ``import redis`` fails here at once, with or without the package installed.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

import aiosio
from aiosio._extras import EXTRAS
from aiosio.adapters.redis import RedisAdapter

SRC = Path(aiosio.__file__).resolve().parent
ROOT = Path(__file__).resolve().parents[2]
CORE_DEPENDENCIES = {"httptools", "orjson", "msgpack"}
ALLOWED = CORE_DEPENDENCIES | set(sys.stdlib_module_names) | {"aiosio", "__future__"}


def _guards_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        for name in names:
            if isinstance(name, ast.Name) and name.id in ("ImportError", "ModuleNotFoundError"):
                return True
    return False


def _module_level_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """The imports that run when the module is imported (not those in functions, not those in a
    ``try`` that handles ImportError, not those under ``if TYPE_CHECKING``)."""
    found: list[tuple[int, str]] = []

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                found.extend((node.lineno, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0 and node.module:
                    found.append((node.lineno, node.module))
            elif isinstance(node, ast.Try):
                if not _guards_import_error(node):
                    visit(node.body)
                visit(node.orelse)
                visit(node.finalbody)
                for handler in node.handlers:
                    visit(handler.body)
            elif isinstance(node, ast.If):
                test = node.test
                if not (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.ClassDef | ast.With):
                visit(node.body)

    visit(tree.body)
    return found


def test_no_module_imports_an_optional_package_at_import_time() -> None:
    modules = sorted(SRC.rglob("*.py"))
    assert len(modules) > 30  # the whole package, not an empty glob
    offending = []
    for path in modules:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for line, name in _module_level_imports(tree):
            if name.partition(".")[0] not in ALLOWED:
                offending.append(f"{path.relative_to(SRC.parent)}:{line}: import {name}")
    assert offending == [], (
        "these modules import a package that is not a core dependency when they are imported; "
        "import it where the feature needs it, through aiosio._extras.import_extra"
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: RedisAdapter("redis://127.0.0.1:6379"),
        lambda: aiosio.Emitter("redis://127.0.0.1:6379"),
    ],
    ids=["RedisAdapter", "Emitter"],
)
def test_redis_features_without_redis_name_the_extra(
    monkeypatch: pytest.MonkeyPatch, make: object
) -> None:
    # None in sys.modules is how Python spells "this package cannot be imported"
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ImportError) as raised:
        make()  # type: ignore[operator]
    message = str(raised.value)
    assert "needs the 'redis' package, which is not installed" in message
    assert message.endswith('pip install "aiosio[redis]"')


def test_run_on_uvloop_without_uvloop_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    with pytest.raises(ImportError) as raised:
        aiosio.run(aiosio.Server(), host="127.0.0.1", port=0, use_uvloop=True)
    assert str(raised.value).endswith('pip install "aiosio[speed]"')


def _requirement_names(requirements: list[str]) -> set[str]:
    """The distribution names of PEP 508 requirements ("redis>=5.0" -> "redis")."""
    return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_extras_users_install_are_the_ones_documented() -> None:
    """pyproject.toml, aiosio._extras (whose ImportErrors name the extra) and README.md's table
    of extras name the same extras, with the same packages: an extra added in one place only is
    one a user cannot find, or one an ImportError names wrongly."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert _requirement_names(project["dependencies"]) == CORE_DEPENDENCIES
    declared = {
        extra: _requirement_names(requirements)
        for extra, requirements in project["optional-dependencies"].items()
        if extra != "test"  # the developers' tools, not a feature
    }
    assert declared == {extra: set(packages) for extra, packages in EXTRAS.items()}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", readme, re.MULTILINE)
    assert [extra for extra, _ in rows] == list(EXTRAS)
    for extra, brings in rows:
        for package in EXTRAS[extra]:
            assert package in brings, f"README.md's row for {extra!r} does not name {package}"
    assert 'pip install "aiosio[' in readme
