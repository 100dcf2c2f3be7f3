"""The human-readable tables of the benchmark's and the soak's reports."""

from __future__ import annotations

from typing import Any


def _fmt(x: Any, width: int) -> str:
    s = "-" if x is None else (f"{x:,.1f}" if isinstance(x, float) else str(x))
    return s.rjust(width)


def render_bench(r: dict[str, Any]) -> str:
    """The report as text: the closed-loop table, ratios, open loop, drain, memory, close."""
    m = r["closed_loop"]["median"]
    lines = [
        f"closed loop (wrk, 1 thread, {r['config']['connections']} connections, "
        f"{r['config']['phase']} s phases x {r['config']['rounds']}, medians):",
        f"  echo (same server)   {m['echo_rps']:>9.1f} req/s   p99 {m['echo_p99_ms']:.1f} ms",
        f"  POST ballots (201s)  {m['ballots_rps']:>9.1f} req/s   p99 {m['ballots_p99_ms']:.1f} ms",
    ]
    if m["peer_rps"]:
        lines.append(f"  peer                 {m['peer_rps']:>9.1f} req/s")
    lines.append(f"ratios: {r['ratios']}")
    cpu = r.get("cpu_us_per_request") or {}
    if cpu:
        names = list(next(iter(cpu.values())))
        lines.append("CPU µs per request (medians): " + " ".join(f"{n:>10}" for n in names))
        for kind, row in cpu.items():
            lines.append(f"  {kind:<26} " + " ".join(f"{row[n]:>10.1f}" for n in names))
    o = r["open_loop_70pct"]
    lines.append(
        f"open loop at {o['offered_rps']} ballots/s: p50 {o['p50_ms']:.1f} ms, p99 "
        f"{o['p99_ms']:.1f} ms, statuses {o['statuses']}, generator late p99 "
        f"{o['launch_late_p99_ms']} ms"
    )
    d = r["persister_drain"]
    lines.append(f"persister drain: {d['backlog']} ballots in {d['seconds']} s = "
                 f"{d['ballots_per_s']} ballots/s")  # fmt: skip
    mem = r["redis_memory"]
    lines.append(f"redis memory: {mem['bytes_per_voter']} bytes/voter ({mem['by_kind']})")
    lines.append(f"big round: {r['big_round']}")
    lines.append(f"close: {r['close']}")
    lines.append(f"checks: {r['checks']}  ->  {'OK' if r['ok'] else 'FAILED'}")
    return "\n".join(lines)


def render_soak(report: dict[str, Any]) -> str:
    """The report of :func:`loadtest.soak.soak` as a text table."""
    lines = [
        f"soak: {report['rate_per_s']}/s for {report['minutes']} min",
        f"{'min':>4} {'sent':>7} {'201':>7} {'p50 ms':>8} {'p99 ms':>8}  errors",
    ]
    for r in report["per_minute"]:
        lines.append(
            f"{r['minute']:>4} {r['sent']:>7} {r['created']:>7} {r['p50_ms']!s:>8} "
            f"{r['p99_ms']!s:>8}  {r['errors'] or ''} "
            + (f"no answer: {r['no_answer']} " if r["no_answer"] else "")
            + (f"retried: {r['retried']}" if r["retried"] else "")
        )
    mem = report["memory_mib"]
    for name in sorted(set(mem["start"]) | set(mem["end"])):
        lines.append(
            f"RSS {name}: {mem['start'].get(name)} MiB at start, {mem['end'].get(name)} MiB at end"
        )
    lines.append(
        f"201s seen {report['accepted_201']}, ballots in Postgres {report['postgres_ballots']}, "
        f"close to final {report['close_to_final_s']} s, "
        f"skipped {report['skipped_over_max_in_flight']}"
    )
    lines.append("PASS" if report["ok"] else "FAIL")
    return "\n".join(lines)
