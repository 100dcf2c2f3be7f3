"""Durable acknowledgement: a ballot is answered 201 only after Redis has fsynced it.

When ``VOTING_DURABLE_ACK`` is on, cast scripts are not run one per request: a single task
collects the scripts of concurrent requests and sends them in one pipeline on one connection,
followed by ``WAITAOF 1 0 <timeout>``, which blocks until every write of that connection is in
the local AOF on disk (group commit). One fsync thus covers a whole batch. ``WAITAOF`` needs
Redis or Valkey >= 7.2 with ``appendonly yes``; :func:`check_support` says so at start-up.

Note: with Sentinel or Cluster failover, a replica promoted before it received a write drops
it even though it was fsynced on the old primary; run ``voting reconcile`` after a failover.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError, ResponseError


class DurableAckUnsupported(RuntimeError):
    """The Redis server cannot confirm fsyncs (no WAITAOF, or AOF off)."""


class DurableAckFailed(RedisError):
    """WAITAOF did not confirm the batch's fsync within the timeout (the outcome is unknown:
    the ballots may be stored; a retry with the same Idempotency-Key tells)."""


async def check_support(redis: Redis) -> None:
    """Raise :class:`DurableAckUnsupported` with a clear message unless the server has
    ``WAITAOF`` (Redis/Valkey >= 7.2) and ``appendonly yes`` (probed with a 1 ms WAITAOF)."""
    try:
        await redis.execute_command("WAITAOF", 1, 0, 1)
    except ResponseError as exc:
        text = str(exc).lower()
        if "unknown command" in text:
            server: Any = await redis.info("server")
            version = server.get("valkey_version") or server.get("redis_version")
            raise DurableAckUnsupported(
                "VOTING_DURABLE_ACK needs WAITAOF (Redis or Valkey >= 7.2); "
                f"this server is {version}"
            ) from None
        if "appendonly" in text:
            raise DurableAckUnsupported(
                "VOTING_DURABLE_ACK needs 'appendonly yes' on the Redis server"
            ) from None
        raise


class GroupCommit:
    """Batches cast scripts of concurrent requests behind one ``WAITAOF``.

    ``max_batch``: most scripts per pipeline; ``timeout_ms``: WAITAOF timeout (milliseconds).
    Call :meth:`start` inside the event loop and :meth:`stop` on shutdown.
    """

    def __init__(
        self, redis: Redis, script: AsyncScript, *, max_batch: int = 256, timeout_ms: int = 2000
    ) -> None:
        self.redis = redis
        self.script = script
        self.max_batch = max_batch
        self.timeout_ms = timeout_ms
        self._queue: asyncio.Queue[tuple[list[str], list[Any], asyncio.Future[Any]]] = (
            asyncio.Queue()
        )
        self._task: asyncio.Task[None] | None = None
        self.batches = 0

    def start(self) -> None:
        """Start the batching task."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Finish the queued scripts, then stop the task."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def run_script(self, keys: list[str], args: list[Any]) -> Any:
        """Run the cast script as part of the next batch; return its reply once the batch is
        fsynced. Raises :class:`DurableAckFailed` or the Redis error of the batch."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._queue.put((keys, args, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._execute(batch)
            except Exception as exc:  # noqa: BLE001 - every waiter must hear of it
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _execute(self, batch: list[tuple[list[str], list[Any], asyncio.Future[Any]]]) -> None:
        # a waiter that is gone (its request was cancelled) is not sent at all: nobody would
        # hear the answer, and setting a result on its future would fail the whole batch
        batch = [item for item in batch if not item[2].done()]
        if not batch:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args, _ in batch:
                await self.script(keys=keys, args=args, client=pipe)
            pipe.execute_command("WAITAOF", 1, 0, self.timeout_ms)
            replies = await pipe.execute(raise_on_error=False)
        self.batches += 1
        fsynced = replies[-1]
        confirmed = not isinstance(fsynced, Exception) and int(fsynced[0]) >= 1
        for (_, _, fut), reply in zip(batch, replies[:-1], strict=True):
            if fut.done():  # gave up meanwhile
                continue
            if isinstance(reply, Exception):
                fut.set_exception(reply)
            elif not confirmed:
                fut.set_exception(DurableAckFailed(f"WAITAOF did not confirm: {fsynced!r}"))
            else:
                fut.set_result(reply)
