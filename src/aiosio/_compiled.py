"""Which of aiosio's modules run compiled.

``setup.py`` compiles the modules :data:`MYPYC_MODULES` names with mypyc when it builds a wheel
and can (mypy in the build environment, a C compiler, ``AIOSIO_PURE_PYTHON`` unset), and builds a
pure-Python wheel otherwise; an editable install is always pure Python. Compiled or not, each
module is the same source and behaves the same (the test suite runs against both builds:
tests/packaging/test_packaging_compiled.py); only its speed differs.

Compiled code differs from interpreted code where a caller breaks the annotations: mypyc checks
every argument's type at run time (``compress(1)`` for a ``bool`` raises ``TypeError``), its
classes take no attribute they do not declare and no subclass from interpreted code, and a frozen
dataclass of it cannot be copied or pickled. So only modules that aiosio's own code alone calls,
type-checked by ``mypy --strict``, are listed: none of them defines a name of the public API
(``aiosio.__all__``, the public subpackages' ``__all__``; tests/core/test_compiled.py checks it),
and ``aiosio.Socket``, ``aiosio.EngineSocket`` and the adapters' base class stay interpreted,
however hot their paths are. A class that would need ``mypy_extensions`` at run time to compile
(a subclass of ``str`` or ``list``) is moved or reshaped instead: aiosio's dependencies stay
httptools, orjson and msgpack.

``setup.py`` reads :data:`MYPYC_MODULES` from this file without importing aiosio (its
dependencies are not in the build environment): keep it a literal tuple of strings.
"""

from __future__ import annotations

import importlib.util
from importlib.machinery import ExtensionFileLoader

__all__ = ["MYPYC_MODULES", "compiled_modules"]

# The path of every message on the native server's WebSocket, read and written: its frames and
# the codec's state machine, the Engine.IO session, the Socket.IO packet and the connection's
# client, the channel and its write batcher (docs/performance.md, "The compiled build").
MYPYC_MODULES = (
    "aiosio.protocol.socketio",
    "aiosio.protocol.websocket",
    "aiosio.protocol.websocket_frames",
    "aiosio.protocol.session",
    "aiosio.server.client",
    "aiosio.transports.native.websocket",
)


def compiled_modules() -> tuple[str, ...]:
    """The modules of :data:`MYPYC_MODULES` this installation loads as extension modules (empty
    in a pure-Python install)."""
    compiled = []
    for name in MYPYC_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is not None and isinstance(spec.loader, ExtensionFileLoader):
            compiled.append(name)
    return tuple(compiled)
