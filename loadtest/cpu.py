"""CPU seconds spent by each process of a benchmark during one phase, per request.

A ratio of throughputs says how far the ballot path is from the stack's ceiling; this says
where the machine's CPU goes on the way: the app process (HTTP server and handler), Redis,
the persister process, Postgres, the load generator. :func:`groups` finds the processes
by the TCP ports they listen on (with their children: an app's granian workers, Postgres's
backends); :class:`CpuMeter` reads ``user + system`` CPU time of every group (``psutil``) and
of the load generator (this process's waited children, ``RUSAGE_CHILDREN``) before and after
a phase. Processes that start or end within the phase are missed (a Postgres backend opened
for one batch, say); the groups' totals against the machine's busy time
(``psutil.cpu_times``) show how much is left unaccounted.
"""

from __future__ import annotations

import resource
from collections.abc import Mapping
from dataclasses import dataclass, field

import psutil


def listener(port: int) -> psutil.Process | None:
    """The process listening on TCP ``port`` on this host (``None`` if none is seen)."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is not None:
                return psutil.Process(conn.pid)
    return None


def groups(ports: Mapping[str, int], pids: Mapping[str, int] | None = None) -> dict[str, int]:
    """``{group name: root pid}`` for the listeners of ``ports`` (those found) and ``pids``."""
    out = {name: proc.pid for name, port in ports.items() if (proc := listener(port))}
    out.update(pids or {})
    return out


def _tree_seconds(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its live descendants (0 when gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _machine_busy() -> float:
    t = psutil.cpu_times()
    return float(t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0)
                 + getattr(t, "softirq", 0.0))  # fmt: skip


def _children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


@dataclass
class CpuMeter:
    """CPU seconds per group over one phase: ``start()``, run the phase, ``stop(requests)``
    → ``{group: µs per request, ..., "load generator": ..., "machine": ..., "unaccounted":
    ...}`` (``machine``: every core's busy time, the sum of all processes)."""

    pids: Mapping[str, int]
    _before: dict[str, float] = field(default_factory=dict)

    def _read(self) -> dict[str, float]:
        out = {name: _tree_seconds(pid) for name, pid in self.pids.items()}
        out["load generator"] = _children()
        out["machine"] = _machine_busy()
        return out

    def start(self) -> None:
        """Read the counters before the phase."""
        self._before = self._read()

    def stop(self, requests: int) -> dict[str, float]:
        """µs of CPU per request of each group since :meth:`start` (``requests`` > 0)."""
        after = self._read()
        n = max(1, requests)
        out = {k: round((after[k] - self._before.get(k, 0.0)) * 1e6 / n, 1) for k in after}
        out["unaccounted"] = round(out["machine"] - sum(
            v for k, v in out.items() if k != "machine"), 1)  # fmt: skip
        return out
