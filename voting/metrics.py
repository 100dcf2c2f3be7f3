"""Prometheus metrics of every process (prometheus-client), and where they are served.

The metrics are defined here, outside the layers, so that the live, record, service and HTTP
layers count without importing one another; this module imports nothing of the service
(import-linter checks it). Counting is in-memory (one lock and one add; in multi-process mode a
write to a memory-mapped file) and never logs.

Names (``round``: a round id; ``code``: an error's contract code; ``mode``: an identity mode):

=====================================================  ========================================
``voting_ballots_accepted_total{round}``                ballots the cast script accepted (201;
                                                        an ``Idempotency-Key`` replay excluded)
``voting_ballots_refused_total{code}``                  ballot requests refused, by error code
``voting_script_duration_seconds``                      histogram: one call of the cast script,
                                                        seen from the app (round trip to Redis,
                                                        with durable acknowledgement its fsync)
``voting_credentials_issued_total{mode}``               voter credentials issued
``voting_ballots_persisted_total``                      ballots the persister wrote to Postgres
``voting_backlog_ballots{round}``                       ballots waiting in the round's stream
``voting_persister_lag_seconds{round}``                 age of the oldest waiting ballot (0 when
                                                        none waits)
``voting_request_duration_seconds{method,path,...}``    histogram of every HTTP request by route
                                                        template, status code and app
                                                        (:mod:`voting.http.observe`); its
                                                        ``_count`` counts the requests
=====================================================  ========================================

Several processes (``voting serve --workers N``) share one directory of value files named by
``PROMETHEUS_MULTIPROC_DIR``, which must be set before this module is first imported
(prometheus-client chooses its value class then: ``voting serve`` does it, see
``voting.cli``), and whoever serves ``/metrics`` adds them up (:func:`registry`,
``prometheus_client.multiprocess``).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)

#: the environment variable prometheus-client reads, at import, for multi-process mode
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: seconds; an HTTP request (the hot path answers in about a millisecond)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: seconds; one cast script call (31 µs inside Redis, plus the network round trip)
SCRIPT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)

BALLOTS_ACCEPTED = Counter(
    "voting_ballots_accepted", "Ballots accepted by the cast script (replays excluded)", ["round"]
)
BALLOTS_REFUSED = Counter(
    "voting_ballots_refused", "Ballot requests refused, by error code", ["code"]
)
SCRIPT_SECONDS = Histogram(
    "voting_script_duration_seconds",
    "One cast script call as the app sees it (round trip to Redis), seconds",
    buckets=SCRIPT_BUCKETS,
)
CREDENTIALS_ISSUED = Counter(
    "voting_credentials_issued", "Voter credentials issued, by identity mode", ["mode"]
)
BALLOTS_PERSISTED = Counter(
    "voting_ballots_persisted", "Ballots the persister wrote to Postgres (or found there)"
)
BACKLOG = Gauge(
    "voting_backlog_ballots",
    "Ballots accepted in Redis and not yet in Postgres (the round's stream length)",
    ["round"],
    multiprocess_mode="mostrecent",
)
REQUEST_SECONDS = Histogram(
    "voting_request_duration_seconds",
    "HTTP requests by route template, seconds from the request to the end of the answer",
    ["method", "path", "status_code", "app_name"],
    buckets=LATENCY_BUCKETS,
)
PERSISTER_LAG = Gauge(
    "voting_persister_lag_seconds",
    "Age of the round's oldest ballot waiting for the persister, seconds (0: none waits)",
    ["round"],
    multiprocess_mode="mostrecent",
)


def registry() -> CollectorRegistry:
    """What ``/metrics`` shows: the sum over every process's value files in multi-process
    mode (``PROMETHEUS_MULTIPROC_DIR`` set), this process's own metrics otherwise."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return REGISTRY
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected, path=directory)
    return collected


def serve(host: str, port: int) -> tuple[Any, threading.Thread]:
    """Serve ``/metrics`` (Prometheus text format, any path answers it) on ``host:port`` from
    a daemon thread of this process; returns the server and its thread (``server.shutdown()``
    stops it). Raises OSError when the address cannot be bound."""
    return start_http_server(port, addr=host, registry=registry())
