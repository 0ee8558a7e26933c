"""CORS headers, pinned to what the npm ``cors`` package (2.8.6) writes, and origin enforcement.

``REFERENCE`` was produced by running the package behind a real node ``http`` server for each
configuration in ``CONFIGS`` and request in ``REQUESTS`` (raw response headers, in order, without
``Date``, ``Connection``, ``Keep-Alive`` and ``Content-Length``). Every preflight answered by the
package had status 204 and ``Content-Length: 0``; for ``fn_false`` and ``disabled`` it wrote no CORS
header and passed the request on.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any

import pytest

from aiosio.protocol import cors as cors_module
from aiosio.protocol.cors import PREFLIGHT_STATUS
from aiosio.protocol.cors import Cors
from aiosio.protocol.cors import is_preflight

ALLOW_ORIGIN = "Access-Control-Allow-Origin"
VARY = "Vary"
ALLOW_CREDENTIALS = "Access-Control-Allow-Credentials"
ALLOW_METHODS = "Access-Control-Allow-Methods"
ALLOW_HEADERS = "Access-Control-Allow-Headers"
MAX_AGE = "Access-Control-Max-Age"
EXPOSE_HEADERS = "Access-Control-Expose-Headers"

APP = "https://app.example.com"
EVIL = "https://evil.example"
ORG = "https://x.example.org"


async def _refuse_async(origin: str | None) -> bool:
    return False


# The node configurations, in the comment, and their aiosio equivalents.
CONFIGS: dict[str, Cors] = {
    # {}
    "star": Cors(),
    # {methods: ['GET','POST'], allowedHeaders: ['X-A','X-B'], exposedHeaders: ['X-E','X-F'],
    #  maxAge: 600}
    "star_full": Cors(
        methods=["GET", "POST"],
        allowed_headers=["X-A", "X-B"],
        exposed_headers=["X-E", "X-F"],
        max_age=600,
    ),
    # {origin: 'https://app.example.com'}
    "fixed": Cors(origins=APP),
    # {origin: 'https://app.example.com', credentials: true}
    "fixed_cred": Cors(origins=APP, credentials=True),
    # {origin: true}
    "reflect": Cors(origins=True),
    # {origin: true, credentials: true, methods: ['GET','POST'], allowedHeaders: ['X-A'],
    #  exposedHeaders: ['X-E'], maxAge: 0}
    "reflect_cred_full": Cors(
        origins=True,
        credentials=True,
        methods=("GET", "POST"),
        allowed_headers=("X-A",),
        exposed_headers=("X-E",),
        max_age=0,
    ),
    # {origin: /^https:\/\/[a-z]+\.example\.com$/}
    "regex": Cors(origins=re.compile(r"^https://[a-z]+\.example\.com$")),
    # {origin: ['https://app.example.com', /\.example\.org$/], credentials: true}
    "list_cred": Cors(origins=[APP, re.compile(r"\.example\.org$")], credentials=True),
    # {origin: (o, cb) => cb(null, true), credentials: true}
    "fn_true": Cors(origins=lambda origin: True, credentials=True),
    # {origin: (o, cb) => cb(null, false), credentials: true}
    "fn_false": Cors(origins=_refuse_async, credentials=True),
    # {origin: true, methods: [], allowedHeaders: [], exposedHeaders: []}
    "empty_seqs": Cors(origins=True, methods=[], allowed_headers=[], exposed_headers=[]),
    # {origin: false}
    "disabled": Cors(origins=False),
}

# name: (method, origin, access-control-request-headers)
REQUESTS: dict[str, tuple[str, str | None, str | None]] = {
    "pre_ok_rh": ("OPTIONS", APP, "content-type,x-foo"),
    "pre_ok": ("OPTIONS", APP, None),
    "pre_bad_rh": ("OPTIONS", EVIL, "x-foo"),
    "pre_none": ("OPTIONS", None, None),
    "get_ok": ("GET", APP, None),
    "get_bad": ("GET", EVIL, None),
    "get_none": ("GET", None, None),
    "get_org": ("GET", ORG, None),
}

REFERENCE: dict[str, dict[str, list[tuple[str, str]]]] = {
    "star": {
        "pre_ok_rh": [
            (ALLOW_ORIGIN, "*"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
            (VARY, "Access-Control-Request-Headers"),
            (ALLOW_HEADERS, "content-type,x-foo"),
        ],
        "pre_ok": [
            (ALLOW_ORIGIN, "*"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
            (VARY, "Access-Control-Request-Headers"),
        ],
        "pre_bad_rh": [
            (ALLOW_ORIGIN, "*"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
            (VARY, "Access-Control-Request-Headers"),
            (ALLOW_HEADERS, "x-foo"),
        ],
        "pre_none": [
            (ALLOW_ORIGIN, "*"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
            (VARY, "Access-Control-Request-Headers"),
        ],
        "get_ok": [(ALLOW_ORIGIN, "*")],
        "get_bad": [(ALLOW_ORIGIN, "*")],
        "get_none": [(ALLOW_ORIGIN, "*")],
        "get_org": [(ALLOW_ORIGIN, "*")],
    },
    "star_full": {
        "pre_ok_rh": [
            (ALLOW_ORIGIN, "*"),
            (ALLOW_METHODS, "GET,POST"),
            (ALLOW_HEADERS, "X-A,X-B"),
            (MAX_AGE, "600"),
            (EXPOSE_HEADERS, "X-E,X-F"),
        ],
        "pre_ok": [
            (ALLOW_ORIGIN, "*"),
            (ALLOW_METHODS, "GET,POST"),
            (ALLOW_HEADERS, "X-A,X-B"),
            (MAX_AGE, "600"),
            (EXPOSE_HEADERS, "X-E,X-F"),
        ],
        "pre_bad_rh": [
            (ALLOW_ORIGIN, "*"),
            (ALLOW_METHODS, "GET,POST"),
            (ALLOW_HEADERS, "X-A,X-B"),
            (MAX_AGE, "600"),
            (EXPOSE_HEADERS, "X-E,X-F"),
        ],
        "pre_none": [
            (ALLOW_ORIGIN, "*"),
            (ALLOW_METHODS, "GET,POST"),
            (ALLOW_HEADERS, "X-A,X-B"),
            (MAX_AGE, "600"),
            (EXPOSE_HEADERS, "X-E,X-F"),
        ],
        "get_ok": [(ALLOW_ORIGIN, "*"), (EXPOSE_HEADERS, "X-E,X-F")],
        "get_bad": [(ALLOW_ORIGIN, "*"), (EXPOSE_HEADERS, "X-E,X-F")],
        "get_none": [(ALLOW_ORIGIN, "*"), (EXPOSE_HEADERS, "X-E,X-F")],
        "get_org": [(ALLOW_ORIGIN, "*"), (EXPOSE_HEADERS, "X-E,X-F")],
    },
    "fixed": {
        "pre_ok_rh": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
            (ALLOW_HEADERS, "content-type,x-foo"),
        ],
        "pre_ok": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
        ],
        "pre_bad_rh": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
            (ALLOW_HEADERS, "x-foo"),
        ],
        "pre_none": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
        ],
        "get_ok": [(ALLOW_ORIGIN, "https://app.example.com"), (VARY, "Origin")],
        "get_bad": [(ALLOW_ORIGIN, "https://app.example.com"), (VARY, "Origin")],
        "get_none": [(ALLOW_ORIGIN, "https://app.example.com"), (VARY, "Origin")],
        "get_org": [(ALLOW_ORIGIN, "https://app.example.com"), (VARY, "Origin")],
    },
    "fixed_cred": {
        "pre_ok_rh": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_CREDENTIALS, "true"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
            (ALLOW_HEADERS, "content-type,x-foo"),
        ],
        "pre_ok": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_CREDENTIALS, "true"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
        ],
        "pre_bad_rh": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_CREDENTIALS, "true"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
            (ALLOW_HEADERS, "x-foo"),
        ],
        "pre_none": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_CREDENTIALS, "true"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
        ],
        "get_ok": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin"),
            (ALLOW_CREDENTIALS, "true"),
        ],
        "get_bad": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin"),
            (ALLOW_CREDENTIALS, "true"),
        ],
        "get_none": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin"),
            (ALLOW_CREDENTIALS, "true"),
        ],
        "get_org": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin"),
            (ALLOW_CREDENTIALS, "true"),
        ],
    },
    "reflect": {
        "pre_ok_rh": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
            (ALLOW_HEADERS, "content-type,x-foo"),
        ],
        "pre_ok": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
        ],
        "pre_bad_rh": [
            (ALLOW_ORIGIN, "https://evil.example"),
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
            (ALLOW_HEADERS, "x-foo"),
        ],
        "pre_none": [
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
        ],
        "get_ok": [(ALLOW_ORIGIN, "https://app.example.com"), (VARY, "Origin")],
        "get_bad": [(ALLOW_ORIGIN, "https://evil.example"), (VARY, "Origin")],
        "get_none": [(VARY, "Origin")],
        "get_org": [(ALLOW_ORIGIN, "https://x.example.org"), (VARY, "Origin")],
    },
    "reflect_cred_full": {
        "pre_ok_rh": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin"),
            (ALLOW_CREDENTIALS, "true"),
            (ALLOW_METHODS, "GET,POST"),
            (ALLOW_HEADERS, "X-A"),
            (MAX_AGE, "0"),
            (EXPOSE_HEADERS, "X-E"),
        ],
        "pre_ok": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin"),
            (ALLOW_CREDENTIALS, "true"),
            (ALLOW_METHODS, "GET,POST"),
            (ALLOW_HEADERS, "X-A"),
            (MAX_AGE, "0"),
            (EXPOSE_HEADERS, "X-E"),
        ],
        "pre_bad_rh": [
            (ALLOW_ORIGIN, "https://evil.example"),
            (VARY, "Origin"),
            (ALLOW_CREDENTIALS, "true"),
            (ALLOW_METHODS, "GET,POST"),
            (ALLOW_HEADERS, "X-A"),
            (MAX_AGE, "0"),
            (EXPOSE_HEADERS, "X-E"),
        ],
        "pre_none": [
            (VARY, "Origin"),
            (ALLOW_CREDENTIALS, "true"),
            (ALLOW_METHODS, "GET,POST"),
            (ALLOW_HEADERS, "X-A"),
            (MAX_AGE, "0"),
            (EXPOSE_HEADERS, "X-E"),
        ],
        "get_ok": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin"),
            (ALLOW_CREDENTIALS, "true"),
            (EXPOSE_HEADERS, "X-E"),
        ],
        "get_bad": [
            (ALLOW_ORIGIN, "https://evil.example"),
            (VARY, "Origin"),
            (ALLOW_CREDENTIALS, "true"),
            (EXPOSE_HEADERS, "X-E"),
        ],
        "get_none": [(VARY, "Origin"), (ALLOW_CREDENTIALS, "true"), (EXPOSE_HEADERS, "X-E")],
        "get_org": [
            (ALLOW_ORIGIN, "https://x.example.org"),
            (VARY, "Origin"),
            (ALLOW_CREDENTIALS, "true"),
            (EXPOSE_HEADERS, "X-E"),
        ],
    },
    "regex": {
        "pre_ok_rh": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
            (ALLOW_HEADERS, "content-type,x-foo"),
        ],
        "pre_ok": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
        ],
        "pre_bad_rh": [
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
            (ALLOW_HEADERS, "x-foo"),
        ],
        "pre_none": [
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
        ],
        "get_ok": [(ALLOW_ORIGIN, "https://app.example.com"), (VARY, "Origin")],
        "get_bad": [(VARY, "Origin")],
        "get_none": [(VARY, "Origin")],
        "get_org": [(VARY, "Origin")],
    },
    "list_cred": {
        "pre_ok_rh": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_CREDENTIALS, "true"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
            (ALLOW_HEADERS, "content-type,x-foo"),
        ],
        "pre_ok": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_CREDENTIALS, "true"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
        ],
        "pre_bad_rh": [
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_CREDENTIALS, "true"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
            (ALLOW_HEADERS, "x-foo"),
        ],
        "pre_none": [
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_CREDENTIALS, "true"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
        ],
        "get_ok": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin"),
            (ALLOW_CREDENTIALS, "true"),
        ],
        "get_bad": [(VARY, "Origin"), (ALLOW_CREDENTIALS, "true")],
        "get_none": [(VARY, "Origin"), (ALLOW_CREDENTIALS, "true")],
        "get_org": [
            (ALLOW_ORIGIN, "https://x.example.org"),
            (VARY, "Origin"),
            (ALLOW_CREDENTIALS, "true"),
        ],
    },
    "fn_true": {
        "pre_ok_rh": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_CREDENTIALS, "true"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
            (ALLOW_HEADERS, "content-type,x-foo"),
        ],
        "pre_ok": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_CREDENTIALS, "true"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
        ],
        "pre_bad_rh": [
            (ALLOW_ORIGIN, "https://evil.example"),
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_CREDENTIALS, "true"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
            (ALLOW_HEADERS, "x-foo"),
        ],
        "pre_none": [
            (VARY, "Origin, Access-Control-Request-Headers"),
            (ALLOW_CREDENTIALS, "true"),
            (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
        ],
        "get_ok": [
            (ALLOW_ORIGIN, "https://app.example.com"),
            (VARY, "Origin"),
            (ALLOW_CREDENTIALS, "true"),
        ],
        "get_bad": [
            (ALLOW_ORIGIN, "https://evil.example"),
            (VARY, "Origin"),
            (ALLOW_CREDENTIALS, "true"),
        ],
        "get_none": [(VARY, "Origin"), (ALLOW_CREDENTIALS, "true")],
        "get_org": [
            (ALLOW_ORIGIN, "https://x.example.org"),
            (VARY, "Origin"),
            (ALLOW_CREDENTIALS, "true"),
        ],
    },
    "fn_false": {
        "pre_ok_rh": [],
        "pre_ok": [],
        "pre_bad_rh": [],
        "pre_none": [],
        "get_ok": [],
        "get_bad": [],
        "get_none": [],
        "get_org": [],
    },
    "empty_seqs": {
        "pre_ok_rh": [(ALLOW_ORIGIN, "https://app.example.com"), (VARY, "Origin")],
        "pre_ok": [(ALLOW_ORIGIN, "https://app.example.com"), (VARY, "Origin")],
        "pre_bad_rh": [(ALLOW_ORIGIN, "https://evil.example"), (VARY, "Origin")],
        "pre_none": [(VARY, "Origin")],
        "get_ok": [(ALLOW_ORIGIN, "https://app.example.com"), (VARY, "Origin")],
        "get_bad": [(ALLOW_ORIGIN, "https://evil.example"), (VARY, "Origin")],
        "get_none": [(VARY, "Origin")],
        "get_org": [(ALLOW_ORIGIN, "https://x.example.org"), (VARY, "Origin")],
    },
    "disabled": {
        "pre_ok_rh": [],
        "pre_ok": [],
        "pre_bad_rh": [],
        "pre_none": [],
        "get_ok": [],
        "get_bad": [],
        "get_none": [],
        "get_org": [],
    },
}
# Which (config, request) pairs the server refuses, beyond the reference (which refuses none).
REFUSED = {
    ("fixed", "pre_bad_rh"), ("fixed", "get_bad"), ("fixed", "get_org"),
    ("fixed_cred", "pre_bad_rh"), ("fixed_cred", "get_bad"), ("fixed_cred", "get_org"),
    ("regex", "pre_bad_rh"), ("regex", "get_bad"), ("regex", "get_org"),
    ("list_cred", "pre_bad_rh"), ("list_cred", "get_bad"),
    ("fn_false", "pre_ok_rh"), ("fn_false", "pre_ok"), ("fn_false", "pre_bad_rh"),
    ("fn_false", "get_ok"), ("fn_false", "get_bad"), ("fn_false", "get_org"),
    ("disabled", "pre_ok_rh"), ("disabled", "pre_ok"), ("disabled", "pre_bad_rh"),
    ("disabled", "get_ok"), ("disabled", "get_bad"), ("disabled", "get_org"),
}  # fmt: skip

CASES = [(config, request) for config in REFERENCE for request in REFERENCE[config]]


def _headers(config: str, request: str) -> tuple[list[tuple[str, str]], bool]:
    cors = CONFIGS[config]
    method, origin, request_headers = REQUESTS[request]
    headers = {"origin": origin} if origin is not None else {}
    if request_headers is not None:
        headers["access-control-request-headers"] = request_headers
    allowed = asyncio.run(cors.call_origin(origin))
    if is_preflight(method, headers):
        out = cors.preflight_headers(origin, allowed, headers.get("access-control-request-headers"))
    else:
        out = cors.response_headers(origin, allowed)
    return out, cors.refuses(origin, allowed)


def test_reference_covers_every_config_and_request() -> None:
    assert set(REFERENCE) == set(CONFIGS)
    assert all(set(requests) == set(REQUESTS) for requests in REFERENCE.values())


@pytest.mark.parametrize(("config", "request_name"), CASES)
def test_headers_equal_the_cors_package(config: str, request_name: str) -> None:
    headers, _ = _headers(config, request_name)
    assert headers == REFERENCE[config][request_name]


@pytest.mark.parametrize(("config", "request_name"), CASES)
def test_refused_requests(config: str, request_name: str) -> None:
    _, refused = _headers(config, request_name)
    assert refused == ((config, request_name) in REFUSED)


def test_preflight_status_is_the_packages() -> None:
    assert PREFLIGHT_STATUS == 204


def test_returned_lists_are_fresh() -> None:
    cors = Cors(origins=APP)
    first = cors.response_headers(APP, True)
    first.append(("X", "y"))
    assert cors.response_headers(APP, True) == [(ALLOW_ORIGIN, APP), (VARY, "Origin")]


# -- is_preflight -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("OPTIONS", {"origin": APP, "access-control-request-method": "POST"}, True),
        # The package answers every OPTIONS as a preflight (preflightContinue: false).
        ("OPTIONS", {}, True),
        ("options", {}, True),
        ("GET", {"access-control-request-method": "POST"}, False),
        ("POST", {"origin": APP}, False),
        ("HEAD", {}, False),
    ],
)
def test_is_preflight(method: str, headers: dict[str, str], expected: bool) -> None:
    assert is_preflight(method, headers) is expected


# -- construction -------------------------------------------------------------------------------


def test_defaults() -> None:
    cors = Cors()
    assert cors.origins == "*"
    assert cors.credentials is False
    assert cors.methods == ("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE")
    assert cors.allowed_headers is None
    assert cors.exposed_headers is None
    assert cors.max_age is None


def test_frozen_hashable_and_normalised_to_tuples() -> None:
    pattern = re.compile(r"\.example\.org$")
    cors = Cors(
        origins=[APP, pattern], methods=["GET"], allowed_headers=["X-A"], exposed_headers=["X-E"]
    )
    assert cors.origins == (APP, pattern)
    assert cors.methods == ("GET",)
    assert cors.allowed_headers == ("X-A",)
    assert cors.exposed_headers == ("X-E",)
    same = Cors(
        origins=(APP, pattern), methods=("GET",), allowed_headers=("X-A",), exposed_headers=("X-E",)
    )
    assert cors == same
    assert hash(cors) == hash(same)
    with pytest.raises(AttributeError):
        cors.credentials = True  # type: ignore[misc]


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="origin"):
        Cors(origin=APP)  # type: ignore[call-arg]


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        Cors(APP)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"origins": "*", "credentials": True}, (
            "cors: origins='*' cannot be combined with credentials=True: browsers refuse "
            "credentialed responses with a wildcard origin; list the allowed origins or use "
            "origins=True to reflect the request origin"
        )),
        ({"credentials": True}, "cannot be combined with credentials=True"),
        ({"origins": [APP, "*"], "credentials": True}, "cors: origins[1] is '*'"),
        ({"origins": ["*"]}, "matches no origin; use origins='*' alone"),
        ({"origins": ""}, "cors: origins must not be an empty string"),
        ({"origins": [APP, ""]}, "cors: origins[1] must not be an empty string"),
        ({"origins": "https://a.example\r\nSet-Cookie: x=1"}, "origins must not contain control"),
        ({"methods": ["GET", ""]}, "cors: methods[1] must not be an empty string"),
        ({"allowed_headers": ["X-A\n"]}, "cors: allowed_headers[0] must not contain control"),
        ({"exposed_headers": ["X\x00"]}, "cors: exposed_headers[0] must not contain control"),
        ({"max_age": -1}, "cors: max_age must be 0 or more seconds, got -1"),
    ],
)  # fmt: skip
def test_value_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Cors(**options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"origins": 42}, "cors: origins must be '*', True, False, an origin string, a compiled "
                          "pattern, a list or tuple of origin strings and patterns, or a callable, "
                          "got int 42"),
        ({"origins": None}, "got NoneType None"),
        ({"origins": {APP}}, "got set"),
        ({"origins": b"https://a.example"}, "got bytes"),
        ({"origins": [APP, 3]}, "cors: origins[1] must be an origin string or a compiled pattern, "
                                "got int 3"),
        ({"origins": re.compile(rb"x")}, "cors: origins must be a str pattern, got a bytes"),
        ({"origins": [re.compile(rb"x")]}, "cors: origins[0] must be a str pattern"),
        ({"credentials": "true"}, "cors: credentials must be a bool, got str 'true'"),
        ({"credentials": 1}, "cors: credentials must be a bool, got int 1"),
        ({"methods": "GET,POST"}, "cors: methods must be a list or tuple of strings such as "
                                  "('GET', 'POST'), got str 'GET,POST'"),
        ({"methods": None}, "cors: methods must be a list or tuple"),
        ({"methods": ["GET", 1]}, "cors: methods[1] must be a str, got int 1"),
        ({"allowed_headers": "X-A"}, "cors: allowed_headers must be a list or tuple"),
        ({"exposed_headers": b"X-E"}, "cors: exposed_headers must be a list or tuple"),
        ({"max_age": 1.5}, "cors: max_age must be an int (seconds) or None, got float 1.5"),
        ({"max_age": True}, "cors: max_age must be an int (seconds) or None, got bool True"),
        ({"max_age": "600"}, "got str '600'"),
    ],
)  # fmt: skip
def test_type_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=re.escape(message)):
        Cors(**options)


def test_type_error_message_is_bounded() -> None:
    with pytest.raises(TypeError) as excinfo:
        Cors(origins=10**300)  # type: ignore[arg-type]
    assert len(str(excinfo.value)) < 400


def test_valid_unusual_options() -> None:
    assert Cors(origins=True, credentials=True).credentials is True
    assert Cors(origins=[], credentials=True).origins == ()
    assert Cors(origins="null").match_origin("null") is True
    assert Cors(max_age=0).max_age == 0
    assert Cors(allowed_headers=["*"]).allowed_headers == ("*",)


# -- matching -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origins", "origin", "expected"),
    [
        ("*", APP, True),
        ("*", None, True),
        ("*", "null", True),
        (True, EVIL, True),
        (True, None, True),
        (False, APP, False),
        (False, None, False),
        (APP, APP, True),
        (APP, None, False),
        # Exact comparison, no normalisation: the browser compares byte for byte as well.
        (APP, APP + "/", False),
        (APP + "/", APP, False),
        (APP, "https://APP.example.com", False),
        (APP, "http://app.example.com", False),
        (APP, "https://app.example.com:443", False),
        (APP, "null", False),
        ("null", "null", True),
        # Regexes search, unanchored, like RegExp.prototype.test.
        (re.compile(r"\.example\.com$"), APP, True),
        (re.compile(r"\.example\.com$"), EVIL, False),
        (re.compile(r"example\.com"), "https://example.com.evil.net", True),
        (re.compile(r"^https://example\.com$"), "https://example.com.evil.net", False),
        (re.compile(r"."), None, False),
        ([APP, re.compile(r"\.example\.org$")], APP, True),
        ([APP, re.compile(r"\.example\.org$")], ORG, True),
        ([APP, re.compile(r"\.example\.org$")], EVIL, False),
        ([APP, re.compile(r"\.example\.org$")], None, False),
        ([], APP, False),
        (("null", APP), "null", True),
    ],
)
def test_match_origin(origins: Any, origin: str | None, expected: bool) -> None:
    cors = Cors(origins=origins)
    assert cors.needs_callback() is False
    assert cors.match_origin(origin) is expected
    assert asyncio.run(cors.call_origin(origin)) is expected


def test_sync_callable() -> None:
    seen: list[str | None] = []

    def check(origin: str | None) -> bool:
        seen.append(origin)
        return origin == APP

    cors = Cors(origins=check, credentials=True)
    assert cors.needs_callback() is True
    assert cors.match_origin(APP) is None
    assert asyncio.run(cors.call_origin(APP)) is True
    assert asyncio.run(cors.call_origin(EVIL)) is False
    assert asyncio.run(cors.call_origin(None)) is False
    assert seen == [APP, EVIL, None]


def test_async_callable() -> None:
    async def check(origin: str | None) -> bool:
        await asyncio.sleep(0)
        return origin is None or origin.endswith(".example.com")

    cors = Cors(origins=check)
    assert cors.needs_callback() is True
    assert cors.match_origin(APP) is None
    assert asyncio.run(cors.call_origin(APP)) is True
    assert asyncio.run(cors.call_origin(EVIL)) is False
    assert asyncio.run(cors.call_origin(None)) is True


def test_callable_object_returning_awaitable() -> None:
    class Check:
        def __call__(self, origin: str | None) -> Awaitable[bool]:
            async def verdict() -> bool:
                return origin == APP

            return verdict()

    cors = Cors(origins=Check())
    assert asyncio.run(cors.call_origin(APP)) is True
    assert asyncio.run(cors.call_origin(EVIL)) is False


@pytest.mark.parametrize("result", [1, "https://app.example.com", None, [APP]])
def test_callable_must_return_a_bool(result: object) -> None:
    cors = Cors(origins=lambda origin: result)  # type: ignore[arg-type,return-value]
    with pytest.raises(
        TypeError, match=r"cors: the origins callable .*<lambda> must return a bool"
    ):
        asyncio.run(cors.call_origin(APP))


def test_async_callable_must_return_a_bool() -> None:
    async def check(origin: str | None) -> object:
        return "yes"

    cors = Cors(origins=check)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"check must return a bool .*got str 'yes'"):
        asyncio.run(cors.call_origin(APP))


def test_callable_exception_propagates() -> None:
    def check(origin: str | None) -> bool:
        raise LookupError("directory down")

    with pytest.raises(LookupError, match="directory down"):
        asyncio.run(Cors(origins=check).call_origin(APP))


def test_callable_headers() -> None:
    cors = Cors(origins=lambda origin: True)
    assert cors.response_headers(APP, True) == [(ALLOW_ORIGIN, APP), (VARY, "Origin")]
    assert cors.response_headers(APP, False) == []
    assert cors.preflight_headers(EVIL, False, "x-foo") == []


def test_reflected_origin_only_when_allowed() -> None:
    # For reflecting rules the caller's verdict decides; the fixed and wildcard rules ignore it.
    assert Cors(origins=True).response_headers(APP, False) == [(VARY, "Origin")]
    assert Cors(origins=APP).response_headers(EVIL, False) == [
        (ALLOW_ORIGIN, APP),
        (VARY, "Origin"),
    ]
    assert Cors().response_headers(EVIL, False) == [(ALLOW_ORIGIN, "*")]


def test_preflight_with_empty_request_headers() -> None:
    assert Cors(origins=True).preflight_headers(APP, True, "") == [
        (ALLOW_ORIGIN, APP),
        (VARY, "Origin, Access-Control-Request-Headers"),
        (ALLOW_METHODS, "GET,HEAD,PUT,PATCH,POST,DELETE"),
    ]


# -- refuses --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "allowed", "expected"),
    [(APP, True, False), (APP, False, True), (None, True, False), (None, False, False),
     ("null", False, True), ("null", True, False)],
)  # fmt: skip
def test_refuses_truth_table(origin: str | None, allowed: bool, expected: bool) -> None:
    for cors in (Cors(), Cors(origins=APP), Cors(origins=False), Cors(origins=_refuse_async)):
        assert cors.refuses(origin, allowed) is expected


# -- explaining ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origins", "origin", "hint"),
    [
        ("https://app.example.com/", APP,
         "the configured origin 'https://app.example.com/' has a trailing slash; "
         "browsers send 'https://app.example.com'"),
        (["https://other.example", "https://App.Example.com"], APP,
         "the configured origin 'https://App.Example.com' differs in letter case; "
         "browsers send 'https://app.example.com'"),
        ("HTTPS://app.example.com", APP,
         "the configured origin 'HTTPS://app.example.com' differs in letter case; "
         "browsers send 'https://app.example.com'"),
        ("http://app.example.com", APP,
         "the configured origin 'http://app.example.com' uses http:// but the page is served "
         "over https://; browsers send 'https://app.example.com'"),
        ("https://app.example.com:443", APP,
         "the configured origin 'https://app.example.com:443' names the default port 443, which "
         "browsers omit; browsers send 'https://app.example.com'"),
        ("http://localhost:80/", "http://localhost",
         "the configured origin 'http://localhost:80/' has a trailing slash and names the default "
         "port 80, which browsers omit; browsers send 'http://localhost'"),
        ("ws://localhost:3000", "http://localhost:3000",
         "the configured origin 'ws://localhost:3000' uses ws:// but the page is served over "
         "http://; browsers send 'http://localhost:3000'"),
        ("https://app.example.com/chat", APP,
         "the configured origin 'https://app.example.com/chat' has a path '/chat', which origins "
         "never carry; browsers send 'https://app.example.com'"),
        ("http://[::1]:8080/", "http://[::1]:8080",
         "the configured origin 'http://[::1]:8080/' has a trailing slash; "
         "browsers send 'http://[::1]:8080'"),
        (APP, "null",
         "browsers send the origin 'null' from sandboxed iframes and file:// pages; list 'null' "
         "only if every such page may connect"),
        (False, "null", "browsers send the origin 'null'"),
        # No near miss: another host, another explicit port, a scheme change with a port change.
        (APP, EVIL, None),
        (APP, "https://app.example.com:8443", None),
        ("http://app.example.com:443", APP, None),
        ("https://app.example.com:8443/", APP, None),
        ("not an origin/", "not an origin", None),
        (APP + "/", "bogus", None),
        (APP, APP + "/", None),  # a non-browser client's malformed origin: no browser advice
        ([re.compile(r"^https://app\.example\.com/$")], APP, None),
        (re.compile(r"^https://app\.example\.com/$"), APP, None),
        (False, APP, None),
        # Allowed origins and callables need no hint.
        (APP, APP, None),
        ("*", APP, None),
        (True, "null", None),
        (lambda origin: False, APP, None),
    ],
)  # fmt: skip
def test_hint_for_origin(origins: Any, origin: str, hint: str | None) -> None:
    result = Cors(origins=origins).hint_for_origin(origin)
    if hint is None:
        assert result is None
    else:
        assert result is not None
        assert result.startswith(hint)


def test_hint_for_no_origin() -> None:
    assert Cors(origins=APP + "/").hint_for_origin(None) is None


def test_refusal_reason_list() -> None:
    cors = Cors(origins=[APP])
    assert cors.refusal_reason(EVIL) == (
        "origin 'https://evil.example' is not allowed by cors origins=['https://app.example.com']; "
        "add it to aiosio.Cors(origins=...) if this page should connect"
    )


def test_refusal_reason_with_hint() -> None:
    cors = Cors(origins=APP + "/")
    assert cors.refusal_reason(APP) == (
        "origin 'https://app.example.com' is not allowed by cors "
        "origins='https://app.example.com/'; add it to aiosio.Cors(origins=...) if this page "
        "should connect (the configured origin 'https://app.example.com/' has a trailing slash; "
        "browsers send 'https://app.example.com')"
    )


def test_refusal_reason_pattern_and_long_list() -> None:
    pattern = re.compile(r"^https://a\.example$")
    origins: list[str | re.Pattern[str]] = [pattern, *(f"https://{n}.example" for n in "bcdefg")]
    reason = Cors(origins=origins).refusal_reason(EVIL)
    assert reason == (
        "origin 'https://evil.example' is not allowed by cors origins=["
        "re.compile('^https://a\\\\.example$'), 'https://b.example', 'https://c.example', "
        "'https://d.example', 'https://e.example', ... (2 more)]; add it to "
        "aiosio.Cors(origins=...) if this page should connect"
    )
    assert (
        Cors(origins=pattern)
        .refusal_reason(EVIL)
        .startswith("origin 'https://evil.example' is not allowed by cors origins=re.compile(")
    )


def test_refusal_reason_disabled() -> None:
    assert Cors(origins=False).refusal_reason(APP) == (
        "origin 'https://app.example.com' is not allowed: cors origins=False allows no browser "
        "requests; list it in aiosio.Cors(origins=...) if this page should connect"
    )


def test_refusal_reason_callable() -> None:
    def check_origin(origin: str | None) -> bool:
        return False

    assert Cors(origins=check_origin).refusal_reason(EVIL) == (
        "origin 'https://evil.example' was refused by the cors origins callable "
        "test_refusal_reason_callable.<locals>.check_origin; change what it returns if this page "
        "should connect"
    )

    class Checker:
        def __call__(self, origin: str | None) -> bool:
            return False

    checker = Checker()
    assert "origins callable test_refusal_reason_callable.<locals>.Checker;" in Cors(
        origins=checker
    ).refusal_reason(EVIL)


def test_refusal_reason_for_an_allowed_origin_says_so() -> None:
    assert Cors(origins=True).refusal_reason(EVIL) == (
        "origin 'https://evil.example' is allowed by cors origins=True"
    )


def test_refusal_reason_quotes_the_peer_boundedly() -> None:
    origin = "https://" + "a" * 10_000 + ".example\r\n"
    reason = Cors(origins=[APP]).refusal_reason(origin)
    assert len(reason) < 500
    assert "\r" not in reason
    assert "\n" not in reason


# -- sans-I/O -----------------------------------------------------------------------------------


def test_module_touches_no_io_clock_or_task() -> None:
    source = inspect.getsource(cors_module)
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    forbidden = {"asyncio", "socket", "time", "threading", "selectors", "ssl", "trio", "anyio"}
    assert imported.isdisjoint(forbidden), imported & forbidden


def test_all_is_the_public_api() -> None:
    assert sorted(cors_module.__all__) == ["Cors", "OriginRule", "PREFLIGHT_STATUS", "is_preflight"]
    check: Callable[[str | None], bool] = lambda origin: True  # noqa: E731
    assert Cors(origins=check).needs_callback()
