"""The Socket.IO CONNECT of the namespace (the URL's path, or ``--namespace``) with ``--auth``,
over a polling session: accepted, refused by a middleware, or a namespace the server lacks."""

from __future__ import annotations

import json
from typing import Any

from aiosio.client.errors import ConnectError
from aiosio.client.http import HttpConnection
from aiosio.client.http import HttpResult
from aiosio.doctor.advice import fresh_auth
from aiosio.doctor.diagnosis import Diagnosis
from aiosio.doctor.exchange import POST_HEADERS
from aiosio.doctor.exchange import describe
from aiosio.doctor.exchange import open_session
from aiosio.doctor.exchange import polling_query
from aiosio.doctor.findings import Finding
from aiosio.doctor.findings import Verdict
from aiosio.doctor.packets import connect_message
from aiosio.doctor.packets import is_message_payload
from aiosio.doctor.packets import namespace_answers
from aiosio.doctor.target import Target
from aiosio.protocol.socketio import Decoder
from aiosio.protocol.socketio import PacketType

__all__ = ["check_namespace"]


async def check_namespace(diagnosis: Diagnosis) -> bool:
    target = diagnosis.target
    handshake = await open_session(target)
    if handshake is None:
        return True
    conn = target.connection()
    try:
        answer, evidence = await _connect(target, conn, handshake["sid"])
    except ConnectError as error:
        diagnosis.report.add(
            Finding(
                "namespace.error",
                Verdict.FAIL,
                f"connecting the namespace failed: {error.message}",
                [str(error)],
            )
        )
        return True
    finally:
        conn.close()
    diagnosis.report.add(_verdict(target, answer, evidence))
    return True


async def _connect(target: Target, conn: HttpConnection, sid: str) -> tuple[HttpResult, list[str]]:
    """POST the CONNECT, then GET (up to three times) until a message comes; on one kept-alive
    connection, as a browser's polling does."""
    packet = connect_message(target.namespace, target.options.auth)
    post = await conn.request(
        "POST",
        f"{target.path}?{polling_query(sid, cache_buster=False)}",
        target.headers(POST_HEADERS),
        packet.encode(),
        url=target.origin_url,
    )
    evidence = [f"POST {packet!r} -> {describe(post)}"]
    for _ in range(3):
        answer = await conn.request(
            "GET",
            f"{target.path}?{polling_query(sid)}",
            target.headers(),
            url=target.origin_url,
        )
        if answer.status != 200 or is_message_payload(answer.body):
            break
    evidence.append(f"GET -> {describe(answer)}")
    return answer, evidence


def _verdict(target: Target, answer: HttpResult, evidence: list[str]) -> Finding:
    nsp = target.namespace
    for packet in namespace_answers(answer.body, Decoder()):
        if packet.nsp != nsp:
            continue
        if packet.type is PacketType.CONNECT and isinstance(packet.data, dict):
            if "sid" in packet.data:
                return Finding(
                    "namespace.ok", Verdict.OK, f"namespace {nsp} accepts the connection", evidence
                )
        elif packet.type is PacketType.CONNECT_ERROR:
            return _refusal(target, packet.data, evidence)
    return Finding(
        "namespace.no_answer",
        Verdict.WARN,
        f"no answer to the CONNECT of namespace {nsp}",
        evidence,
        "the server did not answer the namespace connection in time",
    )


def _refusal(target: Target, payload: Any, evidence: list[str]) -> Finding:
    """The finding for a CONNECT_ERROR: a namespace the server lacks, or a middleware's refusal
    (with its message and data)."""
    nsp = target.namespace
    message = payload.get("message") if isinstance(payload, dict) else str(payload)
    data = payload.get("data") if isinstance(payload, dict) else None
    if message == "Invalid namespace":
        return Finding(
            "namespace.invalid",
            Verdict.FAIL,
            f"the server has no namespace {nsp}",
            evidence,
            f"create it on the server (io.of('{nsp}')), or connect to an existing one: the URL's "
            "path is the namespace",
        )
    expired = "expire" in f"{message} {data}".lower()
    return Finding(
        "namespace.token_expired" if expired else "namespace.refused",
        Verdict.FAIL,
        f"namespace {nsp} refused the connection: {message}"
        + (f" (data: {json.dumps(data)})" if data is not None else ""),
        evidence,
        "the token is expired: refresh it before each connection attempt, with auth as a "
        f"function (called again on every reconnection): {fresh_auth(target.options)}"
        if expired
        else "the server's middleware refused: check the auth you pass (--auth)",
        data={"message": message, "data": data},
    )
