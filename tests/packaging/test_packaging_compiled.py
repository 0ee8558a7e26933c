"""The wheel compiled with mypyc (setup.py, ``aiosio._compiled``), what ``pip install aiosio``
builds where mypy and a C compiler are at hand, proven to behave as the pure-Python one:

- built from the sdist by ``python -m build`` (mypy comes from pyproject.toml's
  ``[build-system]``), the log says it compiled the modules ``MYPYC_MODULES`` lists; the wheel is
  for this interpreter and platform, with an extension module beside each listed module's
  ``.py`` and their shared library ``aiosio__mypyc``, and nothing else outside ``aiosio/``;
- installed with no extra into a fresh virtual environment, each listed module is imported
  compiled (its ``__file__`` the extension beside its source), ``aiosio.__mypyc__`` names them
  all, and the native server answers a client's ``emit_with_ack`` over WebSocket;
- installed with the ``test`` extra, the protocol tests (tests/core, this file's rules in
  test_compiled.py included), the native server's (its WebSocket, limits, memory, the CLI) and
  the interop tests against socket.io-client from npm (tests/interop/test_socketio_client.py:
  events, acks and binary both ways, broadcasts, namespaces, recovery, on both servers) pass
  against that install, run from this checkout's tests but never its ``src``;
- without a working C compiler the build says so and makes the pure-Python wheel;
- an editable install (``pip install -e``, as scripts/install.sh does) stays pure Python and
  writes no extension into ``src/``.

The pure-Python wheel itself is test_packaging_install.py's. pip installs from the configured
indexes (CI has the network); this file takes about 5 minutes, most of it the test run.
"""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import aiosio
from aiosio._compiled import MYPYC_MODULES

ROOT = Path(__file__).resolve().parents[2]
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]  # ".cpython-311-x86_64-linux-gnu.so"
# What runs against the compiled install (1 900 tests, about 2 minutes).
SUITE = [
    "tests/core",
    "tests/io/test_native_websocket.py",
    "tests/io/test_native_limits.py",
    "tests/io/test_server_limits.py",
    "tests/io/test_memory.py",
    "tests/io/test_cli.py",
    "tests/interop/test_socketio_client.py",
]
pytestmark = pytest.mark.timeout(1500)


def _env(**extra: str) -> dict[str, str]:
    """A user's shell: nothing that points Python at this checkout, no coverage of the outer run
    and no choice of the build's but ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "VIRTUAL_ENV", "COV_CORE_", "COVERAGE_", "AIOSIO_"))
    }
    env.update(PYTHONDONTWRITEBYTECODE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def _run(argv: list[str], cwd: Path, timeout: float, **extra: str) -> str:
    """Run ``argv``; its stdout and stderr together (the build's log goes to either)."""
    done = subprocess.run(
        argv,
        cwd=cwd,
        env=_env(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited with {done.returncode}:\n{done.stdout}")
    return done.stdout


def _venv(directory: Path, requirement: str) -> Path:
    """A fresh virtual environment with ``requirement`` installed; its Python."""
    _run([sys.executable, "-m", "venv", str(directory)], directory.parent, 600)
    python = directory / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", requirement], directory.parent, 900)
    return python


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The compiled wheel, built from the sdist as pip builds it; and the build's log."""
    out = tmp_path_factory.mktemp("dist-compiled")
    log = _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], ROOT, 900)
    wheels = list(out.glob("aiosio-*.whl"))
    assert len(wheels) == 1, (wheels, log)
    return wheels[0], log


@pytest.fixture(scope="module")
def installs(built: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The compiled wheel installed alone (``bare``) and with the test extra (``test``)."""
    wheel = built[0]
    base = tmp_path_factory.mktemp("venvs-compiled")
    wanted = {"bare": str(wheel), "test": f"{wheel}[test]"}
    with ThreadPoolExecutor(len(wanted)) as pool:
        pythons = pool.map(lambda item: _venv(base / item[0], item[1]), wanted.items())
        return dict(zip(wanted, pythons, strict=True))


def test_the_build_compiles_the_listed_modules_into_a_platform_wheel(
    built: tuple[Path, str],
) -> None:
    wheel, log = built
    assert f"aiosio: compiling {len(MYPYC_MODULES)} modules with mypyc: " in log, log
    interpreter = f"cp{sys.version_info.major}{sys.version_info.minor}"
    tag = f"aiosio-{aiosio.__version__}-{interpreter}-{interpreter}-"
    assert wheel.name.startswith(tag), wheel.name
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    for module in MYPYC_MODULES:
        path = module.replace(".", "/")
        assert f"{path}.py" in names  # the source ships too: the extension sits beside it
        assert f"{path}{SUFFIX}" in names, names
    extensions = sorted(n for n in names if n.endswith(SUFFIX))
    assert len(extensions) == len(MYPYC_MODULES) + 1, extensions  # + the shared library
    outside = [n for n in names if not n.startswith(("aiosio/", "aiosio-"))]
    assert outside == [f"aiosio__mypyc{SUFFIX}"], outside


def test_the_bare_install_runs_compiled_and_serves(installs: dict[str, Path]) -> None:
    code = f"""
        import asyncio
        import importlib
        from pathlib import Path

        import aiosio
        from aiosio._compiled import MYPYC_MODULES

        assert "site-packages" in aiosio.__file__, aiosio.__file__  # the install
        assert aiosio.__mypyc__ == MYPYC_MODULES, aiosio.__mypyc__
        for name in MYPYC_MODULES:
            path = Path(importlib.import_module(name).__file__)
            source = path.parent / (name.rpartition(".")[2] + ".py")
            assert path.name.endswith({SUFFIX!r}) and source.is_file(), (path, source)


        async def main():
            sio = aiosio.Server()
            sio.on("echo", lambda socket, *args: list(args))
            server = await aiosio.serve(sio, "127.0.0.1", 0)
            client = aiosio.Client(
                f"http://127.0.0.1:{{server.port}}", transports=["websocket"], reconnection=False
            )
            try:
                await client.connect()
                print(await client.emit_with_ack("echo", "hi", b"\\x01", timeout=10))
            finally:
                await client.disconnect()
                await server.close()


        asyncio.run(main())
    """
    python = installs["bare"]
    out = _run([str(python), "-c", textwrap.dedent(code)], python.parent.parent, 120)
    assert out.strip() == "['hi', b'\\x01']", out
    version = _run([str(python.parent / "aiosio"), "--version"], python.parent.parent, 60)
    compiled = f"{len(MYPYC_MODULES)} modules compiled with mypyc"
    assert version.strip() == f"aiosio {aiosio.__version__} ({compiled})"


def test_the_suite_passes_against_the_compiled_install(installs: dict[str, Path]) -> None:
    python = installs["test"]
    argv = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITE]
    out = _run(argv, ROOT, 1200)  # from the checkout: its tests, the install's aiosio
    assert " passed" in out.splitlines()[-1], out
    assert " failed" not in out.splitlines()[-1], out


def test_without_a_c_compiler_the_wheel_is_pure(tmp_path: Path) -> None:
    # from the sdist, as pip builds it (and nothing built in this checkout's build/)
    argv = [sys.executable, "-m", "build", "--outdir", str(tmp_path), str(ROOT)]
    log = _run(argv, ROOT, 900, CC=str(tmp_path / "no-such-cc"))
    assert "aiosio: building pure Python (no working C compiler with Python's headers (" in log
    wheels = [p.name for p in tmp_path.glob("*.whl")]
    assert wheels == [f"aiosio-{aiosio.__version__}-py3-none-any.whl"]


def test_an_editable_install_stays_pure(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, checkout / name)
    shutil.copytree(ROOT / "src", checkout / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, 600)
    python = venv / "bin" / "python"
    log = _run([str(python), "-m", "pip", "install", "-v", "-e", str(checkout)], tmp_path, 900)
    assert "aiosio: editable install: pure Python" in log, log
    assert sorted(checkout.rglob(f"*{SUFFIX}")) == []
    code = "import aiosio; print(aiosio.__mypyc__, aiosio.__file__)"
    out = _run([str(python), "-c", code], tmp_path, 60)
    assert out.strip() == f"() {checkout / 'src' / 'aiosio' / '__init__.py'}", out
