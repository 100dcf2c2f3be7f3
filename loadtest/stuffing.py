"""Ballot stuffing in device mode, measured (issue 8): an honest office and an attacker.

    python -m loadtest.stuffing [--office 300] [--office-minutes 30] [--json out.json]

Starts the real service on scratch servers (:mod:`loadtest.service`, the tests' bootstrap:
embedded Postgres and Valkey, or the configured ``VOTING_DATABASE_URL`` /
``VOTING_REDIS_URL`` with a scratch database and key prefix) and measures, in one device-mode
round (the demo round), three scenarios. Clients are told apart by ``X-Forwarded-For``
behind a trusted proxy (127.0.0.1), as behind the production reverse proxy.

1. **The office.** ``--office`` voters behind one NAT (one address, one ``/24``) arrive at
   uniformly random moments over ``--office-minutes``; each fetches a challenge, solves it on
   one core (a process of a pool of this machine's cores), redeems it and casts a ballot.
   Everything at the production defaults (``voting up``: PBKDF2 cost 5000, ``D`` 1000, the
   credential and ballot limits, share 300). Reported: credentials and ballots accepted, and
   each voter's proof of work in CPU seconds of its core (p50, p95, max) and attempts.
2. **The attacker on one network.** Solvers on every core of this machine (``--workers``,
   default all) from one address, as fast as they can: challenge, solve, redeem, ballot, for
   the work that ``--emulate-cores`` cores (8) do in ``--emulate-hours`` (24 h) at the
   production cost. Reported: ballots accepted for that work.
3. **The attacker on one IPv4 /16.** The same, each credential from the next of 256 ``/24``
   networks of one ``/16`` (the aggregate bound is what holds it).

**How time is compressed**, and why the figures carry over. Device mode prices a credential
in *attempts* (PBKDF2 derivations), by the credentials its network and aggregate received in
the round within the sliding window (24 h), never by the clock. So the attackers do not run
for 24 hours: they spend the same number of attempts. The script measures the time of one
attempt at the production cost on this machine (``t``, the fastest of a few runs, so the
budget errs on the attacker's side) and gives the attackers a budget of ``cores * hours *
3600 / t`` attempts. To spend it in minutes, the attackers' server runs a cheaper copy of the
price: PBKDF2 cost ``--attack-cost`` (default 50) and ``D / --attack-scale`` (default
1000 / 20 = 50); every price in attempts is then ``D``-proportional (``D * 2 ** (excess /
doubling)``), so with the budget divided by the same scale the credentials bought are the
same (up to the rounding of ranges to whole counters). The attackers' credential and ballot
limits (GCRA per network) are raised: in 24 hours they would not bind, so raising them only
helps the attacker. The window is the production one (24 h), which the compressed run lies
within. The office is not compressed (it pays the production price in real CPU time); a
shorter ``--office-minutes`` changes nothing but the arrival rate, which the credential limit
(300 per minute) does not notice.

Finally the round is closed and Postgres must hold exactly the ballots answered 201. Prints a
report and writes it as JSON to ``--json``. Exit status 0 when the targets hold (every office
voter got a credential and cast a ballot with at most 10 s of proof of work on one core; each
attacker got at most 1,500 ballots on one network) and the record matches; 1 otherwise; 2
when the run could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import random
import secrets
import signal
import statistics
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from loadtest import service
from loadtest.client import API, LoadError
from tests.support.servers import StartupError, VotingProcess, free_port, running, service_env
from voting.core.device import DevicePricing, solver_figure
from voting.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
OFFICE_ADDRESS = "198.51.100.7"  # the office NAT
ATTACKER_ADDRESS = "203.0.113.9"  # one machine, one network
SPREAD = [f"10.77.{i}.5" for i in range(256)]  # the 256 /24s of one /16
TARGET_OFFICE_CPU_S = 10.0
TARGET_ATTACK_BALLOTS = 1500
HUGE = 1_000_000_000
CHECK_EVERY = 512  # attempts between two looks at the shared budget


# -- the solver (the best a Python attacker does: OpenSSL's PBKDF2, no library overhead) -------


def _search(challenge: dict[str, Any], stop: Any = None) -> tuple[int, str, int] | None:
    """Scan counters from 0 for the one whose PBKDF2-SHA-256 key starts with the challenge's
    ``keyPrefix``: ``(counter, derived key hex, attempts)``, or None when ``stop()`` says
    so (asked every :data:`CHECK_EVERY` attempts with the attempts since the last call)."""
    p = challenge["parameters"]
    nonce, salt = bytes.fromhex(p["nonce"]), bytes.fromhex(p["salt"])
    prefix, cost, length = bytes.fromhex(p["keyPrefix"]), int(p["cost"]), int(p["keyLength"])
    pbkdf2, pack = hashlib.pbkdf2_hmac, struct.Struct(">I").pack
    counter = 0
    while counter <= 0xFFFFFFFF:
        key = pbkdf2("sha256", nonce + pack(counter), salt, cost, length)
        if key.startswith(prefix):
            if stop is not None:
                stop((counter + 1) % CHECK_EVERY)
            return counter, key.hex(), counter + 1
        counter += 1
        if stop is not None and counter % CHECK_EVERY == 0 and stop(CHECK_EVERY):
            return None
    return None


def _payload(challenge: dict[str, Any], counter: int, key: str) -> str:
    """The widget's payload: base64 of ``{"challenge", "solution"}``."""
    body = {"challenge": challenge, "solution": {"counter": counter, "derivedKey": key}}
    return base64.b64encode(json.dumps(body).encode()).decode()


def solve_timed(challenge: dict[str, Any]) -> tuple[str, int, float]:
    """Solve on this process's core: ``(payload, attempts, CPU seconds)``."""
    cpu = time.process_time()
    found = _search(challenge)
    if found is None:
        raise LoadError("challenge not solvable")
    counter, key, attempts = found
    return _payload(challenge, counter, key), attempts, time.process_time() - cpu


def attempt_seconds(cost: int, runs: int = 3, attempts: int = 200) -> float:
    """Seconds of one PBKDF2-SHA-256 derivation of ``cost`` iterations on one core: the
    fastest of ``runs`` runs (so a budget made from it errs on the attacker's side)."""
    salt, best = secrets.token_bytes(16), float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        for i in range(attempts):
            hashlib.pbkdf2_hmac(
                "sha256", secrets.token_bytes(16) + struct.pack(">I", i), salt, cost, 32
            )
        best = min(best, (time.perf_counter() - t0) / attempts)
    return best


# -- the servers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def start(
    b: service.Backends, work: Path, name: str, args: list[str], password: str, **env: str
) -> Iterator[str]:
    """Run ``voting ARGS`` on a free port with the production settings except ``env``, behind
    a trusted proxy at 127.0.0.1; yield its URL."""
    port = free_port()
    values = service_env(
        database_url=b.database_url,
        redis_url=b.redis_url,
        prefix=b.prefix,
        data_dir=b.data_dir,
        port=port,
        VOTING_ADMIN_PASSWORD=password,
        VOTING_HOST="127.0.0.1",
        VOTING_TRUSTED_PROXIES="127.0.0.1/32",
    )
    for k in ("VOTING_BALLOT_RATE", "VOTING_BALLOT_BURST", "VOTING_CREDENTIAL_RATE"):
        values.pop(k)  # the production defaults, unless env says otherwise
    values.pop("VOTING_CREDENTIAL_BURST")
    values["VOTING_CHALLENGE_REQUIRED"] = "true"
    values.update(env)
    proc = VotingProcess(name, args, values, work / f"{name}.log", port)
    try:
        with running(proc, 120, timeout=30, sig=signal.SIGINT):
            yield proc.url
    except StartupError as exc:
        raise LoadError(str(exc)) from None


# -- the office ----------------------------------------------------------------------------------


async def office(
    base: str, round_id: int, candidates: list[int], voters: int, minutes: float, workers: int
) -> dict[str, Any]:
    """``voters`` arrivals over ``minutes`` from :data:`OFFICE_ADDRESS` (see the module)."""
    headers = {"X-Forwarded-For": OFFICE_ADDRESS}
    loop = asyncio.get_running_loop()
    rng = random.Random(8)
    arrivals = sorted(rng.uniform(0, minutes * 60) for _ in range(voters))
    records: list[dict[str, Any]] = []
    started = loop.time()
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        await loop.run_in_executor(pool, attempt_seconds, 10, 1, 1)  # start the workers

        async def voter(http: httpx.AsyncClient, at: float) -> None:
            await asyncio.sleep(max(0.0, started + at - loop.time()))
            rec: dict[str, Any] = {"cpu_s": 0.0, "attempts": 0, "tries": 0, "levels": []}
            t0 = time.perf_counter()
            for _ in range(3):  # as the page does: a stale or used challenge is solved anew
                rec["tries"] += 1
                r = await http.get(
                    f"{API}/challenge", params={"round_id": round_id}, headers=headers
                )
                if r.status_code != 200:
                    rec["credential"] = r.status_code
                    break
                challenge = r.json()
                rec["levels"].append(int(challenge["parameters"]["data"]["level"]))
                payload, attempts, cpu = await loop.run_in_executor(pool, solve_timed, challenge)
                rec["cpu_s"] += cpu
                rec["attempts"] += attempts
                v = await http.post(
                    f"{API}/voters", json={"altcha": payload, "round_id": round_id}, headers=headers
                )
                rec["credential"] = v.status_code
                if v.status_code == 201:
                    token = v.json()["voter_token"]
                    k = rng.randint(1, min(16, len(candidates)))
                    ballot = await http.post(
                        f"{API}/rounds/{round_id}/ballots",
                        json={"choices": rng.sample(candidates, k)},
                        headers={**headers, "Authorization": f"Bearer {token}"},
                    )
                    rec["ballot"] = ballot.status_code
                    break
                if v.json()["error"]["code"] not in ("challenge_stale", "challenge_used"):
                    break
            rec["wall_s"] = time.perf_counter() - t0
            records.append(rec)

        async with httpx.AsyncClient(base_url=base, timeout=120) as http:
            await asyncio.gather(*[voter(http, at) for at in arrivals])
    cpu = sorted(r["cpu_s"] for r in records)
    wall = sorted(r["wall_s"] for r in records)
    attempts = sorted(r["attempts"] for r in records)
    return {
        "voters": voters,
        "minutes": minutes,
        "address": OFFICE_ADDRESS,
        "credentials_201": sum(r.get("credential") == 201 for r in records),
        "ballots_201": sum(r.get("ballot") == 201 for r in records),
        "statuses": dict(Counter(f"{r.get('credential')}/{r.get('ballot')}" for r in records)),
        "retries": sum(r["tries"] - 1 for r in records),
        "highest_level": max((max(r["levels"]) for r in records if r["levels"]), default=None),
        "pow_cpu_s": _spread(cpu),
        "wall_s": _spread(wall),
        "attempts": {**_spread(attempts), "mean": round(statistics.fmean(attempts), 1)},
    }


def _spread(values: list[float]) -> dict[str, float]:
    """p50 / p95 / max of sorted ``values``."""
    if not values:
        return {}
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {"p50": round(pick(0.5), 3), "p95": round(pick(0.95), 3), "max": round(values[-1], 3)}


# -- the attacker --------------------------------------------------------------------------------

_spent: Any = None
_next: Any = None


def _init(spent: Any, following: Any) -> None:
    global _spent, _next
    _spent, _next = spent, following


def _attacker(
    base: str, round_id: int, candidates: list[int], addresses: list[str], budget: int
) -> dict[str, Any]:
    """One solver process: credentials and ballots until the shared budget of attempts is
    spent (see the module)."""
    out: dict[str, Any] = {"credentials": 0, "ballots": 0, "stale": 0, "other": Counter()}
    out["levels"], cpu = [], time.process_time()

    def stop(attempts: int) -> bool:
        with _spent.get_lock():
            _spent.value += attempts
            return bool(_spent.value >= budget)

    with httpx.Client(base_url=base, timeout=60) as http:
        while _spent.value < budget:
            with _next.get_lock():
                address = addresses[_next.value % len(addresses)]
                _next.value += 1
            headers = {"X-Forwarded-For": address}
            r = http.get(f"{API}/challenge", params={"round_id": round_id}, headers=headers)
            if r.status_code != 200:
                out["other"][f"challenge {r.status_code}"] += 1
                time.sleep(0.05)
                continue
            challenge = r.json()
            found = _search(challenge, stop)
            if found is None:
                break  # the budget ran out in the middle of this one
            counter, key, _ = found
            v = http.post(
                f"{API}/voters",
                json={"altcha": _payload(challenge, counter, key), "round_id": round_id},
                headers=headers,
            )
            http.cookies.clear()
            if v.status_code != 201:
                code = v.json()["error"]["code"]
                if code == "challenge_stale":
                    out["stale"] += 1
                else:
                    out["other"][f"voters {code}"] += 1
                continue
            out["credentials"] += 1
            out["levels"].append(int(challenge["parameters"]["data"]["level"]))
            token = v.json()["voter_token"]
            ballot = http.post(
                f"{API}/rounds/{round_id}/ballots",
                json={"choices": candidates[: 1 + out["credentials"] % 16]},
                headers={**headers, "Authorization": f"Bearer {token}"},
            )
            if ballot.status_code == 201:
                out["ballots"] += 1
            else:
                out["other"][f"ballot {ballot.status_code}"] += 1
    out["cpu_s"] = time.process_time() - cpu
    out["other"] = dict(out["other"])
    return out


def attack(
    base: str,
    round_id: int,
    candidates: list[int],
    addresses: list[str],
    workers: int,
    budget: int,
) -> dict[str, Any]:
    """``workers`` solver processes sharing a budget of ``budget`` attempts."""
    ctx = mp.get_context("spawn")
    spent, following = ctx.Value("q", 0), ctx.Value("q", 0)
    t0 = time.perf_counter()
    with ctx.Pool(workers, initializer=_init, initargs=(spent, following)) as pool:
        parts = pool.starmap(_attacker, [(base, round_id, candidates, addresses, budget)] * workers)
    levels = sorted(level for p in parts for level in p["levels"])
    other: Counter[str] = Counter()
    for p in parts:
        other.update(p["other"])
    return {
        "workers": workers,
        "networks": len(addresses),
        "budget_attempts": budget,
        "spent_attempts": int(spent.value),
        "credentials_201": sum(p["credentials"] for p in parts),
        "ballots_201": sum(p["ballots"] for p in parts),
        "stale_409": sum(p["stale"] for p in parts),
        "other": dict(other),
        "highest_level": levels[-1] if levels else None,
        "wall_s": round(time.perf_counter() - t0, 1),
        "solver_cpu_s": round(sum(p["cpu_s"] for p in parts), 1),
    }


# -- the run -------------------------------------------------------------------------------------


async def _demo(base: str, password: str) -> service.DemoRound:
    return await service.demo_round(base, password)


def run(args: argparse.Namespace, b: service.Backends, work: Path) -> dict[str, Any]:
    """Both servers, the three scenarios, the record check; the report."""
    defaults = Settings().challenge
    pricing = DevicePricing(
        defaults.pow_difficulty,
        defaults.device_share,
        defaults.device_aggregate_share,
        defaults.device_doubling,
    )
    t_full = attempt_seconds(defaults.pow_cost)
    t_cheap = attempt_seconds(args.attack_cost, attempts=2000)
    budget_full = args.emulate_cores * args.emulate_hours * 3600 / t_full
    budget = int(budget_full / args.attack_scale)
    cheap_d = max(1, round(defaults.pow_difficulty / args.attack_scale))
    report: dict[str, Any] = {
        "machine_cores": os.cpu_count(),
        "attempt_s_at_cost": {str(defaults.pow_cost): t_full, str(args.attack_cost): t_cheap},
        "settings": {
            "pow_cost": defaults.pow_cost,
            "D": defaults.pow_difficulty,
            "share": defaults.device_share,
            "aggregate_share": defaults.device_aggregate_share,
            "doubling": defaults.device_doubling,
            "window_s": defaults.device_window,
        },
        "compression": {
            "emulated": f"{args.emulate_cores} cores x {args.emulate_hours} h",
            "budget_attempts_at_production_price": int(budget_full),
            "attack_cost": args.attack_cost,
            "attack_D": cheap_d,
            "scale": args.attack_scale,
            "budget_attempts_compressed": budget,
        },
        "analytic_one_network": {
            f"{k}x faster": solver_figure(
                pricing, args.emulate_cores, args.emulate_hours * 3600, t_full / k
            )
            for k in (1, 4, 16)
        },
    }
    password = secrets.token_urlsafe(16)
    demo_args = ["up", "--demo", str(args.csv)]
    with start(b, work, "office-server", demo_args, password) as office_url:
        demo = asyncio.run(_demo(office_url, password))
        cheap = {
            "VOTING_POW_COST": str(args.attack_cost),
            "VOTING_POW_DIFFICULTY": str(cheap_d),
            "VOTING_RUN_PERSISTER": "false",
            "VOTING_CREDENTIAL_RATE": str(HUGE),
            "VOTING_CREDENTIAL_BURST": str(HUGE),
            "VOTING_BALLOT_RATE": str(HUGE),
            "VOTING_BALLOT_BURST": str(HUGE),
        }
        with start(
            b, work, "attack-server", ["serve", "--public"], password, **cheap
        ) as attack_url:
            if args.office:
                print(f"office: {args.office} voters over {args.office_minutes} min", flush=True)
                report["office"] = asyncio.run(
                    office(
                        office_url,
                        demo.id,
                        demo.candidates,
                        args.office,
                        args.office_minutes,
                        args.workers,
                    )
                )
            scenarios = {"attacker_one_network": [ATTACKER_ADDRESS], "attacker_one_16": SPREAD}
            for name in args.attacks:
                print(f"{name}: {budget:,} attempts on {args.workers} workers", flush=True)
                report[name] = attack(
                    attack_url, demo.id, demo.candidates, scenarios[name], args.workers, budget
                )
        closed = asyncio.run(service.close_round(office_url, demo.id, demo.admin_token, 300))
        counts = asyncio.run(service.record_counts(office_url, b, demo.id, demo.admin_token))
    answered = sum(report[k]["ballots_201"] for k in ("office", *args.attacks) if k in report)
    report["record"] = {
        "ballots_201": answered,
        "postgres_ballots": counts["postgres_ballots"],
        "final": closed.final_at is not None,
    }
    checks = [counts["postgres_ballots"] == answered, closed.final_at is not None]
    if "office" in report:
        o = report["office"]
        checks += [
            o["credentials_201"] == o["ballots_201"] == args.office,
            o["pow_cpu_s"]["max"] <= TARGET_OFFICE_CPU_S,
        ]
    checks += [
        report[k]["ballots_201"] <= TARGET_ATTACK_BALLOTS
        for k in args.attacks
        if k != "attacker_one_16"
    ]
    report["ok"] = all(checks)
    return report


def render(report: dict[str, Any]) -> str:
    """The report as text."""
    lines = [f"cores {report['machine_cores']}; one attempt: {report['attempt_s_at_cost']} s"]
    if "office" in report:
        o = report["office"]
        lines.append(
            f"office: {o['voters']} voters over {o['minutes']} min -> {o['credentials_201']} "
            f"credentials, {o['ballots_201']} ballots; PoW CPU s {o['pow_cpu_s']}, "
            f"attempts {o['attempts']}, retries {o['retries']}, highest level {o['highest_level']}"
        )
    c = report["compression"]
    for name in ("attacker_one_network", "attacker_one_16"):
        if name in report:
            a = report[name]
            lines.append(
                f"{name}: {c['emulated']} = {c['budget_attempts_at_production_price']:,} attempts"
                f" -> {a['ballots_201']} ballots ({a['credentials_201']} credentials, "
                f"{a['stale_409']} stale, highest level {a['highest_level']}, other {a['other']}) "
                f"in {a['wall_s']} s"
            )
    lines.append(f"analytic, one network: {report['analytic_one_network']}")
    lines.append(f"record: {report['record']}")
    lines.append("PASS" if report["ok"] else "FAIL")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point; see the module docstring."""
    p = argparse.ArgumentParser(
        prog="python -m loadtest.stuffing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--office", type=int, default=300, help="voters behind one NAT (0: none)")
    p.add_argument("--office-minutes", type=float, default=30.0)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="solver processes")
    p.add_argument("--emulate-cores", type=int, default=8)
    p.add_argument("--emulate-hours", type=float, default=24.0)
    p.add_argument("--attack-cost", type=int, default=50)
    p.add_argument("--attack-scale", type=int, default=20)
    p.add_argument(
        "--attacks",
        nargs="*",
        default=["attacker_one_network", "attacker_one_16"],
        choices=["attacker_one_network", "attacker_one_16"],
    )
    p.add_argument("--csv", type=Path, default=ROOT / "data" / "shortlist-sample.csv")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="voting-stuffing-") as tmp:
            work = Path(tmp)
            with service.backends(work, "stuffing") as b:
                report = run(args, b, work)
    except LoadError as exc:
        print(f"stuffing: {exc}", file=sys.stderr)
        return 2
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
