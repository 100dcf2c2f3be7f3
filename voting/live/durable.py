"""Durable and replica acknowledgement: a ballot is answered 201 only after Redis has fsynced
it (``VOTING_DURABLE_ACK``) and/or after replicas have it (``VOTING_REPLICA_ACK=N``).

When either is on, cast scripts are not run one per request: a single task collects the
scripts of concurrent requests and sends them in one pipeline on one connection, followed by
one wait on that connection (group commit), which covers the whole batch:

- durable only: ``WAITAOF 1 0 <timeout>``, the batch is in the local AOF on disk;
- durable and N replicas: ``WAITAOF 1 N <timeout>``, on disk locally and on N replicas' AOF;
- N replicas only: ``WAIT N <timeout>``, in the memory of N replicas.

On Redis Cluster each batch is split by the primary that owns each script's slot (every key of
a round shares one hash tag, so one slot): one pipeline and one wait per primary, sent to the
primaries at once. A script that meets ``MOVED`` / ``ASK`` / ``TRYAGAIN`` (its slot is being
moved; the script did not run) goes into the next batch after the slot map is refreshed, up to
:data:`REDIRECTS` times. ``WAITAOF`` needs Redis or Valkey >= 7.2 with ``appendonly yes``;
:func:`check_support` says so at start-up (on every primary of a cluster).

A wait that does not confirm within the timeout fails every ballot of the batch with
:class:`DurableAckFailed`: the ballots were accepted by the primary but are not known to be
safe, so the API answers ``503 outcome_unknown`` and a retry with the same
``Idempotency-Key`` returns the stored 201 (or casts it, when the primary lost it).

Without replica acknowledgement a failover (Sentinel or Cluster) that promotes a replica which
had not received a write drops it even though it was fsynced on the old primary; ``voting
reconcile`` names the round. With ``VOTING_REPLICA_ACK=1`` and one replica, an acknowledged
ballot is on the replica that can be promoted.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import (
    AskError,
    ClusterDownError,
    NoScriptError,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)

from voting.live.connection import is_cluster


class DurableAckUnsupported(RuntimeError):
    """The Redis server cannot confirm fsyncs (no WAITAOF, or AOF off)."""


class DurableAckFailed(RedisError):
    """WAITAOF did not confirm the batch's fsync within the timeout (the outcome is unknown:
    the ballots may be stored; a retry with the same Idempotency-Key tells)."""


async def check_support(redis: Redis) -> None:
    """Raise :class:`DurableAckUnsupported` with a clear message unless the server (every
    primary of a cluster) has ``WAITAOF`` (Redis/Valkey >= 7.2) and ``appendonly yes``
    (probed with a 1 ms WAITAOF)."""
    try:
        if is_cluster(redis):
            await redis.execute_command("WAITAOF", 1, 0, 1, target_nodes=RedisCluster.PRIMARIES)
        else:
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


#: times a script refused with MOVED / ASK / TRYAGAIN is tried again in a later batch
REDIRECTS = 3

Item = tuple[list[str], list[Any], "asyncio.Future[Any]", int]


class GroupCommit:
    """Batches cast scripts of concurrent requests behind one wait per Redis node.

    ``max_batch``: most scripts per pipeline; ``timeout_ms``: the wait's timeout
    (milliseconds); ``durable``: wait for the local fsync (``WAITAOF``); ``replicas``: wait
    for that many replicas (``WAITAOF 1 N`` with ``durable``, else ``WAIT N``). At least one
    of the two must be asked. Call :meth:`start` inside the event loop and :meth:`stop` on
    shutdown.
    """

    def __init__(
        self,
        redis: Redis,
        script: AsyncScript,
        *,
        max_batch: int = 256,
        timeout_ms: int = 2000,
        durable: bool = True,
        replicas: int = 0,
    ) -> None:
        if not durable and replicas < 1:
            raise ValueError("a group commit waits for the fsync, replicas, or both")
        self.redis = redis
        self.script = script
        self.max_batch = max_batch
        self.timeout_ms = timeout_ms
        self.durable, self.replicas = durable, replicas
        self._queue: asyncio.Queue[Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # pipelines sent (one per node and batch on a cluster)
        self.redirects = 0  # scripts sent again after MOVED / ASK / TRYAGAIN

    def wait_command(self) -> tuple[Any, ...]:
        """The command sent after each batch (see the module docstring)."""
        if self.durable:
            return ("WAITAOF", 1, self.replicas, self.timeout_ms)
        return ("WAIT", self.replicas, self.timeout_ms)

    def confirmed(self, reply: Any) -> bool:
        """Whether the wait's reply confirms what was asked."""
        if isinstance(reply, Exception):
            return False
        if self.durable:
            return int(reply[0]) >= 1 and int(reply[1]) >= self.replicas
        return int(reply) >= self.replicas

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
        confirmed. Raises :class:`DurableAckFailed` or the Redis error of the batch."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._queue.put((keys, args, future, 0))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                # a waiter that is gone (its request was cancelled) is not sent at all:
                # nobody would hear the answer
                live = [item for item in batch if not item[2].done()]
                if live:
                    if is_cluster(self.redis):
                        await self._execute_cluster(live)
                    else:
                        await self._execute(live)
            except Exception as exc:  # noqa: BLE001 - every waiter must hear of it
                for item in batch:
                    if not item[2].done():
                        item[2].set_exception(exc)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _execute(self, batch: list[Item]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args, _, _ in batch:
                await self.script(keys=keys, args=args, client=pipe)
            pipe.execute_command(*self.wait_command())
            replies = await pipe.execute(raise_on_error=False)
        self.batches += 1
        self._answer(batch, replies[:-1], replies[-1])

    def _answer(self, batch: list[Item], replies: list[Any], waited: Any) -> None:
        confirmed = self.confirmed(waited)
        for (_, _, fut, _), reply in zip(batch, replies, strict=True):
            if fut.done():  # gave up meanwhile
                continue
            if isinstance(reply, Exception):
                fut.set_exception(reply)
            elif not confirmed:
                fut.set_exception(DurableAckFailed(f"the wait did not confirm: {waited!r}"))
            else:
                fut.set_result(reply)

    async def _execute_cluster(self, batch: list[Item]) -> None:
        cluster = cast(RedisCluster, self.redis)
        by_node: dict[str, tuple[ClusterNode, list[Item]]] = {}
        for item in batch:
            try:
                node = cluster.get_node_from_key(item[0][0])
            except SlotNotCoveredError as exc:
                item[2].set_exception(ClusterDownError(str(exc)))
                continue
            assert node is not None
            by_node.setdefault(node.name, (node, []))[1].append(item)
        outcomes = await asyncio.gather(
            *(self._execute_node(node, items) for node, items in by_node.values()),
            return_exceptions=True,
        )
        redirected = False
        for (_, items), outcome in zip(by_node.values(), outcomes, strict=True):
            if isinstance(outcome, BaseException):  # this node's connection failed
                for item in items:
                    if not item[2].done():
                        item[2].set_exception(outcome)
            else:
                redirected |= outcome
        if redirected:
            await cluster.nodes_manager.initialize()

    async def _execute_node(self, node: ClusterNode, items: list[Item]) -> bool:
        """One pipeline and one wait on ``node``; scripts refused there because their slot
        moved (or the script is not loaded yet) are queued again. Whether any moved."""
        sha = self.script.sha
        commands = [
            PipelineCommand(i, "EVALSHA", sha, len(keys), *keys, *args)
            for i, (keys, args, _, _) in enumerate(items)
        ]
        commands.append(PipelineCommand(len(items), *self.wait_command()))
        await node.execute_pipeline(commands)
        self.batches += 1
        redirected = False
        done: list[Item] = []
        replies: list[Any] = []
        for item, command in zip(items, commands, strict=False):
            result = command.result
            again = isinstance(result, NoScriptError) or (
                isinstance(result, AskError | TryAgainError | ClusterDownError)
                and item[3] < REDIRECTS
            )
            if isinstance(result, NoScriptError):
                await node.execute_command("SCRIPT", "LOAD", self.script.script)
            if again:
                if not isinstance(result, NoScriptError):
                    redirected = True
                    self.redirects += 1
                self._queue.put_nowait((item[0], item[1], item[2], item[3] + 1))
            else:
                done.append(item)
                replies.append(result)
        self._answer(done, replies, commands[-1].result)
        return redirected
