"""The human-readable tables of the benchmark's and the soak's reports."""

from __future__ import annotations

from typing import Any


def _fmt(x: Any, width: int) -> str:
    s = "-" if x is None else (f"{x:,.1f}" if isinstance(x, float) else str(x))
    return s.rjust(width)


def render_bench(report: dict[str, Any]) -> str:
    """The human-readable table of a report made by :func:`loadtest.bench.bench`."""
    out: list[str] = []
    cfg = report["config"]
    out.append(
        f"voting benchmark  {report['when']}  cpus={report['machine']['cpus']}  "
        f"concurrency={cfg['concurrency']}  warm-up {cfg['warmup_s']} s  "
        f"postgres={cfg['servers']['postgres']} redis={cfg['servers']['redis']}"
    )
    out.append(f"load generator: {cfg['load_generator']}")
    head = (
        f"{'phase':<36}{'secs':>7}{'reqs':>9}{'req/s':>10}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'p99 ms':>9}{'max ms':>9}  cpu% srv/gen/all"
    )
    out += ["", head, "-" * len(head)]
    for key in ("baseline", "ballots"):
        p = report[key]
        cpu = "/".join(
            "-" if v is None else f"{v:.0f}"
            for v in (p["cpu_server_pct"], p["cpu_generator_pct"], p["cpu_machine_pct"])
        )
        out.append(
            f"{p['name']:<36}{_fmt(p['seconds'], 7)}{_fmt(p['requests'], 9)}"
            f"{_fmt(p['rps'], 10)}{_fmt(p['p50_ms'], 9)}{_fmt(p['p95_ms'], 9)}"
            f"{_fmt(p['p99_ms'], 9)}{_fmt(p['max_ms'], 9)}  {cpu}"
        )
    r = report["ratios"]
    out.append(
        f"{'ratio ballots/baseline':<36}{'':>16}{_fmt(r['throughput_ballots_per_baseline'], 10)}"
        f"{_fmt(r['p50_ballots_per_baseline'], 9)}{_fmt(r['p95_ballots_per_baseline'], 9)}"
        f"{_fmt(r['p99_ballots_per_baseline'], 9)}"
    )
    out.append("")
    for key in ("baseline", "ballots"):
        p = report[key]
        errors = {s: n for s, n in p["statuses"].items() if s[0] != "2"}
        out.append(
            f"{key:<9} statuses {p['statuses']}  errors {errors or 'none'}"
            + (f"  transport {p['transport_errors']}" if p["transport_errors"] else "")
            + (f"  NOTE: {p['note']}" if p["note"] else "")
        )
    if report["refused"]:
        out.append(f"ballots refused by code: {report['refused']}")
    if report["unresolved_resent"]:
        out.append(
            f"unknown outcomes resent with their key: {report['unresolved_resent']} -> "
            f"{report['resent_statuses']}"
        )
    m = report["minting"]
    out.append(f"credentials minted before the ballots phase: {m['tokens']} in {m['seconds']} s")
    c = report["close"]

    def secs(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    out.append(
        f"close -> final: {secs(c['seconds'])} s client-side, {secs(c['server_seconds'])} s "
        f"closed_at->final_at on the server (backlog at close {c['backlog_before']}; "
        f"{c['attempts']} request(s); final_at {c['final_at']})"
    )
    n = report["counts"]
    pr = n["progress"]
    out.append(
        f"ballots: 201s seen {n['ballots_201']} | results.total_ballots "
        f"{n['results_total_ballots']} | Postgres count(*) {n['postgres_ballots']} "
        f"({n['postgres_voters']} voters) | progress accepted/persisted/backlog "
        f"{pr.get('accepted')}/{pr.get('persisted')}/{pr.get('backlog')}"
    )
    out.append("")
    for name, ok in report["checks"].items():
        out.append(f"  [{'ok' if ok else 'FAIL'}] {name}")
    out.append(f"RESULT: {'PASS' if report['ok'] else 'FAIL'}")
    return "\n".join(out)


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
