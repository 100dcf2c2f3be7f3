"""One-time passwords for the email and phone modes, kept in Redis only.

A one-time password (OTP: 6 digits, ``secrets``, uniform over 000000-999999) is sent to the
voter's address or number and must come back within ``VOTING_OTP_TTL`` seconds (300). Redis
holds, under keys named by the keyed hash of the identity (never the address in clear; see
:func:`voting.live.keys.otp_keys`) and driven by ``lua/otp_*.lua``, a hash ``c`` (keyed hash
of the code, not the code), ``n`` (wrong attempts), ``s`` (sent at, ms) and ``l`` (locked),
and the GCRA state of the identity's sends. Both keys share the hash tag ``{otp:<hash>}`` so
each atomic script below works unchanged on Redis Cluster.

- Send (:meth:`OtpStore.issue`): refused while the last code is younger than
  ``VOTING_OTP_RESEND_INTERVAL`` or when the identity's sends exceed their GCRA limit
  (``VOTING_OTP_SEND_RATE/PERIOD/BURST``); otherwise a new code replaces the old one.
- Check (:meth:`OtpStore.check`): the right code is consumed (deleted: single use); a wrong one
  counts; at ``VOTING_OTP_ATTEMPTS`` wrong attempts the code is locked until it expires or a
  new one is sent, and the answer says when that can be.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from voting.identity.tokens import Signers
from voting.live.keys import otp_keys
from voting.live.limits import Rate
from voting.live.scripts import load
from voting.settings import Settings


@dataclass(frozen=True)
class CheckResult:
    """Outcome of :meth:`OtpStore.check`: ``status`` is ``ok``, ``expired`` (no code pending),
    ``invalid`` (``attempts_left``) or ``locked`` (``retry_ms`` until a new code can be
    sent)."""

    status: str
    attempts_left: int = 0
    retry_ms: int = 0


class OtpStore:
    """Issues and checks one-time passwords in Redis (see the module)."""

    def __init__(self, redis: Redis, settings: Settings, signers: Signers) -> None:
        self.redis = redis
        self.settings = settings
        self.signers = signers
        self.sends = Rate(
            settings.limits.otp_send_rate,
            settings.limits.otp_send_period,
            settings.limits.otp_send_burst,
        )
        self._issue = redis.register_script(load("otp_issue"))
        self._check = redis.register_script(load("otp_check"))
        self._forget = redis.register_script(load("otp_forget"))

    def identity_hash(self, channel: str, identity: str) -> str:
        """Keyed hash naming the OTP keys of a normalised identity of ``channel``."""
        return self.signers.voter_hash(f"otp:{channel}:{identity}")

    def keys(self, ident: str) -> list[str]:
        """``[state, sends]`` keys of an identity hash (one hash tag)."""
        return list(otp_keys(self.settings.redis.prefix, ident))

    def _otp_hash(self, ident: str, otp: str) -> str:
        return self.signers.voter_hash(f"otp-code:{ident}:{otp}")

    def _args(self) -> list[int]:
        s = self.settings
        return [s.otp.resend_interval * 1000, self.sends.interval_ms, self.sends.burst]

    async def issue(self, ident: str) -> tuple[str | None, int]:
        """A new one-time password for identity hash ``ident``: ``(otp, 0)``, or ``(None, ms to
        wait)``
        when the resend interval or the send limit refuses. Redis errors propagate."""
        otp = f"{secrets.randbelow(1_000_000):06d}"
        wait: Any = await self._issue(
            keys=self.keys(ident),
            args=[self._otp_hash(ident, otp), self.settings.otp.ttl * 1000, *self._args()],
        )
        return (otp, 0) if int(wait) == 0 else (None, int(wait))

    async def forget(self, ident: str, otp: str) -> None:
        """Withdraw ``otp`` (its delivery failed) unless a newer one replaced it."""
        await self._forget(keys=self.keys(ident)[:1], args=[self._otp_hash(ident, otp)])

    async def check(self, ident: str, otp: str) -> CheckResult:
        """Check ``otp`` for identity hash ``ident`` atomically (see the module)."""
        reply: Any = await self._check(
            keys=self.keys(ident),
            args=[self._otp_hash(ident, otp), self.settings.otp.attempts, *self._args()],
        )
        status = str(reply[0])
        if status == "invalid":
            return CheckResult(status, attempts_left=int(reply[1]))
        if status == "locked":
            return CheckResult(status, retry_ms=int(reply[1]))
        return CheckResult(status)
