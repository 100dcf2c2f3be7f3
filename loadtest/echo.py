"""The benchmark's baseline: the cheapest honest ballot handler on the server we ship.

A Litestar app with one route, ``POST /api/v1/rounds/{round_id}/ballots``, that decodes the
same ballot body as the service (msgspec, ``{"choices": [int, ...]}``), checks the
``Authorization`` header is there, and answers ``201`` with a JSON body of the accepted ballot's
shape and size (a fresh UUID, the choices, a time stamp, a 13-symbol receipt). No Redis, no
Postgres, no signature check: what a ballot costs beyond this is what the service adds.

``python -m loadtest.echo --port P`` serves it with :func:`voting.cli.granian_server`, the
very server configuration of ``voting serve`` (one worker unless ``--workers``).
"""

from __future__ import annotations

import argparse
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get, post

from voting.core.ballot import AcceptedBallot


class _Ballot(msgspec.Struct, forbid_unknown_fields=True):
    choices: list[int]


_decode = msgspec.json.Decoder(_Ballot).decode
_encode = msgspec.json.Encoder().encode


@post("/api/v1/rounds/{round_id:int}/ballots", status_code=201)
async def echo_ballot(request: Request[Any, Any, Any], round_id: int) -> Response[bytes]:
    """Decode the ballot, answer 201 with an accepted ballot's body (400/401 as the service)."""
    body = await request.body()
    if "authorization" not in request.headers:
        return Response(b'{"code":"voter_token_required"}', status_code=401)
    try:
        choices = _decode(body).choices
    except msgspec.DecodeError:
        return Response(b'{"code":"malformed"}', status_code=400)
    answer = AcceptedBallot(
        ballot_id=str(uuid.uuid4()),
        round_id=round_id,
        choices=choices,
        cast_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        receipt=secrets.token_hex(7)[:13].upper(),
    )
    return Response(_encode(answer), status_code=201, media_type="application/json")


@get("/healthz")
async def healthz() -> dict[str, str]:
    """200 once the server is up (the benchmark waits for it)."""
    return {"status": "ok"}


def create_echo_app() -> Litestar:
    """The echo app (a factory, as granian calls it)."""
    return Litestar([echo_ballot, healthz], openapi_config=None)


def main(argv: list[str] | None = None) -> None:
    """Serve the echo app on 127.0.0.1 until SIGINT/SIGTERM."""
    from voting.cli import granian_server

    p = argparse.ArgumentParser(prog="python -m loadtest.echo")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    granian_server(
        "loadtest.echo:create_echo_app",
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        header_timeout=10.0,
    ).serve()


if __name__ == "__main__":
    main()
