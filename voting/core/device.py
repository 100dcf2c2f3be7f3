"""The price of a device-mode credential: how much proof of work a client network is asked.

Device mode cannot tell people apart, only networks: the client's IP prefix (``/24``, ``/64``)
and its aggregate (``/16``, ``/48``). So the work asked for the next credential of a round
grows with the credentials that network already received in that round over a sliding
window (a day by default):

* **Within the share.** While the network has received fewer than ``share`` credentials (and
  its aggregate fewer than ``aggregate_share``), a credential costs the base work: ``base``
  (``D``) expected attempts. ``share`` is sized for an honest office behind one NAT.
* **Beyond it.** The *excess* is how many credentials the network (or its aggregate, whichever
  is further over its own share) has received beyond the share, counting the one asked for.
  The expected work is ``D * 2 ** (excess / doubling)``: it doubles every ``doubling`` further
  credentials.

Why exponential (a geometric series): the first ``m`` credentials beyond the share cost
``D * (2 ** (m / H) - 1) / (2 ** (1 / H) - 1) ≈ D * H / ln 2 * 2 ** (m / H)`` attempts in
all (``H`` = ``doubling``), so a budget ``A`` of attempts buys about ``H * log2(A ln 2 /
(D H))`` credentials beyond the share: an attacker with ``k`` times the computing power gets
only ``H * log2(k)`` more, while the base price of honest voters does not move.

The counter. The server draws the secret counter **uniformly** in ``[0, R)``, ``R = 2N``
(:meth:`DevicePricing.counter_range`), and the client must find it (ALTCHA deterministic
mode: the challenge signs a 16-byte prefix of the counter's derived key). Every order of
search then expects ``(R + 1) / 2 ≈ N`` attempts, at most ``R``, and giving up on a challenge
after ``x`` attempts to try a fresh one only costs more (``2N - x / 2`` per success): no
starting point or strategy saves work. (The former draw from ``[D, 2D)`` let a solver that
starts at ``D`` do a third of the work the widget did.)

Concurrency. A challenge is priced for the counts when it was made, and it is still good
when redeemed if the network's excess then is at most its own excess plus :data:`SLACK`
(honest voters of one office solving at the same moment are not refused; a solver that
pipelines gains at most ``2 ** (SLACK / doubling)``, 9 % at the defaults). Otherwise the
server refuses it (``challenge_stale``) and the client solves a new one at the new price.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: The counter is an unsigned 32-bit integer (ALTCHA PoW v2 ``uint32`` counter mode).
MAX_RANGE = 2**32
#: Credentials a challenge may fall behind the counts it was priced for (see the module).
SLACK = 8
#: Beyond this exponent the range is :data:`MAX_RANGE` anyway (2**40 * D > 2**32 for D >= 1).
_MAX_EXPONENT = 40.0


@dataclass(frozen=True)
class DevicePricing:
    """The price schedule of device credentials in one round (see the module).

    ``base``: ``D``, expected attempts of a credential within the shares (>= 1);
    ``share`` / ``aggregate_share``: credentials per network / aggregate in the window at the
    base price (>= 1); ``doubling``: further credentials that double the price (>= 1).
    """

    base: int
    share: int
    aggregate_share: int
    doubling: int

    def excess(self, network: int, aggregate: int) -> int:
        """Credentials beyond the share, counting the one asked for, of a network that has
        received ``network`` credentials in the window and whose aggregate has received
        ``aggregate``; 0 within both shares."""
        return max(0, network - self.share + 1, aggregate - self.aggregate_share + 1)

    def expected_attempts(self, excess: int) -> float:
        """``D * 2 ** (excess / doubling)``, the work a challenge of ``excess`` is priced at
        (before :meth:`counter_range` rounds and caps it)."""
        exponent = min(max(excess, 0) / self.doubling, _MAX_EXPONENT)
        return float(self.base * 2.0**exponent)

    def counter_range(self, excess: int) -> int:
        """``R``: the secret counter is drawn uniformly in ``[0, R)``; ``R = 2N`` rounded, at
        least 2, at most :data:`MAX_RANGE`. A solver expects ``(R + 1) / 2`` attempts."""
        return min(MAX_RANGE, max(2, round(2 * self.expected_attempts(excess))))

    def mean_attempts(self, excess: int) -> float:
        """``(R + 1) / 2``: the attempts any search order expects for a challenge of
        ``excess``."""
        return (self.counter_range(excess) + 1) / 2

    def allowed_counts(self, excess: int) -> tuple[int, int]:
        """``(network, aggregate)``: the most credentials the network and its aggregate may
        have received in the window for a challenge priced at ``excess`` to be redeemed
        (``share - 1 + excess + SLACK``, and the same for the aggregate)."""
        room = max(excess, 0) + SLACK
        return self.share - 1 + room, self.aggregate_share - 1 + room

    def work(self, credentials: int) -> float:
        """Expected attempts in all for the first ``credentials`` credentials of one network
        in the window (its aggregate getting nothing else)."""
        return sum(self.mean_attempts(self.excess(k, k)) for k in range(max(credentials, 0)))

    def credentials_for(self, attempts: float, limit: int = 1_000_000) -> int:
        """How many credentials one network gets for ``attempts`` attempts in the window (the
        inverse of :meth:`work`; at most ``limit``)."""
        total, k = 0.0, 0
        while k < limit:
            total += self.mean_attempts(self.excess(k, k))
            if total > attempts:
                return k
            k += 1
        return limit

    def schedule(self, points: int = 6) -> list[tuple[int, float]]:
        """``[(n, expected attempts of the n-th credential of a network), ...]`` at the share
        and at 1, 2, 4, 8... doublings beyond it (``points`` entries)."""
        out = [(1, self.mean_attempts(0)), (self.share, self.mean_attempts(0))]
        step = 1
        while len(out) < points:
            n = self.share + step * self.doubling
            out.append((n, self.mean_attempts(self.excess(n - 1, n - 1))))
            step *= 2
        return out[:points]


def solver_figure(pricing: DevicePricing, cores: int, seconds: float, attempt_s: float) -> int:
    """Credentials one network gets in ``seconds`` of ``cores`` solvers that each need
    ``attempt_s`` seconds per attempt (the analytic figure; the window must cover
    ``seconds``). Raises ValueError when ``attempt_s`` is not positive."""
    if attempt_s <= 0 or math.isnan(attempt_s):
        raise ValueError("attempt_s must be positive")
    return pricing.credentials_for(cores * seconds / attempt_s)
