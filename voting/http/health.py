"""Health routes for load balancers and operators: ``/healthz`` and ``/readyz``."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.openapi.datastructures import ResponseSpec

from voting.services.container import ServicesDep
from voting.services.readiness import readiness


@get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    """Always 200 while the process serves requests."""
    return {"status": "ok"}


@get(
    "/readyz",
    summary="Readiness: Redis and Postgres reachable, Redis state intact",
    responses={
        503: ResponseSpec(
            data_container=dict[str, Any],
            description="Not ready: `checks` names each failing check.",
            generate_examples=False,
        )
    },
)
async def readyz(services: ServicesDep) -> Response[dict[str, Any]]:
    """200 when every check of :func:`voting.services.readiness.readiness` is ``ok``; 503
    otherwise, with the failing checks named in ``checks``."""
    checks = await readiness(services)
    ok = all(v == "ok" for v in checks.values())
    return Response(
        {"status": "ok" if ok else "unavailable", "checks": checks},
        status_code=200 if ok else 503,
    )
