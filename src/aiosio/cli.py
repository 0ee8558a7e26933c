"""The ``aiosio`` command: ``aiosio serve [module:app]``."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import ssl
import sys
from typing import Any

__all__ = ["load_app", "main"]

DEFAULT_APP = "aiosio.demo:sio"


def load_app(target: str) -> Any:
    """Import ``module:attribute`` (``attribute`` may be dotted) and return the object."""
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


def _serve(args: argparse.Namespace) -> int:
    from aiosio.transports.native import run

    if args.workers > 1:
        from aiosio.workers import serve_workers

        if args.certfile:
            raise SystemExit(
                "aiosio: --workers with TLS is not supported; terminate TLS in a proxy"
            )
        serve_workers(args.app, args.host, args.port, args.workers, args.redis)
        return 0
    app = load_app(args.app)
    context = None
    if args.certfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.certfile, args.keyfile)
    run(app, host=args.host, port=args.port, ssl=context, use_uvloop=not args.no_uvloop)
    return 0


def _doctor(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from aiosio.doctor.checks import DoctorOptions, diagnose

    trace = None
    if args.verbose:

        def trace(direction: str, text: str) -> None:
            sys.stderr.write(f"{direction} {text}\n")

    headers = {}
    for header in args.header or ():
        name, _, value = header.partition(":")
        headers[name.strip()] = value.strip()
    try:
        auth = json.loads(args.auth) if args.auth else None
    except ValueError as exc:
        raise SystemExit(f"aiosio doctor: --auth must be JSON: {exc}") from exc
    options = DoctorOptions(
        url=args.url,
        path=args.path,
        namespace=args.namespace,
        auth=auth,
        origin=args.origin,
        credentials=args.credentials,
        headers=headers,
        transport=args.transport,
        soak=args.soak,
        probe_payload=args.probe_payload,
        insecure=args.insecure,
        ca=args.ca,
        timeout=args.timeout,
        trace=trace,
    )
    report = asyncio.run(diagnose(options))
    if args.json:
        sys.stdout.write(report.as_json() + "\n")
    else:
        report.render()
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aiosio", description=__doc__)
    parser.add_argument(
        "--log-level", default=os.environ.get("AIOSIO_LOG_LEVEL", "info"), help="default: info"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the native server for an app")
    serve.add_argument(
        "app",
        nargs="?",
        default=DEFAULT_APP,
        help=f"module:attribute of an EngineServer or Server (default: {DEFAULT_APP}, a demo)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    serve.add_argument("--port", type=int, default=3000, help="default: 3000")
    serve.add_argument("--certfile", help="TLS certificate chain (PEM) to serve https/wss")
    serve.add_argument("--keyfile", help="TLS private key (PEM)")
    serve.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes behind the port, with sticky sessions (default: 1)",
    )
    serve.add_argument(
        "--redis", help="with --workers: connect the workers through this Redis URL instead"
    )
    doctor = commands.add_parser(
        "doctor", help="diagnose a Socket.IO deployment (any server: Node, Python, aiosio)"
    )
    doctor.add_argument("url", help="the server's URL, e.g. https://example.com (path = namespace)")
    doctor.add_argument("--path", help="the Socket.IO path (default /socket.io/)")
    doctor.add_argument("--namespace", help="the namespace to connect (default: the URL's path)")
    doctor.add_argument("--auth", help="the auth payload, as JSON")
    doctor.add_argument("--origin", help="the page's origin, to check CORS as a browser would")
    doctor.add_argument("--credentials", action="store_true", help="the page sends credentials")
    doctor.add_argument("--header", action="append", help="an extra request header 'Name: value'")
    doctor.add_argument("--transport", choices=("polling", "websocket"), help="check only this one")
    doctor.add_argument(
        "--soak", type=float, default=0.0, help="hold an idle connection this long (seconds)"
    )
    doctor.add_argument(
        "--probe-payload", action="store_true", help="find the largest accepted message"
    )
    doctor.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    doctor.add_argument("--ca", help="a CA file to verify the server's certificate with")
    doctor.add_argument("--timeout", type=float, default=10.0, help="per step (seconds)")
    doctor.add_argument("--json", action="store_true", help="the report as JSON")
    doctor.add_argument(
        "--verbose", action="store_true", help="show every request and response, like curl -v"
    )
    worker = commands.add_parser("_worker", help=argparse.SUPPRESS)
    worker.add_argument("app")
    worker.add_argument("--index", type=int, required=True)
    worker.add_argument("--workers", type=int, required=True)
    worker.add_argument("--dir", required=True)
    worker.add_argument("--redis")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "doctor":
        return _doctor(args)
    if args.command == "_worker":
        from aiosio.workers import worker_main

        worker_main(args.app, args.index, args.workers, args.dir, args.redis)
        return 0
    return _serve(args)
