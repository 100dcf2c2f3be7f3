"""Redis clients for the three deployments: one server, Redis Cluster, Sentinel.

``VOTING_REDIS_URL`` takes one of three forms (:func:`parse`):

- ``redis://[user:pass@]host:6379/0`` (or ``rediss://``, ``unix://``): one server, through
  redis-py's ``Redis`` on a blocking pool.
- ``redis+cluster://[user:pass@]h1:p1,h2:p2[/]`` (``rediss+cluster://`` for TLS): Redis
  Cluster through ``redis.asyncio.cluster.RedisCluster``; the nodes listed are only where the
  client starts, it learns the slot map from them and follows ``MOVED`` / ``ASK`` itself.
- ``redis+sentinel://[user:pass@]h1:p1,h2:p2/mymaster[?db=0&sentinel_password=...]``
  (``rediss+sentinel://``): the primary of service ``mymaster`` as Sentinel names it,
  through ``redis.asyncio.sentinel.Sentinel.master_for``; the user and password are the data
  nodes'; ``sentinel_username`` / ``sentinel_password`` those of the sentinels, when set.
  Every new connection asks the sentinels where the primary is, and a connection to a
  demoted primary is dropped (``READONLY`` replies), so the client follows a failover
  without a restart.

Every client decodes replies to ``str``. The cluster client is returned typed as ``Redis``
(:func:`connect`): it offers the same commands, pipelines (a transaction only within one
slot, which every caller keeps: see :mod:`voting.live.keys`) and scripts; the few places that
need to know (the hot path's connection check, the guard, durable acknowledgement) ask
:func:`is_cluster`.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from redis.asyncio import BlockingConnectionPool, Connection, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError
from redis.maint_notifications import MaintNotificationsConfig

Kind = Literal["single", "cluster", "sentinel"]

#: connections per process (per node on a cluster); more requests queue for one
POOL_SIZE = 100

_SENTINEL_OPTIONS = frozenset({"db", "sentinel_username", "sentinel_password"})


@dataclass(frozen=True)
class RedisTarget:
    """Where the live state is: ``kind``; for ``single`` the URL itself; for ``cluster`` and
    ``sentinel`` the ``nodes`` (host, port) to start from, ``ssl``, the data nodes'
    ``username`` / ``password``; for ``sentinel`` also ``service`` (the master's name),
    ``db`` and the sentinels' own credentials."""

    kind: Kind
    url: str = ""
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    ssl: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)


def _nodes(netloc: str, default_port: int) -> tuple[tuple[str, int], ...]:
    nodes: list[tuple[str, int]] = []
    for part in netloc.split(","):
        part = part.strip()
        if not part:
            continue
        host, sep, port = part.rpartition(":") if not part.endswith("]") else (part, "", "")
        if not sep:
            host, port = part, str(default_port)
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{part!r} is not host:port")
        nodes.append((host, int(port)))
    if not nodes:
        raise ValueError("no host:port given")
    return tuple(nodes)


def parse(url: str) -> RedisTarget:
    """The :class:`RedisTarget` of ``url`` (forms in the module docstring).

    Raises ValueError naming what is wrong: an unknown scheme, a node that is not
    ``host:port``, a sentinel URL without its service name, an unknown option, a cluster URL
    with a database other than 0 (a cluster has only database 0)."""
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ValueError("must be a URL such as redis://host:6379/0")
    if scheme in ("redis", "rediss", "unix"):
        return RedisTarget(kind="single", url=url)
    base, _, mode = scheme.partition("+")
    if base not in ("redis", "rediss") or mode not in ("cluster", "sentinel"):
        raise ValueError(
            f"unknown scheme {scheme!r}: use redis://, rediss://, unix://, "
            "redis+cluster:// or redis+sentinel://"
        )
    parts = urllib.parse.urlsplit(f"x://{rest}")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, _, secret = userinfo.partition(":")
        username = urllib.parse.unquote(user) or None
        password = urllib.parse.unquote(secret) or None
    options = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    path = parts.path.strip("/")
    common: dict[str, Any] = {"ssl": base == "rediss", "username": username}
    common["password"] = password
    if mode == "cluster":
        if path not in ("", "0") or options.get("db", "0") != "0":
            raise ValueError("a Redis Cluster has only database 0")
        unknown = set(options) - {"db"}
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)} for redis+cluster://")
        return RedisTarget(kind="cluster", nodes=_nodes(hosts, 6379), **common)
    unknown = set(options) - _SENTINEL_OPTIONS
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for redis+sentinel://")
    service, _, db_path = path.partition("/")
    if not service:
        raise ValueError("redis+sentinel:// needs the service name: .../mymaster")
    db_text = options.get("db") or db_path or "0"
    if not db_text.isdigit():
        raise ValueError(f"db {db_text!r} is not a number")
    return RedisTarget(
        kind="sentinel",
        nodes=_nodes(hosts, 26379),
        service=service,
        db=int(db_text),
        sentinel_username=options.get("sentinel_username") or None,
        sentinel_password=options.get("sentinel_password") or None,
        **common,
    )


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's pool (asks the sentinels for the primary on every new connection) with the
    blocking pool's queue: a burst larger than the pool waits ``timeout`` seconds for a
    connection instead of failing at once."""


class ClusterConnection(Connection):
    """redis-py's connection, except that a write on a connection closed under it (a cluster
    node's connections are dropped while the client refreshes its slot map) raises
    ``ConnectionError`` instead of a bare ``AttributeError`` / ``TypeError`` from asyncio's
    transport (redis-py issue #4287, seen here during a slot migration): retried by the
    cluster client, answered 503 by the service, never 500."""

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        try:
            await super().send_packed_command(command, check_health)
        except (AttributeError, TypeError) as exc:
            await self.disconnect(nowait=True)
            raise ConnectionError(f"the connection closed while writing: {exc}") from exc


def is_cluster(redis: Redis) -> bool:
    """Whether ``redis`` is a Redis Cluster client (built by :func:`connect`)."""
    return isinstance(redis, RedisCluster)


def connect(url: str, timeout: float, *, retries: int = 3) -> Redis:
    """A client for ``url`` whose every wait is ``timeout`` seconds: for a free connection
    (one server and Sentinel: a blocking pool of :data:`POOL_SIZE`), for connecting, and for
    each reply. ``retries``: on a cluster, how often a command is retried after a connection
    error, a timeout or a cluster reconfiguration (``CLUSTERDOWN``, ``TRYAGAIN``) before the
    error reaches the caller.

    Maintenance notifications (a Redis Enterprise feature) are off: while they are on
    ("auto"), redis-py hands out pooled connections without checking them, so after a Redis
    restart every idle connection failed its next command; off, a connection the server
    closed is reconnected when taken from the pool. Raises ValueError for a bad ``url``."""
    target = parse(url)
    off = MaintNotificationsConfig(enabled=False)
    common: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
    }
    if target.kind == "single":
        pool = BlockingConnectionPool.from_url(
            url,
            maint_notifications_config=off,
            health_check_interval=30,
            max_connections=POOL_SIZE,
            timeout=timeout,
            **common,
        )
        return Redis(connection_pool=pool)
    auth: dict[str, Any] = {"username": target.username, "password": target.password}
    if target.ssl:
        auth["ssl"] = True
    if target.kind == "cluster":
        cluster = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
            max_connections=POOL_SIZE,
            retry=Retry(ExponentialBackoff(cap=timeout, base=0.05), retries),
            maint_notifications_config=off,
            **auth,
            **common,
        )
        # its connection class is fixed: give ours to the nodes it has and the ones it finds
        cluster.nodes_manager.connection_kwargs["connection_class"] = ClusterConnection
        for node in cluster.nodes_manager.startup_nodes.values():
            node.connection_class = ClusterConnection
        return cast(Redis, cluster)  # same commands; see the module docstring
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "username": target.sentinel_username,
        "password": target.sentinel_password,
    }
    sentinel = Sentinel(list(target.nodes), sentinel_kwargs=sentinel_kwargs)
    client: Redis = sentinel.master_for(
        target.service,
        connection_pool_class=BlockingSentinelPool,
        db=target.db,
        max_connections=POOL_SIZE,
        timeout=timeout,
        health_check_interval=30,
        **auth,
        **common,
    )
    return client


async def close(redis: Redis) -> None:
    """Close ``redis`` and its connections (every node's, on a cluster)."""
    if is_cluster(redis):
        await cast(RedisCluster, redis).aclose()
        return
    pool = redis.connection_pool
    await redis.aclose(close_connection_pool=True)
    if isinstance(pool, SentinelConnectionPool):  # and the connections to the sentinels
        await pool.sentinel_manager.aclose()
