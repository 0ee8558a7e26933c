"""Find the application a command names: ``module:attribute``, checked before anything listens.

Used by ``aiosio serve`` and by each ``--workers`` process, which loads the application again.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import types
from typing import Any

__all__ = ["load_app", "load_object"]


def load_app(target: str) -> Any:
    """Import ``module:attribute`` (``attribute`` may be dotted) and return the object, which must
    be an ``aiosio.Server`` or an ``aiosio.EngineServer``; exit with a message saying what was
    found otherwise."""
    obj = load_object(target)
    check_app(obj, target)
    return obj


def load_object(target: str) -> Any:
    """Import ``module:attribute`` (``attribute`` may be dotted) and return the object; exit with
    a message saying what is missing otherwise."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise SystemExit(
            f"aiosio: expected module:app (for example myproject.realtime:sio), got {target!r}"
        )
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"aiosio: cannot import module {module_name!r}: {exc}") from exc
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SystemExit(
                f"aiosio: module {module_name!r} has no attribute {attribute!r}"
            ) from None
    return obj


def check_app(obj: Any, target: str) -> None:
    """Refuse, before listening, an object the native server cannot serve."""
    from aiosio.engine.server import EngineServer
    from aiosio.server.server import Server
    from aiosio.transports.asgi import AsgiApp

    if isinstance(obj, Server | EngineServer):
        return
    expected = "expected an aiosio.Server or an aiosio.EngineServer"
    module_name = target.partition(":")[0]
    if isinstance(obj, AsgiApp) or is_asgi_callable(obj):
        raise SystemExit(
            f"aiosio: {target} is an ASGI application ({type(obj).__name__}), {expected}: "
            f"give aiosio serve the Server itself (the object you called .asgi() on), or run the "
            f'ASGI application under uvicorn: pip install "aiosio[asgi]", then uvicorn {target}'
        )
    if isinstance(obj, types.ModuleType):
        found = f"the module {obj.__name__}"
    elif inspect.isclass(obj):
        found = f"the class {obj.__qualname__}"
    elif callable(obj):
        found = f"the function {getattr(obj, '__qualname__', type(obj).__name__)}"
    else:
        found = f"a {type(obj).__name__} object"
    raise SystemExit(
        f"aiosio: {target} is {found}, {expected}: name the server object in the module "
        f"(for example {module_name}:sio, where sio = aiosio.Server())"
    )


def is_asgi_callable(obj: Any) -> bool:
    """An ASGI application: an async callable of (scope, receive, send)."""
    if inspect.isclass(obj) or not callable(obj):
        return False
    call = obj if inspect.isfunction(obj) or inspect.ismethod(obj) else type(obj).__call__
    if not inspect.iscoroutinefunction(call):
        return False
    try:
        parameters = inspect.signature(obj).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False
    return len(parameters) == 3
