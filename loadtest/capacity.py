"""Capacity report for operators: step the offered ballot load against a deployment.

    python -m loadtest.capacity --url https://staging.example [--round ID]
        [--rates 200,400,800,1200,1600,2000] [--step-seconds 20] [--connections 256]
        [--data-dir DIR] [--trusted-proxy] --out capacity.html

At each rate of ``--rates`` it sends ballots for ``--step-seconds`` at that constant rate, an
*open* loop (:func:`loadtest.client.open_loop_ballots`: a ballot is sent when it is due,
whatever the earlier ones do, and its latency counts from that moment, so a server that falls
behind shows it in full), each from a fresh voter with 16 random choices (or the round's
most), and checks every answer: ``201`` with the ballot echoed, or an error code of the API
contract. It then writes one HTML page (plots drawn with the vendored uPlot, nothing fetched):
throughput achieved against offered load, p50/p99 latency against offered load, errors by code
against offered load, with the **knee** marked: the first step where the service no longer
keeps up (201s below 97 % of the offered rate, more than 1 % errors, or p99 over four times
the first step's and over 100 ms). ``README.md`` ("Capacity") explains how to read it.

Credentials: with ``--data-dir`` (the folder holding the service's ``secret_key`` and
``identity_key``) they are signed here; otherwise they are asked of ``POST /voters``, which
needs a round whose identity mode is ``device`` and the proof of work off
(``VOTING_CHALLENGE_REQUIRED=false``: a staging deployment, never production's).
``--trusted-proxy`` sends each ballot with an ``X-Forwarded-For`` from a random /24, for a
deployment that trusts the generator as its proxy (``VOTING_TRUSTED_PROXIES``), so the
per-network rate limit and quarantine rules see citizens rather than one address.

The ballots are real: run it against a round made for the test. The load generator is this
Python process: a step where it could not send on time (``late`` p99 over 20 ms) is flagged
``generator-limited`` and says nothing about the service; run several generators then.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from loadtest.client import API, LoadError, SignedVoters, mint_tokens, open_loop_ballots

UPLOT = Path(__file__).resolve().parents[1] / "admin" / "static" / "uplot"
KEEP_UP = 0.97  # 201s per offered ballot below which a step no longer keeps up
ERRORS_MAX = 0.01
LATE_MS = 20.0


def knee(steps: list[dict[str, Any]]) -> int | None:
    """Index of the first step that does not keep up (see the module), or None."""
    if not steps:
        return None
    first_p99 = steps[0]["p99_ms"] or 0.0
    for i, s in enumerate(steps):
        offered = s["offered_rps"] * s["seconds"]
        ok = s["statuses"].get("201", 0)
        errors = sum(n for k, n in s["statuses"].items() if k != "201")
        slow = (s["p99_ms"] or 0) > max(4 * first_p99, 100.0)
        if ok < KEEP_UP * offered or errors > ERRORS_MAX * offered or slow:
            return i
    return None


async def _round(url: str, round_id: int | None) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        if round_id is None:
            rounds = (await client.get(f"{API}/rounds")).json()
            open_ids = [r["id"] for r in rounds if r["status"] == "open"]
            if not open_ids:
                raise LoadError("no open round; pass --round")
            round_id = max(open_ids)
        r = await client.get(f"{API}/rounds/{round_id}")
        if r.status_code != 200:
            raise LoadError(f"round {round_id}: {r.status_code}")
        detail: dict[str, Any] = r.json()
        return detail


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every step; the report's data."""
    detail = await _round(args.url, args.round)
    candidates = [int(c["id"]) for c in detail["candidates"]]
    choices = min(16, int(detail["max_choices"]), len(candidates))
    path = f"{API}/rounds/{detail['id']}/ballots"
    signer = SignedVoters.from_data_dir(args.data_dir) if args.data_dir else None
    steps: list[dict[str, Any]] = []
    for rate in args.rates:
        n = int(rate * args.step_seconds) + 10
        if signer is not None:
            tokens = [signer.issue() for _ in range(n)]
        else:
            tokens, _ = await mint_tokens(args.url, "raw", n, 32)
        step = await open_loop_ballots(
            args.url,
            path,
            rate,
            args.step_seconds,
            tokens,
            candidates,
            args.connections,
            choices_per_ballot=choices,
            spread_networks=args.trusted_proxy,
        )
        step.pop("accepted")
        # 201s per second of the step's whole time, from the first ballot due to the last answer
        step["achieved_rps"] = round(step["statuses"].get("201", 0) / step["elapsed_s"], 1)
        step["generator_limited"] = step["launch_late_p99_ms"] > LATE_MS
        steps.append(step)
        print(
            f"offered {rate:>7.0f}/s  201s {step['achieved_rps']:>7.0f}/s  p50 "
            f"{step['p50_ms'] or 0:7.1f} ms  p99 {step['p99_ms'] or 0:8.1f} ms  "
            f"{step['statuses']}" + ("  (generator-limited)" if step["generator_limited"] else ""),
            flush=True,
        )
    return {
        "url": args.url,
        "round": {"id": detail["id"], "title": detail["title"], "choices": choices},
        "when": datetime.now().astimezone().isoformat(timespec="seconds"),
        "step_seconds": args.step_seconds,
        "connections": args.connections,
        "steps": steps,
        "knee": knee(steps),
    }


def render(report: dict[str, Any]) -> str:
    """The HTML page: a table and three plots (uPlot inlined, so the file stands alone)."""
    steps = report["steps"]
    codes = sorted({k for s in steps for k in s["statuses"] if k != "201"})
    k = report["knee"]
    data = {
        "offered": [s["offered_rps"] for s in steps],
        "achieved": [s["achieved_rps"] for s in steps],
        "p50": [s["p50_ms"] for s in steps],
        "p99": [s["p99_ms"] for s in steps],
        "errors": {c: [s["statuses"].get(c, 0) / s["seconds"] for s in steps] for c in codes},
        "knee": None if k is None else steps[k]["offered_rps"],
    }
    rows = "".join(
        "<tr{cls}><td>{o:.0f}</td><td>{a:.0f}</td><td>{p50}</td><td>{p99}</td><td>{st}</td>"
        "<td>{flag}</td></tr>".format(
            cls=' class="knee"' if i == k else "",
            o=s["offered_rps"],
            a=s["achieved_rps"],
            p50=f"{s['p50_ms']:.1f}" if s["p50_ms"] is not None else "-",
            p99=f"{s['p99_ms']:.1f}" if s["p99_ms"] is not None else "-",
            st=html.escape(", ".join(f"{c}: {n}" for c, n in s["statuses"].items())),
            flag=("knee " if i == k else "")
            + ("generator-limited" if s["generator_limited"] else ""),
        )
        for i, s in enumerate(steps)
    )
    verdict = (
        f"The knee is at <b>{data['knee']:.0f} ballots/s</b> offered: below it the service keeps "
        "up; plan the peak well under it."
        if k is not None
        else "No knee within the steps: the service kept up at every offered rate; step higher."
    )
    css = (UPLOT / "uPlot.min.css").read_text()
    js = (UPLOT / "uPlot.iife.min.js").read_text()
    title = html.escape(report["round"]["title"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Capacity report</title>
<style>{css}
body{{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem}}
table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}}
tr.knee td{{background:#fde2e1}}.plot{{margin:1.5rem 0}}</style></head><body>
<h1>Capacity report</h1>
<p>{html.escape(report["url"])} · round {report["round"]["id"]} ({title}) · {report["when"]} ·
open loop, {report["step_seconds"]} s per step, {report["connections"]} connections,
{report["round"]["choices"]} choices per ballot.</p>
<p>{verdict}</p>
<table><tr><th>offered /s</th><th>201s /s</th><th>p50 ms</th><th>p99 ms</th><th>answers</th>
<th></th></tr>{rows}</table>
<div class="plot" id="throughput"></div><div class="plot" id="latency"></div>
<div class="plot" id="errors"></div>
<script>{js}</script>
<script>
const d = {json.dumps(data)};
const knee = u => {{
  if (d.knee === null) return;
  const x = u.valToPos(d.knee, 'x', true), ctx = u.ctx;
  ctx.save(); ctx.strokeStyle = '#c0392b'; ctx.setLineDash([6, 4]); ctx.lineWidth = 2;
  ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height);
  ctx.stroke(); ctx.restore();
}};
const plot = (id, title, yLabel, series, ys) => new uPlot({{
  title, width: 900, height: 300, hooks: {{draw: [knee]}},
  scales: {{x: {{time: false}}}},
  axes: [{{label: 'offered ballots/s'}}, {{label: yLabel}}],
  series: [{{label: 'offered'}}, ...series],
}}, [d.offered, ...ys], document.getElementById(id));
plot('throughput', 'Throughput (dashed: the knee)', 'ballots/s',
  [{{label: 'kept up (= offered)', stroke: '#999', dash: [4, 4]}},
   {{label: '201s', stroke: '#2471a3', width: 2}}],
  [d.offered, d.achieved]);
plot('latency', 'Latency from when each ballot was due', 'ms',
  [{{label: 'p50', stroke: '#27ae60', width: 2}}, {{label: 'p99', stroke: '#c0392b', width: 2}}],
  [d.p50, d.p99]);
const colours = ['#c0392b', '#8e44ad', '#d35400', '#16a085', '#2c3e50', '#7f8c8d'];
const codes = Object.keys(d.errors);
if (!codes.length) document.getElementById('errors').textContent = 'No errors at any step.';
else plot('errors', 'Errors by code', 'per second',
  codes.map((c, i) => ({{label: c, stroke: colours[i % colours.length], width: 2}})),
  codes.map(c => d.errors[c]));
</script></body></html>
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see ``--help``)."""
    p = argparse.ArgumentParser(
        prog="python -m loadtest.capacity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--url", required=True, help="base URL of the deployment")
    p.add_argument("--round", type=int, help="round id (default: the newest open round)")
    p.add_argument("--rates", default="200,400,800,1200,1600,2000,2500,3000")
    p.add_argument("--step-seconds", type=float, default=20.0)
    p.add_argument("--connections", type=int, default=256)
    p.add_argument("--data-dir", type=Path, help="folder with the service's keys (signing)")
    p.add_argument("--trusted-proxy", action="store_true", help="random X-Forwarded-For")
    p.add_argument("--out", type=Path, default=Path("capacity.html"))
    p.add_argument("--json", type=Path, help="also write the data as JSON")
    args = p.parse_args(argv)
    try:
        args.rates = [float(x) for x in args.rates.split(",") if x.strip()]
    except ValueError:
        p.error("--rates is a comma-separated list of ballots per second")
    if not args.rates or min(args.rates) <= 0 or args.step_seconds <= 0:
        p.error("--rates and --step-seconds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the steps and write the report; 2 when it could not run."""
    args = parse_args(argv)
    try:
        report = asyncio.run(run(args))
    except (LoadError, httpx.HTTPError, OSError) as exc:
        print(f"capacity: {exc}", file=sys.stderr)
        return 2
    args.out.write_text(render(report), encoding="utf-8")
    print(f"report: {args.out}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
