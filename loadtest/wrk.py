"""Closed-loop load with wrk (Debian's ``wrk`` package), the benchmark's load generator.

wrk is written in C and costs a few microseconds per request, so on a 2-core machine it is not
the bottleneck it measures (the Python clients of :mod:`loadtest.client` cost tens). Each
request is a fresh voter's ballot (``wrk/ballots.lua``): a credential from a file, used once,
16 random distinct candidates, its own ``Idempotency-Key``; the script writes the body of
every ``201`` to a file, so that the benchmark knows every accepted ballot and its choices.

:func:`run_wrk` runs one phase and returns a :class:`WrkPhase`.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from loadtest.client import LoadError

SCRIPT = Path(__file__).parent / "wrk" / "ballots.lua"
_LATENCY = re.compile(r"latency_us p50=(\d+) p90=(\d+) p99=(\d+) max=(\d+)")
_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass
class WrkPhase:
    """One wrk run: ``seconds`` measured; ``statuses`` status → count; ``rps`` answers per
    second, ``accepted_rps`` 201s per second; latencies of all answers in milliseconds;
    ``socket_errors`` as wrk counts them; ``accepted`` ballot id → choices of every 201 (when
    asked for)."""

    name: str
    seconds: float
    connections: int
    statuses: dict[int, int]
    rps: float
    accepted_rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    socket_errors: int
    accepted: dict[str, list[int]] = field(default_factory=dict, repr=False)


def wrk_path() -> str:
    """The ``wrk`` executable; :class:`LoadError` when it is not installed."""
    found = shutil.which("wrk")
    if found is None:
        raise LoadError("wrk is not installed (Debian: apt-get install wrk)")
    return found


def _prepare(work: Path, name: str, tokens: list[str]) -> tuple[Path, Path]:
    """The phase's token file (written) and its output prefix."""
    work.mkdir(parents=True, exist_ok=True)
    token_file = work / f"{name}.tokens"
    token_file.write_text("\n".join(tokens) + "\n")
    return token_file, work / f"{name}.out"


def _collect(
    out: Path, token_file: Path, keep_accepted: bool
) -> tuple[Counter[int], dict[str, list[int]]]:
    """The statuses the script counted and, when asked, the accepted ballots; files removed."""
    statuses: Counter[int] = Counter()
    for line in Path(f"{out}.0.status").read_text().splitlines():
        status, count = line.split()
        statuses[int(status)] += int(count)
    accepted: dict[str, list[int]] = {}
    bodies = Path(f"{out}.0")
    if keep_accepted:
        for line in bodies.read_text().splitlines():
            body = json.loads(line)
            accepted[body["ballot_id"]] = body["choices"]
    bodies.unlink(missing_ok=True)
    token_file.unlink(missing_ok=True)
    return statuses, accepted


async def run_wrk(
    name: str,
    url: str,
    path: str,
    tokens: list[str],
    candidates: list[int],
    choices: int,
    *,
    seconds: float,
    connections: int,
    work: Path,
    keep_accepted: bool = False,
    form: bool = False,
) -> WrkPhase:
    """Run ``wrk -t1 -c connections -d seconds`` against ``url`` + ``path`` with the ballot
    script, each request taking the next of ``tokens`` (a phase that runs out sends requests
    without a credential: they are answered 401 and show in ``statuses``). ``form``: send the
    peer's ``POST vote=a`` form instead of ballots."""
    token_file, out = _prepare(work, name, tokens)
    args = [
        wrk_path(),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(SCRIPT),
        url,
        "--",
        path,
        str(token_file),
        ",".join(map(str, candidates)),
        str(choices),
        str(out),
        "1",
        "form" if form else "ballot",
    ]
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    text = (await proc.communicate())[0].decode("utf-8", "replace")
    latency = _LATENCY.search(text)
    if proc.returncode != 0 or latency is None:
        raise LoadError(f"wrk failed ({proc.returncode}): {text[-2000:]}")
    statuses, accepted = _collect(out, token_file, keep_accepted)
    errors = _ERRORS.search(text)
    duration = float(max(1, round(seconds)))
    total = sum(statuses.values())
    p50, p90, p99, most = (int(x) / 1000 for x in latency.groups())
    return WrkPhase(
        name=name,
        seconds=duration,
        connections=connections,
        statuses=dict(statuses),
        rps=round(total / duration, 1),
        accepted_rps=round(statuses.get(201, 0) / duration, 1),
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        max_ms=most,
        socket_errors=sum(int(x) for x in errors.groups()) if errors else 0,
        accepted=accepted,
    )
