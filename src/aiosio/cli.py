"""The ``aiosio`` command: ``aiosio serve [module:app]``, ``aiosio doctor URL``."""

from __future__ import annotations

import argparse
import logging
import os
import ssl
import sys
from typing import TYPE_CHECKING
from typing import Literal

from aiosio._recovery_log import DEFAULT_LOG_SIZE
from aiosio.loader import load_app

__all__ = ["load_app", "main"]

DEFAULT_APP = "aiosio.demo:sio"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
DESCRIPTION = """\
Socket.IO for asyncio. 'aiosio serve' runs a Server (with no argument, a demo on
http://127.0.0.1:3000/socket.io/); 'aiosio doctor URL' diagnoses any Socket.IO deployment.
'aiosio COMMAND --help' describes each command."""


if TYPE_CHECKING:
    from aiosio.transports.webtransport import WebTransport

logger = logging.getLogger("aiosio.cli")


def _uvloop_version() -> str | None:
    try:
        import uvloop
    except ImportError:
        return None
    return str(getattr(uvloop, "__version__", "?"))


def _require_extra(module: str, *, extra: str, feature: str) -> None:
    """Refuse to start, in one line, what would fail later in every worker with a traceback."""
    from aiosio._extras import import_extra

    try:
        import_extra(module, extra=extra, feature=feature)
    except ImportError as exc:
        raise SystemExit(f"aiosio: {exc}") from exc


def _serve(args: argparse.Namespace) -> int:
    from aiosio.transports.native import run

    use_uvloop = not args.no_uvloop  # in the one process, or in the master and every worker
    if use_uvloop:
        version = _uvloop_version()
        if version is None:
            logger.info(
                "uvloop is not installed: running on asyncio's default event loop "
                '(pip install "aiosio[speed]" for uvloop)'
            )
            use_uvloop = False
        else:
            logger.info("running on uvloop %s", version)
    if args.workers > 1:
        from aiosio.workers import serve_workers

        if args.certfile:
            raise SystemExit(
                "aiosio: --workers with TLS is not supported; terminate TLS in a proxy"
            )
        # The workers load it again; refuse a wrong target before starting them.
        app = load_app(args.app)
        offered = "webtransport" in getattr(getattr(app, "engine", app), "transports", ())
        if offered or args.webtransport_port is not None:
            raise SystemExit(
                "aiosio: --workers does not serve WebTransport: the workers share the TCP port "
                "through the master, but QUIC on UDP would need routing by connection id "
                "(its handshakes would offer an upgrade nothing serves); remove 'webtransport' "
                "from the server's transports, or run one process (without --workers)"
            )
        if args.redis:
            _require_extra("redis.asyncio", extra="redis", feature="aiosio serve --redis")
        try:
            serve_workers(
                args.app,
                args.host,
                args.port,
                args.workers,
                args.redis,
                recovery_log_size=args.recovery_log_size,
                use_uvloop=use_uvloop,
            )
        except (
            RuntimeError,
            OSError,
            ValueError,
        ) as exc:  # a worker that did not start, a port taken
            raise SystemExit(f"aiosio: {exc}") from None
        return 0
    app = load_app(args.app)
    context = None
    if args.certfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.certfile, args.keyfile)
    webtransport = _webtransport(app, args)
    try:
        run(
            app,
            host=args.host,
            port=args.port,
            ssl=context,
            use_uvloop=use_uvloop,
            webtransport=webtransport,
        )
    except ValueError as exc:  # a WebTransport configuration the server refuses
        raise SystemExit(f"aiosio: {exc}") from None
    return 0


def _webtransport(app: object, args: argparse.Namespace) -> WebTransport | None:
    """WebTransport on the same certificate and port number, when the app offers it."""
    from aiosio.transports.webtransport import WebTransport

    engine = getattr(app, "engine", app)
    if "webtransport" not in getattr(engine, "transports", ()):
        return None
    if not args.certfile:
        raise SystemExit(
            "aiosio: the server's transports include 'webtransport', which runs over HTTP/3 "
            "and needs TLS: give --certfile and --keyfile (docs/webtransport.md makes a "
            "development certificate)"
        )
    _require_extra("aioquic", extra="webtransport", feature="WebTransport")
    return WebTransport(
        certfile=args.certfile,
        keyfile=args.keyfile or args.certfile,
        port=args.webtransport_port,
    )


def _asyncapi(args: argparse.Namespace) -> int:
    import json

    from aiosio.asyncapi import asyncapi_document
    from aiosio.loader import load_object
    from aiosio.server.server import Server

    sio = load_object(args.app)
    if not isinstance(sio, Server):
        raise SystemExit(
            f"aiosio asyncapi: {args.app} is a {type(sio).__name__}, expected an aiosio.Server"
        )
    emits = load_object(args.emits) if args.emits else None
    document = asyncapi_document(
        sio, title=args.title, version=args.api_version, url=args.url, emits=emits
    )
    text = json.dumps(document, indent=2) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _proxy_option(value: str | None) -> str | Literal[False] | None:
    """``--proxy URL``; ``--proxy ''`` for none (the environment ignored); absent: None."""
    if value is None:
        return None
    return value or False


def _doctor(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from aiosio.doctor.checks import DoctorOptions
    from aiosio.doctor.checks import diagnose

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
        client=args.client,
        proxy=_proxy_option(args.proxy),
        soak=args.soak,
        probe_payload=args.probe_payload,
        insecure=args.insecure,
        ca=args.ca,
        timeout=args.timeout,
        trace=trace,
        certificate_hashes=list(args.certificate_hash or ()),
        webtransport_port=args.webtransport_port,
    )
    report = asyncio.run(diagnose(options))
    if args.json:
        sys.stdout.write(report.as_json() + "\n")
    else:
        report.render()
    return 0 if report.ok else 1


def _global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The options accepted before and after the command (``aiosio serve --log-level debug``).

    On a command's parser their default is SUPPRESS, so that an option given before the command is
    not overwritten by the command's default."""
    from aiosio import __mypyc__
    from aiosio import __version__

    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default=os.environ.get("AIOSIO_LOG_LEVEL", "info").lower()
        if defaults
        else argparse.SUPPRESS,
        help="the level of the log lines on stderr (default: info, or $AIOSIO_LOG_LEVEL)",
    )
    build = f"{len(__mypyc__)} modules compiled with mypyc" if __mypyc__ else "pure Python"
    parser.add_argument("--version", action="version", version=f"aiosio {__version__} ({build})")


def _worker_parser() -> argparse.ArgumentParser:
    """``aiosio _worker``: one worker process of ``--workers`` (started by the master only)."""
    worker = argparse.ArgumentParser(prog="aiosio _worker")
    _global_options(worker, defaults=True)
    worker.add_argument("app")
    worker.add_argument("--index", type=int, required=True)
    worker.add_argument("--workers", type=int, required=True)
    worker.add_argument("--dir", required=True)
    worker.add_argument("--redis")
    worker.add_argument("--no-uvloop", action="store_true")
    return worker


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aiosio", description=DESCRIPTION)
    _global_options(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run a Socket.IO server on the native server (with no app: a demo)",
        description="Run module:app (an aiosio.Server or aiosio.EngineServer) on the native "
        "server until Ctrl-C or SIGTERM. With no app, a demo: echo answers with its arguments, "
        "chat broadcasts, join joins a room.",
    )
    _global_options(serve, defaults=False)
    serve.add_argument(
        "app",
        nargs="?",
        default=DEFAULT_APP,
        help=f"module:attribute of a Server or EngineServer (default: {DEFAULT_APP}, the demo)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    serve.add_argument("--port", type=int, default=3000, help="default: 3000")
    serve.add_argument("--certfile", help="TLS certificate chain (PEM) to serve https/wss")
    serve.add_argument("--keyfile", help="TLS private key (PEM)")
    serve.add_argument(
        "--webtransport-port",
        type=int,
        help="the UDP port of WebTransport (HTTP/3), when the app's transports include "
        "'webtransport' (default: --port; it uses --certfile and --keyfile)",
    )
    serve.add_argument(
        "--no-uvloop", action="store_true", help="use asyncio's default loop even with uvloop"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes behind the port, with sticky sessions (default: 1)",
    )
    serve.add_argument(
        "--redis", help="with --workers: connect the workers through this Redis URL instead"
    )
    serve.add_argument(
        "--recovery-log-size",
        type=int,
        default=DEFAULT_LOG_SIZE,
        help="with --workers and connection state recovery: the broadcasts of a namespace the "
        f"master keeps for clients to recover on any worker (default: {DEFAULT_LOG_SIZE})",
    )
    asyncapi = commands.add_parser(
        "asyncapi",
        help="write the AsyncAPI 3.0 document of a server (its events and payload schemas)",
        description="Write the AsyncAPI 3.0 document of module:sio (an aiosio.Server): its "
        "namespaces, the events each direction, their payload schemas from the handlers' "
        "annotations (pydantic: the typed extra), acknowledgements, and the server's URL and "
        "transports. JSON on stdout, or in --output.",
    )
    asyncapi.add_argument("app", help="module:attribute of an aiosio.Server")
    asyncapi.add_argument("--title", default="Socket.IO API", help="info.title")
    asyncapi.add_argument("--api-version", default="1.0.0", help="info.version")
    asyncapi.add_argument(
        "--url", default="http://localhost:3000", help="where clients connect (servers)"
    )
    asyncapi.add_argument(
        "--emits",
        help="module:attribute of the Protocol whose methods are the events the server sends "
        "(as given to aiosio.typed.emitter)",
    )
    asyncapi.add_argument("--output", "-o", help="a file to write (default: stdout)")
    doctor = commands.add_parser(
        "doctor",
        help="diagnose a Socket.IO deployment (any server: Node, Python, aiosio)",
        description="Check a Socket.IO deployment step by step (DNS, TCP, TLS, the handshake, "
        "CORS, WebSocket, sticky sessions, the namespace); exit 0 only when it works.",
    )
    _global_options(doctor, defaults=False)
    doctor.add_argument("url", help="the server's URL, e.g. https://example.com (path = namespace)")
    doctor.add_argument("--path", help="the Socket.IO path (default /socket.io/)")
    doctor.add_argument("--namespace", help="the namespace to connect (default: the URL's path)")
    doctor.add_argument("--auth", help="the auth payload, as JSON")
    doctor.add_argument("--origin", help="the page's origin, to check CORS as a browser would")
    doctor.add_argument("--credentials", action="store_true", help="the page sends credentials")
    doctor.add_argument("--header", action="append", help="an extra request header 'Name: value'")
    doctor.add_argument("--transport", choices=("polling", "websocket"), help="check only this one")
    doctor.add_argument(
        "--proxy",
        help="an HTTP proxy to go through, http://[user:password@]host:port (default: "
        "HTTPS_PROXY/HTTP_PROXY/NO_PROXY, as the client; --proxy '' for none)",
    )
    doctor.add_argument(
        "--client",
        choices=("js", "python"),
        help="write the fixes for this client (socket.io-client or aiosio.Client; default both)",
    )
    doctor.add_argument(
        "--soak", type=float, default=0.0, help="hold an idle connection this long (seconds)"
    )
    doctor.add_argument(
        "--probe-payload", action="store_true", help="find the largest accepted message"
    )
    doctor.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    doctor.add_argument("--ca", help="a CA file to verify the server's certificate with")
    doctor.add_argument(
        "--certificate-hash",
        action="append",
        help="WebTransport: accept the certificate with this SHA-256 (base64 or hex), as a "
        "page's serverCertificateHashes (a development certificate)",
    )
    doctor.add_argument(
        "--webtransport-port", type=int, help="WebTransport's UDP port (default: the URL's)"
    )
    doctor.add_argument("--timeout", type=float, default=10.0, help="per step (seconds)")
    doctor.add_argument("--json", action="store_true", help="the report as JSON")
    doctor.add_argument(
        "--verbose", action="store_true", help="show every request and response, like curl -v"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``aiosio`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit
    status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["_worker"]:
        args = _worker_parser().parse_args(argv[1:])
        args.command = "_worker"
    else:
        args = _parser().parse_args(argv)
    if args.log_level not in LOG_LEVELS:  # from $AIOSIO_LOG_LEVEL, which argparse does not check
        raise SystemExit(
            f"aiosio: AIOSIO_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, "
            f"got {args.log_level!r}"
        )
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "doctor":
        return _doctor(args)
    if args.command == "asyncapi":
        return _asyncapi(args)
    if args.command == "_worker":
        from aiosio.workers import worker_main

        worker_main(
            args.app, args.index, args.workers, args.dir, args.redis, use_uvloop=not args.no_uvloop
        )
        return 0
    return _serve(args)
