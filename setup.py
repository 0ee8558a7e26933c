"""The wheel's optional compiled part: aiosio's hot modules compiled with mypyc when it can.

pyproject.toml holds the project; this file only decides the extension modules. A wheel build
compiles the modules ``src/aiosio/_compiled.py`` lists (``MYPYC_MODULES``) when mypyc is importable
(pyproject.toml's ``[build-system] requires`` brings mypy), the interpreter is CPython and a C
compiler with Python's headers works; otherwise it builds the pure-Python wheel, the same package
run interpreted. One line in the build log says which, and why. The ``.py`` files ship in both:
compiled, each module's extension sits beside its source and is imported instead of it.

- ``AIOSIO_PURE_PYTHON=1`` forces the pure-Python wheel.
- An editable install (``pip install -e .``) is always pure: an extension module in ``src/``
  would shadow every later edit of its ``.py``. ``build_ext --inplace`` refuses the same way.
- mypyc type-checks the modules first; if it reports an error (another mypy than the pinned
  one, in a build without isolation, may), the build says so and goes on pure. A compiler that
  then fails on mypyc's C fails the build, and says that ``AIOSIO_PURE_PYTHON=1`` avoids it.

At runtime ``aiosio.__mypyc__`` names the modules running compiled (empty when pure).
"""

from __future__ import annotations

import ast
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
SRC = ROOT / "src"
# The commands that build what gets installed (what ``pip install .`` and ``python -m build``
# run: bdist_wheel); ``editable_wheel`` and ``develop`` make editable installs.
BUILDS = {"bdist_wheel", "build", "build_ext", "install", "bdist"}
EDITABLE = {"editable_wheel", "develop"}


def say(message: str) -> None:
    print(f"aiosio: {message}", file=sys.stderr, flush=True)


def mypyc_modules() -> list[str]:
    """``MYPYC_MODULES`` of src/aiosio/_compiled.py, read without importing aiosio."""
    tree = ast.parse((SRC / "aiosio" / "_compiled.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "MYPYC_MODULES" for target in node.targets
        ):
            return list(ast.literal_eval(node.value))
    raise SystemExit("setup.py: src/aiosio/_compiled.py defines no MYPYC_MODULES")


def compiler_problem() -> str | None:
    """Why no C extension can be built here (no compiler, or no Python headers), or None."""
    from distutils import ccompiler  # setuptools' own copy, once setuptools is imported
    from distutils import sysconfig  # setuptools' own copy, once setuptools is imported

    try:
        compiler: Any = ccompiler.new_compiler()
        sysconfig.customize_compiler(compiler)
        with tempfile.TemporaryDirectory() as tmp:
            probe = Path(tmp) / "probe.c"
            probe.write_text("#include <Python.h>\nint aiosio_probe(void) { return 0; }\n")
            compiler.compile(
                [str(probe)], output_dir=tmp, include_dirs=[sysconfig.get_python_inc()]
            )
    except Exception as exc:  # noqa: BLE001 - any failure means: no compiler here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"no working C compiler with Python's headers ({first})"
    return None


def extensions() -> list[Any]:
    commands = set(sys.argv[1:])
    if commands & EDITABLE:
        say(
            "editable install: pure Python (a compiled module in src/ would shadow edits to its "
            ".py)"
        )
        return []
    if not commands & BUILDS:
        return []  # metadata or an sdist: nothing is compiled
    if os.environ.get("AIOSIO_PURE_PYTHON", "") not in ("", "0"):
        say("building pure Python (AIOSIO_PURE_PYTHON is set)")
        return []
    if sys.implementation.name != "cpython":
        say(f"building pure Python (mypyc compiles for CPython; this is {sys.implementation.name})")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        say("building pure Python (mypyc is not importable: mypy is not in the build environment)")
        return []
    problem = compiler_problem()
    if problem:
        say(f"building pure Python ({problem})")
        return []
    modules = mypyc_modules()
    paths = [str(Path("src", *name.split(".")).with_suffix(".py")) for name in modules]
    try:
        # The project's mypy settings (strict, for CI) are not the build's: no config file,
        # third-party packages (not in the build environment) typed as Any. Type-checked as
        # the interpreter that builds, for which the extensions are compiled.
        built: list[Any] = mypycify(
            ["--config-file=", "--ignore-missing-imports", *paths],
            target_dir=str(Path("build", "mypyc")),
            # The modules' shared library: aiosio__mypyc, a top-level module beside the package
            # (inside it, as aiosio._mypyc, mypyc 2.4 gives some modules a wrong __file__).
            group_name="aiosio",
        )
    except SystemExit as exc:
        say(f"building pure Python (mypyc reported errors, above; exit status {exc.code})")
        return []
    say(f"compiling {len(modules)} modules with mypyc: {', '.join(modules)}")
    return built


class BuildExt(build_ext):
    """build_ext that never writes an extension into src/ (``--inplace``), and that names the
    way out when the compiled part fails to build."""

    def run(self) -> None:
        if self.inplace and self.extensions:
            say(
                "not compiling in place: an extension in src/ would shadow edits to its .py "
                "(build a wheel instead)"
            )
            self.extensions = []
            return
        try:
            super().run()
        except Exception:
            say("compiling with mypyc failed; AIOSIO_PURE_PYTHON=1 builds the pure-Python wheel")
            raise


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
