"""Measure the identity figures of the README: proof-of-work solve times and the ballot rate one
IP prefix can reach under the limits.

Against a running service (``voting up`` or ``voting serve``) at ``--url``:

``pow-python``   median time for the ``altcha`` library's reference solver (one thread) to solve
                 ``GET /api/v1/challenge?round_id=N`` challenges of ``--round`` (a device round;
                 only challenges are fetched, so the round's price does not move).
``pow-browser``  median time for the vendored ALTCHA widget in headless Chromium (Playwright,
                 system ``chromium``) to solve them (``verify()``, ``minDuration`` 0, default
                 number of workers = the machine's cores).
``prefix-rate``  from one address, as fast as the limits allow for ``--seconds``: a credential
                 (``POST /voters {}``; run the server with ``VOTING_CHALLENGE_REQUIRED=false``
                 to measure the limits rather than the proof of work) and a ballot in
                 ``--round`` for each; prints the ballots accepted per minute.

Prints one JSON object. Example::

    python scripts/measure_identity.py pow-python --url http://127.0.0.1:8000 --round 1 --runs 21
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import time
from typing import Any

import altcha
import httpx


def pow_python(url: str, runs: int, round_id: int) -> dict[str, Any]:
    """Solve ``runs`` challenges of ``round_id`` with ``altcha.solve_challenge``; seconds per
    solve."""
    times, counters = [], []
    with httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(runs):
            challenge = http.get("/api/v1/challenge", params={"round_id": round_id}).json()
            started = time.perf_counter()
            solution = altcha.solve_challenge(altcha.Challenge.from_dict(challenge))
            times.append(time.perf_counter() - started)
            assert solution is not None
            counters.append(solution.counter)
    params = challenge["parameters"]
    return {
        "what": "python reference solver, one thread",
        "algorithm": params["algorithm"],
        "cost": params["cost"],
        "runs": runs,
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
        "median_counter": statistics.median(counters),
    }


BROWSER_JS = """
async ([runs, roundId]) => {
  await new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.type = 'module'; s.src = '/static/vendor/altcha.min.js';
    s.onload = resolve; s.onerror = reject; document.head.append(s);
  });
  await customElements.whenDefined('altcha-widget');
  const w = document.createElement('altcha-widget');
  w.setAttribute('challenge', `/api/v1/challenge?round_id=${roundId}`);
  w.setAttribute('auto', 'off');
  document.body.append(w);
  await new Promise((r) => setTimeout(r, 0));
  await w.configure({ minDuration: 0, humanInteractionSignature: false });
  const times = [];
  for (let i = 0; i < runs; i += 1) {
    w.reset();
    const t0 = performance.now();
    const result = await w.verify();
    if (!result || !result.payload) throw new Error('not solved');
    times.push(performance.now() - t0);
  }
  return { times, cores: navigator.hardwareConcurrency };
}
"""


def pow_browser(url: str, runs: int, round_id: int) -> dict[str, Any]:
    """Solve ``runs`` challenges of ``round_id`` with the vendored widget in headless
    Chromium; seconds each (fetching the challenge included)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=shutil.which("chromium"),
            args=["--headless", "--no-sandbox", "--disable-gpu"],
            headless=True,
        )
        page = browser.new_page()
        page.goto(f"{url}/static/vendor/ALTCHA-VERSION.txt")  # same origin, nothing else runs
        out = page.evaluate(BROWSER_JS, [runs, round_id])
        browser.close()
    times = [t / 1000 for t in out["times"]]
    return {
        "what": "vendored ALTCHA widget in headless Chromium (verify(), minDuration 0)",
        "workers": out["cores"],
        "runs": runs,
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
    }


async def prefix_rate(url: str, round_id: int, seconds: float) -> dict[str, Any]:
    """Credentials and ballots as fast as the limits allow from one address for ``seconds``."""
    accepted: list[float] = []
    limited = {"voters": 0, "ballots": 0}
    async with httpx.AsyncClient(base_url=f"{url}/api/v1", timeout=30) as http:
        detail = (await http.get(f"/rounds/{round_id}")).json()
        choice = [detail["candidates"][0]["id"]]
        started = time.monotonic()
        while (now := time.monotonic()) - started < seconds:
            r = await http.post("/voters", json={})
            http.cookies.clear()
            if r.status_code == 429:
                limited["voters"] += 1
                await asyncio.sleep(min(int(r.headers["Retry-After"]), 0.05))
                continue
            r.raise_for_status()
            token = r.json()["voter_token"]
            b = await http.post(
                f"/rounds/{round_id}/ballots",
                json={"choices": choice},
                headers={"Authorization": f"Bearer {token}"},
            )
            if b.status_code == 201:
                accepted.append(now - started)
            elif b.status_code == 429:
                limited["ballots"] += 1
            else:
                raise RuntimeError(f"ballot answered {b.status_code}: {b.text}")
    per_minute = [
        sum(1 for t in accepted if m * 60 <= t < (m + 1) * 60) for m in range(int(seconds // 60))
    ]
    return {
        "what": "ballots accepted from one IP prefix, a new device credential each",
        "seconds": seconds,
        "accepted": len(accepted),
        "accepted_per_full_minute": per_minute,
        "accepted_first_10s": sum(1 for t in accepted if t < 10),
        "refused_429": limited,
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point; prints the figures as JSON."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("what", choices=["pow-python", "pow-browser", "prefix-rate"])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--runs", type=int, default=21)
    p.add_argument("--round", type=int, required=True, help="an open device-mode round")
    p.add_argument("--seconds", type=float, default=120.0)
    args = p.parse_args(argv)
    if args.what == "pow-python":
        out = pow_python(args.url, args.runs, args.round)
    elif args.what == "pow-browser":
        out = pow_browser(args.url, args.runs, args.round)
    else:
        out = asyncio.run(prefix_rate(args.url, args.round, args.seconds))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
