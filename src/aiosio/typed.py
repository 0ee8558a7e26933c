"""Typed events: handlers whose parameter annotations describe their payload, validated through
pydantic, and typed emitters that mypy checks at the call site.

A handler registered with ``@sio.on(...)`` (or a socket's ``on``, or ``@client.on(...)``) is
inspected once, when it is registered (:func:`validated`): if one of its payload parameters is
annotated with a *payload model* (a pydantic ``BaseModel``, a dataclass, a ``TypedDict``, or a
type that contains one: ``list[Message]``, ``Message | None``), what is registered instead is a
wrapper that validates the arguments with a pydantic ``TypeAdapter`` (built once) and calls the
handler with the validated values; a return value annotated with a payload model is dumped
through it (``mode="json"``) before it answers the acknowledgement. Any other handler is
registered as it is: nothing is added to its calls.

Plain annotations (``str``, ``int``, ``list[int]``, ``dict[str, Any]``) are not validated unless
asked for with ``Annotated[int, Validate]``: handlers annotated that way before this feature get
what they always got.

A payload that fails validation never reaches the handler. The wrapper returns the answer of
:class:`InvalidPayloads` instead (``{"error": "invalid payload", "details": [...]}`` by default):
when the peer asked for an acknowledgement, that is its answer; either way the refusal is counted
per event name and logged once per event name with the reason.

pydantic is the ``typed`` extra (``pip install "aiosio[typed]"``). Without it, a handler annotated
with a dataclass or a TypedDict is refused at registration with an ImportError that names the
extra (a handler annotated with a pydantic model cannot exist without pydantic), so that an
annotation never looks enforced when it is not.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import sys
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Hashable
from typing import Annotated
from typing import Any
from typing import Protocol
from typing import TypeVar
from typing import get_args
from typing import get_origin
from typing import get_type_hints
from typing import is_typeddict

from aiosio._eager import is_async
from aiosio._extras import import_extra
from aiosio._once import OncePer

__all__ = [
    "InvalidPayloads",
    "Validate",
    "default_answer",
    "emitter",
    "is_payload_model",
    "validated",
]

E = TypeVar("E")

logger = logging.getLogger("aiosio.typed")


class _ValidateMarker:
    def __repr__(self) -> str:
        return "aiosio.typed.Validate"


Validate = _ValidateMarker()
"""``Annotated[T, Validate]``: validate this parameter (or return value) through pydantic even
though ``T`` is a plain type (``int``, ``list[str]``, ...), which is otherwise passed as is."""

Answer = Callable[[str, list[dict[str, Any]]], Any]
"""``answer(event, details)``: the value that answers the acknowledgement of an event whose
payload failed validation (``details``: pydantic's errors, without the input)."""


def default_answer(_event: str, details: list[dict[str, Any]]) -> Any:
    """``{"error": "invalid payload", "details": [{"loc": [...], "msg": ..., "type": ...}]}``."""
    return {"error": "invalid payload", "details": details}


class InvalidPayloads:
    """Payloads refused by validation, for one namespace (a dynamic namespace's children share
    their family's) or one client: how many per event name (:attr:`counts`), the warning logged
    once per event name, and the value that answers the acknowledgement (:attr:`answer`,
    :func:`default_answer` unless set)."""

    __slots__ = ("_logger", "_reported", "answer", "counts", "where")

    def __init__(self, where: str, log: logging.Logger) -> None:
        self.where = where
        self.answer: Answer = default_answer
        # Bounded by the handlers registered: only an event with a validating handler counts.
        self.counts: dict[str, int] = {}
        self._reported = OncePer()
        self._logger = log

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def refuse(self, event: str, details: list[dict[str, Any]]) -> Any:
        """Count and report the refusal; return what answers the acknowledgement."""
        self.counts[event] = self.counts.get(event, 0) + 1
        if self._reported.first(event):
            first = details[0] if details else {"loc": [], "msg": "invalid"}
            self._logger.warning(
                "%s: a payload of event %r failed validation and did not reach its handler "
                "(%s: %s%s); its acknowledgement, if asked for, is answered with the error, and "
                "each such payload is counted (invalid_payloads); said once per event",
                self.where,
                event,
                ".".join(str(part) for part in first.get("loc", ())) or "payload",
                first.get("msg", "invalid"),
                f", and {len(details) - 1} more error(s)" if len(details) > 1 else "",
            )
        return self.answer(event, details)


def is_payload_model(tp: Any) -> bool:
    """True when ``tp`` is or contains a payload model (a pydantic model, a dataclass, a
    TypedDict) or is marked ``Annotated[..., Validate]``."""
    if get_origin(tp) is Annotated:
        if any(meta is Validate for meta in tp.__metadata__):
            return True
        return is_payload_model(get_args(tp)[0])
    if isinstance(tp, type):
        if dataclasses.is_dataclass(tp) or is_typeddict(tp):
            return True
        pydantic = sys.modules.get("pydantic")  # no model can exist before pydantic is imported
        if pydantic is not None and issubclass(tp, pydantic.BaseModel):
            return True
    return any(is_payload_model(arg) for arg in get_args(tp))


_adapters: dict[Hashable, Any] = {}


def _adapter(tp: Any, where: str) -> Any:
    """The pydantic TypeAdapter of ``tp``, built once per type."""
    try:
        return _adapters[tp]
    except KeyError:
        pass
    except TypeError:  # an unhashable annotation: built for this handler alone
        return _new_adapter(tp, where)
    adapter = _adapters[tp] = _new_adapter(tp, where)
    return adapter


def _new_adapter(tp: Any, where: str) -> Any:
    pydantic = import_extra("pydantic", extra="typed", feature=where)
    try:
        return pydantic.TypeAdapter(tp)
    except pydantic.PydanticUserError as exc:  # a type pydantic cannot validate: say whose
        raise TypeError(f"{where}: pydantic cannot validate it: {exc}") from exc


def _hints(fn: Callable[..., Any], where: str) -> dict[str, Any]:
    """The resolved annotations of ``fn``; one that cannot be resolved (a name imported under
    ``TYPE_CHECKING``) is left out, with a warning when it looks like a payload's."""
    target = inspect.unwrap(fn)
    if not inspect.isroutine(target) and not inspect.isclass(target):
        target = type(target).__call__  # an object whose __call__ is the handler
    try:
        return get_type_hints(target, include_extras=True)
    except Exception:  # noqa: BLE001 - resolved one by one below, each failure reported
        hints: dict[str, Any] = {}
    namespace = getattr(target, "__globals__", {})
    for name, annotation in getattr(target, "__annotations__", {}).items():
        if not isinstance(annotation, str):
            hints[name] = annotation
            continue
        try:
            hints[name] = eval(annotation, namespace)  # noqa: S307 - the function's own annotation
        except Exception as exc:  # noqa: BLE001 - reported and skipped
            logger.warning(
                "%s: the annotation %r of parameter %r cannot be resolved (%s: %s): it is not "
                "validated; import the type at module level to have it validated",
                where,
                annotation,
                name,
                type(exc).__name__,
                exc,
            )
    return hints


class _Arg:
    __slots__ = ("adapter", "index", "name", "required")

    def __init__(self, index: int, name: str, adapter: Any, required: bool) -> None:
        self.index = index  # among the payload's arguments (the socket not counted)
        self.name = name
        self.adapter = adapter  # None: passed as is
        self.required = required


@dataclasses.dataclass(frozen=True, slots=True)
class _Payload:
    """The payload part of a handler's signature, as :func:`validated` read it."""

    skip: int  # the leading parameters that are not payload (a namespace handler's socket)
    args: list[_Arg]
    rest: tuple[str, Any] | None  # the *args parameter's name and adapter, or None
    returns: Any  # the return annotation's adapter, or None


class _Refused(Exception):
    """A payload failed validation (internal: caught by the wrapper, never escapes)."""

    def __init__(self, details: list[dict[str, Any]]) -> None:
        self.details = details


class _Validated:
    """A handler called with validated arguments; what it returns is dumped through its return
    annotation's model. Compares equal to the handler it wraps, so that ``off(event, handler)``
    finds it.

    The per-event path is kept short: each validated argument is one call into pydantic-core
    (the adapter's ``validator``), the return value one more (its ``serializer``); the errors
    of every argument are collected only once a payload failed."""

    def __init__(
        self, fn: Callable[..., Any], event: str, payload: _Payload, refused: InvalidPayloads
    ) -> None:
        self.fn = fn
        self.event = event
        self._payload = payload
        self._refused = refused
        skip, args, rest, returns = payload.skip, payload.args, payload.rest, payload.returns
        # What runs per event: (absolute position, validate) of each validated argument.
        self._checks = tuple(
            (skip + arg.index, arg.adapter.validator.validate_python)
            for arg in args
            if arg.adapter is not None
        )
        self._required = skip + sum(1 for arg in args if arg.required)
        self._rest_from = skip + len(args)
        self._rest_validate = None if rest is None else rest[1].validator.validate_python
        self._dump_returned = None if returns is None else returns.serializer.to_python
        self._validation_error: type[Exception] = import_extra(
            "pydantic", extra="typed", feature=f"validating handler {event!r}"
        ).ValidationError
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)
        self.__doc__ = getattr(fn, "__doc__", None)
        self.__wrapped__ = fn

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Validated):
            return self.fn == other.fn
        return bool(self.fn == other)

    def __hash__(self) -> int:
        return hash(self.fn)

    def __repr__(self) -> str:
        return f"validated({self.fn!r})"

    def _convert(self, args: tuple[Any, ...]) -> list[Any]:
        """The arguments, validated.

        :raises _Refused: with the details of every error."""
        out = list(args)
        n = len(out)
        if n < self._required:
            raise _Refused(self._details(args))
        try:
            for i, validate in self._checks:
                if i < n:
                    out[i] = validate(out[i])
            validate_rest = self._rest_validate
            if validate_rest is not None:
                for i in range(self._rest_from, n):
                    out[i] = validate_rest(out[i])
        except self._validation_error:
            raise _Refused(self._details(args)) from None
        return out

    def _details(self, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        """Every error of ``args``, each ``loc`` starting with the parameter's name."""
        payload = self._payload
        skip = payload.skip
        count = len(args) - skip
        details: list[dict[str, Any]] = []
        for arg in payload.args:
            if arg.index >= count:
                if arg.required:
                    details.append(
                        {"loc": [arg.name], "msg": "missing argument", "type": "missing_argument"}
                    )
            elif arg.adapter is not None:
                self._errors(arg.adapter, args[skip + arg.index], arg.name, details)
        if payload.rest is not None:
            name, adapter = payload.rest
            for i in range(self._rest_from, len(args)):
                self._errors(adapter, args[i], f"{name}[{i - self._rest_from}]", details)
        return details

    def _errors(self, adapter: Any, value: Any, name: str, details: list[dict[str, Any]]) -> None:
        try:
            adapter.validate_python(value)
        except self._validation_error as exc:
            errors = exc.errors(include_url=False, include_context=False, include_input=False)  # type: ignore[attr-defined]
            details.extend(
                {"loc": [name, *error["loc"]], "msg": error["msg"], "type": error["type"]}
                for error in errors
            )

    def _dump(self, result: Any) -> Any:
        dump = self._dump_returned
        if dump is None or result is None:
            return result
        # A value that does not match the annotation is dumped as it is, with pydantic's
        # warning (warnings="error" would cost several microseconds per event).
        dumped = dump(result, mode="json")
        return tuple(dumped) if type(result) is tuple else dumped

    def __call__(self, *args: Any) -> Any:
        try:
            converted = self._convert(args)
        except _Refused as refused:
            return self._refused.refuse(self.event, refused.details)
        return self._dump(self.fn(*converted))


class _AsyncValidated(_Validated):
    """The same for a coroutine function: itself a coroutine function, so that the code that
    runs handlers treats it as the handler it wraps."""

    async def __call__(self, *args: Any) -> Any:
        try:
            converted = self._convert(args)
        except _Refused as refused:
            return self._refused.refuse(self.event, refused.details)
        return self._dump(await self.fn(*converted))


def validated(
    fn: Callable[..., Any], event: str, skip: int, refused: InvalidPayloads
) -> Callable[..., Any]:
    """``fn``, or the wrapper that validates its payload when its annotations ask for it
    (decided here, once). ``skip``: the leading parameters that are not payload (the socket of
    a namespace's handler).

    :raises ImportError: a parameter is annotated with a dataclass or a TypedDict and pydantic
        (the ``typed`` extra) is not installed.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or a C callable: nothing to read
        return fn
    where = f"handler {getattr(fn, '__qualname__', fn)!r} of event {event!r}"
    parameters = list(signature.parameters.values())
    hints: dict[str, Any] | None = None
    if any(p.annotation is not p.empty for p in parameters) or (
        signature.return_annotation is not signature.empty
    ):
        hints = _hints(fn, where)
    if not hints:
        return fn

    def adapter_of(name: str) -> Any:
        assert hints is not None
        tp = hints.get(name)
        if tp is None or not is_payload_model(tp):
            return None
        return _adapter(tp, f"{where} (annotated with {tp!r})")

    args: list[_Arg] = []
    rest = None
    for position, parameter in enumerate(parameters):
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            if position < skip:
                continue
            required = parameter.default is parameter.empty
            args.append(_Arg(len(args), parameter.name, adapter_of(parameter.name), required))
        elif parameter.kind is parameter.VAR_POSITIONAL:
            rest_adapter = adapter_of(parameter.name)
            rest = None if rest_adapter is None else (parameter.name, rest_adapter)
    returns = adapter_of("return")
    if rest is None and returns is None and all(arg.adapter is None for arg in args):
        return fn  # nothing to validate: the handler itself, no cost added to its calls
    wrapper = _AsyncValidated if is_async(fn) else _Validated
    return wrapper(fn, event, _Payload(skip, args, rest, returns), refused)


# -- typed emitters ---------------------------------------------------------------------------


class Emits(Protocol):
    """What a typed emitter sends through: a server Socket, a Namespace, a broadcast operator
    (``sio.to(room)``), the Server or a Client."""

    def emit(self, event: str, *args: Any) -> Any: ...

    def emit_with_ack(self, event: str, *args: Any) -> Awaitable[Any]: ...


class _Emitter:
    """The object behind :func:`emitter`: ``typed.chat(msg)`` is ``target.emit("chat", msg)``,
    each argument dumped through its annotation's model first."""

    def __init__(self, target: Emits, events: Any) -> None:
        self._target = target
        self._events = events
        self._methods: dict[str, Callable[..., Any]] = {}

    def __getattr__(self, name: str) -> Callable[..., Any]:
        try:
            return self._methods[name]
        except KeyError:
            pass
        declared = getattr(self._events, name, None)
        if name.startswith("_") or declared is None or not callable(declared):
            raise AttributeError(
                f"{self._events.__qualname__} declares no event {name!r}: add a method "
                f"'def {name}(self, ...) -> None' to it"
            )
        method = self._methods[name] = self._make(name, declared)
        return method

    def _make(self, name: str, declared: Callable[..., Any]) -> Callable[..., Any]:
        where = f"{self._events.__qualname__}.{name}"
        hints = _hints(declared, where)
        parameters = [
            p
            for p in inspect.signature(declared).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ][1:]  # self
        dumps: list[Any] = []
        for parameter in parameters:
            tp = hints.get(parameter.name)
            dumps.append(_adapter(tp, where) if tp is not None and is_payload_model(tp) else None)
        target = self._target
        if is_async(declared):
            reply = hints.get("return")
            reply_adapter = (
                _adapter(reply, where) if reply is not None and is_payload_model(reply) else None
            )

            async def ask(*args: Any) -> Any:
                value = await target.emit_with_ack(name, *_dumped(dumps, args))
                return value if reply_adapter is None else reply_adapter.validate_python(value)

            return ask

        def send(*args: Any) -> None:
            target.emit(name, *_dumped(dumps, args))

        return send


def _dumped(dumps: list[Any], args: tuple[Any, ...]) -> list[Any]:
    out = list(args)
    for i, adapter in enumerate(dumps[: len(out)]):
        if adapter is not None:
            out[i] = adapter.dump_python(out[i], mode="json")
    return out


def emitter(target: Emits, events: Callable[..., E]) -> E:
    """A typed view of ``target``'s emit: ``events`` is a class (a ``Protocol``) whose methods
    declare the events and their arguments, as TypeScript's ``ServerToClientEvents`` does::

        class ServerToClient(Protocol):
            def chat(self, msg: ChatMessage) -> None: ...
            async def ask(self, question: str) -> Answer: ...

        typed = emitter(socket, ServerToClient)
        typed.chat(ChatMessage(text="hi"))   # socket.emit("chat", {...}); mypy checks the types
        answer = await typed.ask("why")      # socket.emit_with_ack("ask", "why"), validated

    A method is one event of the same name: a plain method emits, an ``async`` one waits for the
    acknowledgement (its return annotation, a payload model, validates the reply). Arguments
    annotated with a payload model are dumped through it (``mode="json"``) before they are
    sent, so pydantic models can be emitted.

    (``events`` is typed ``Callable[..., E]`` rather than ``type[E]``: mypy refuses a Protocol
    where ``type[E]`` is expected, and accepts it as a callable that makes an ``E``.)"""
    return _Emitter(target, events)  # type: ignore[return-value]
