"""The one table of error kinds, and what an unexpected error leaves behind."""

from __future__ import annotations

import logging

import pytest
from litestar import Litestar, get
from litestar.testing import TestClient
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from voting.core import errors as domain
from voting.http.errors import EXCEPTION_HANDLERS, STATUS, status_of


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        (domain.Invalid, 400),
        (domain.Unauthenticated, 401),
        (domain.Forbidden, 403),
        (domain.NotFound, 404),
        (domain.Conflict, 409),
        (domain.Rejected, 422),
        (domain.Limited, 429),
        (domain.Unavailable, 503),
    ],
)
def test_each_kind_has_its_status(kind, status):
    assert status_of(kind("code", "message")) == status


def test_every_kind_is_in_the_table():
    kinds = {
        k
        for k in vars(domain).values()
        if isinstance(k, type) and issubclass(k, domain.DomainError)
    }
    assert kinds - {domain.DomainError} == set(STATUS)


@get("/boom")
async def boom() -> None:
    raise RuntimeError("a bug")


@get("/limited")
async def limited() -> None:
    raise domain.rate_limited(1500, "tries")


def test_an_unexpected_error_is_logged_once_with_an_id_and_no_request_data(caplog):
    caplog.set_level(logging.INFO)
    app = Litestar([boom, limited], exception_handlers=EXCEPTION_HANDLERS, logging_config=None)
    with TestClient(app) as client:
        r = client.get("/boom?secret=hunter2", headers={"Authorization": "Bearer tok-123"})
    assert r.status_code == 500
    body = r.json()["error"]
    assert body["code"] == "internal" and len(body["request_id"]) == 16
    records = [rec for rec in caplog.records if rec.name == "voting"]
    assert len(records) == 1
    text = records[0].getMessage()
    assert body["request_id"] in text and "/boom" in text
    assert "hunter2" not in text and "tok-123" not in text


def test_retry_after_is_in_the_header_and_the_body():
    app = Litestar([limited], exception_handlers=EXCEPTION_HANDLERS, logging_config=None)
    with TestClient(app) as client:
        r = client.get("/limited")
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "2" and r.json()["error"]["retry_after"] == 2


@get("/store-down")
async def store_down() -> None:
    raise RedisTimeoutError("Timeout reading from 10.0.0.9:6379")


@get("/store-bug")
async def store_bug() -> None:
    raise ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")


def test_a_redis_that_does_not_answer_is_503_unavailable_and_a_redis_bug_500(caplog):
    caplog.set_level(logging.INFO)
    app = Litestar(
        [store_down, store_bug], exception_handlers=EXCEPTION_HANDLERS, logging_config=None
    )
    with TestClient(app) as client:
        down = client.get("/store-down")
        bug = client.get("/store-bug")
    assert down.status_code == 503 and down.json()["error"]["code"] == "unavailable"
    assert int(down.headers["Retry-After"]) >= 1
    assert "10.0.0.9" not in down.text
    logged = [rec.getMessage() for rec in caplog.records if rec.name == "voting"]
    assert not [m for m in logged if "store-down" in m]  # a store that is down is not logged
    assert bug.status_code == 500
