"""Fixes that name a client option, written in the language of the client the user named
(``aiosio doctor --client js|python``), or in both when none was named."""

from __future__ import annotations

from aiosio.doctor.options import DoctorOptions

__all__ = ["fresh_auth", "path_option", "websocket_only", "with_credentials"]


def websocket_only(options: DoctorOptions) -> str:
    """How a client connects with WebSocket only (no long-polling)."""
    return _for_client(
        options,
        'io(url, { transports: ["websocket"] })',
        'aiosio.Client(url, transports=["websocket"])',
    )


def path_option(options: DoctorOptions, path: str) -> str:
    """How a client connects to a server whose Socket.IO path is ``path``."""
    return _for_client(
        options, f'io(url, {{ path: "{path}" }})', f'aiosio.Client(url, path="{path}")'
    )


def fresh_auth(options: DoctorOptions) -> str:
    """How a client sends a fresh token on every attempt (auth as a function)."""
    return _for_client(
        options,
        "io(url, { auth: (cb) => cb({ token: freshToken() }) })",
        'aiosio.Client(url, auth=lambda: {"token": fresh_token()})',
    )


def with_credentials(options: DoctorOptions) -> str:
    """How a browser client sends its cookies cross-origin (a Python client is no browser)."""
    return _for_client(
        options,
        "io(url, { withCredentials: true })",
        "nothing for aiosio.Client: CORS binds browsers only",
    )


def _for_client(options: DoctorOptions, js: str, python: str) -> str:
    if options.client == "js":
        return js
    if options.client == "python":
        return python
    return f"{js} (JavaScript), {python} (Python)"
