"""Proof of work for device-mode voter credentials: ALTCHA v2 challenges, each usable once,
for one round, priced by what the client's network already received in that round.

Made and checked with the ``altcha`` library (PoW v2, the protocol of the ``altcha`` widget
v3): the client must find a counter whose PBKDF2-SHA-256 key (``VOTING_POW_COST``
iterations) starts with a signed prefix. Deterministic mode, as ALTCHA recommends: the server
draws the counter uniformly from ``[0, R)`` and signs the expected key, so any search expects
``(R + 1) / 2`` attempts while the server checks a solution with one HMAC. ``R`` is ``2 D``
(``D`` = ``VOTING_POW_DIFFICULTY``) within the network's share and grows beyond it
(:mod:`voting.core.device`). The challenge's signed ``data`` binds its purpose, its round and
its price (``{"purpose": "voter", "round": "<id>", "level": "<excess>"}``) and it carries
``expiresAt`` (``VOTING_CHALLENGE_TTL``). Redeeming checks the round, then, in one Redis
script (:mod:`voting.live.device`), that the challenge is unused and that the network has not
received more credentials since than its price allows, and counts the credential.

CVE-2025-68113 (GHSA-6gvq-jcmp-8959: a solved v1 challenge re-spliced to move its expiry) is
a flaw of the v1 salt format, fixed in the Python library from 1.0.0 on (a delimiter after the
salt); PoW v2 used here signs the canonical JSON of every parameter instead, and the
solution's types are checked here too (an integer counter, a hex key), which also rules out
the later "number as text" variant of that splice.
``altcha>=2.3`` is required. The library does not remember solved challenges, so each accepted
signature is stored in Redis until the challenge expires: a replay gets ``challenge_used``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import secrets
import time
from typing import Any

import altcha
from redis.asyncio import Redis

from voting.core.device import DevicePricing
from voting.core.errors import Conflict, Invalid
from voting.identity.tokens import Signers
from voting.live.device import DeviceLedger, Redeemed
from voting.settings import Settings

ALGORITHM = "PBKDF2/SHA-256"
PURPOSE = "voter"
MAX_PAYLOAD = 8192  # characters of base64; a widget payload is about 700
_HEX = re.compile(r"(?:[0-9a-f]{2}){1,64}")
_NUMBER = re.compile(r"0|[1-9][0-9]{0,9}")
DATA_INTS = ("round", "level")  # members of the signed data that hold whole numbers


def pricing_of(settings: Settings) -> DevicePricing:
    """The device credentials' price schedule under ``settings`` (``VOTING_POW_DIFFICULTY``,
    ``VOTING_DEVICE_SHARE``, ``_AGGREGATE_SHARE``, ``_DOUBLING``)."""
    c = settings.challenge
    return DevicePricing(
        c.pow_difficulty, c.device_share, c.device_aggregate_share, c.device_doubling
    )


class Challenges:
    """Issues and redeems the proof-of-work challenges of one process."""

    def __init__(self, redis: Redis, settings: Settings, signers: Signers) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = signers.challenge_keys  # newest first: the first signs, all verify
        if not self.keys:
            raise ValueError("no challenge keys: Signers.from_keys derives them")
        self.pricing = pricing_of(settings)
        self.ledger = DeviceLedger(redis, settings.redis.prefix, settings.challenge.device_window)

    def _create(self, round_id: int, level: int) -> dict[str, Any]:
        s = self.settings
        secret, key_secret = self.keys[0]
        challenge = altcha.create_challenge(
            algorithm=ALGORITHM,
            cost=s.challenge.pow_cost,
            counter=secrets.randbelow(self.pricing.counter_range(level)),
            expires_at=int(time.time()) + s.challenge.ttl,
            data={"purpose": PURPOSE, "round": str(round_id), "level": str(level)},
            hmac_secret=secret,
            hmac_key_secret=key_secret,
        )
        return challenge.to_dict()

    async def create(self, round_id: int, network: str, aggregate: str) -> dict[str, Any]:
        """A new signed challenge ``{"parameters": {...}, "signature": "..."}`` for a
        credential of ``round_id``, the JSON the ALTCHA widget fetches, priced for the client
        ``network`` (IP prefix) and its ``aggregate`` by the credentials they received in that
        round (``data.level``: the excess over the share it is priced at, see
        :mod:`voting.core.device`). Deriving its key costs one PBKDF2 run (``pow_cost``
        iterations, about 1 ms at the default), done in a worker thread. Redis errors
        propagate."""
        counts = await self.ledger.counts(round_id, network, aggregate)
        level = self.pricing.excess(counts.network, counts.aggregate)
        return await asyncio.to_thread(self._create, round_id, level)

    async def redeem(self, payload: str, round_id: int, network: str, aggregate: str) -> None:
        """Check a solved challenge (the widget's base64 payload) for a credential of
        ``round_id`` asked from ``network`` / ``aggregate``, mark it used and count the
        credential (see the module).

        Raises :class:`~voting.core.errors.Invalid` ``challenge_invalid`` (not base64 JSON
        of a challenge and a solution, forged, tampered, of another purpose or wrongly solved),
        ``challenge_expired`` or ``challenge_wrong_round`` (made for another round);
        :class:`~voting.core.errors.Conflict` ``challenge_used`` (already redeemed) or
        ``challenge_stale`` (the network received more credentials since than the challenge
        was priced for: solve a new one). Redis errors propagate.
        """
        parsed = _parse(payload)
        result = None
        try:
            for secret, key_secret in self.keys:
                result = altcha.verify_solution(parsed, secret, hmac_key_secret=key_secret)
                if result.expired or not result.invalid_signature:
                    break
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            result = None  # garbage the library did not expect: not a valid proof
        if result is None:
            raise Invalid("challenge_invalid", "the proof of work is not valid")
        if result.expired:
            raise Invalid("challenge_expired", "this challenge has expired; solve a new one")
        params = parsed.challenge.parameters
        data = params.data
        if (
            not result.verified
            or not isinstance(data, dict)
            or data.keys() != {"purpose", "round", "level"}
            or data["purpose"] != PURPOSE
            or not all(isinstance(data[k], str) and _NUMBER.fullmatch(data[k]) for k in DATA_INTS)
            or type(params.expires_at) is not int
        ):
            raise Invalid("challenge_invalid", "the proof of work is not valid")
        if data["round"] != str(round_id):
            raise Invalid(
                "challenge_wrong_round",
                f"this proof of work was made for round {data['round']}, not {round_id}",
            )
        ttl_ms = max(1000, params.expires_at * 1000 - int(time.time() * 1000) + 1000)
        signature = str(parsed.challenge.signature)
        outcome, _ = await self.ledger.redeem(
            round_id,
            network,
            aggregate,
            signature,
            self.pricing.allowed_counts(int(data["level"])),
            ttl_ms,
        )
        if outcome is Redeemed.USED:
            raise Conflict("challenge_used", "this challenge was already used; solve a new one")
        if outcome is Redeemed.STALE:
            raise Conflict(
                "challenge_stale",
                "your network received more credentials since this challenge was made; "
                "solve a new one",
            )


def _parse(payload: str) -> altcha.Payload:
    """Decode the widget payload (base64 of ``{"challenge", "solution"}``, the solution an
    integer ``counter`` and a lower-case hex ``derivedKey``); 400 ``challenge_invalid`` when it
    is not one."""
    if len(payload) > MAX_PAYLOAD:
        raise Invalid("challenge_invalid", "the proof of work is too large")
    try:
        data = json.loads(base64.b64decode(payload, validate=True))
        if not isinstance(data, dict):
            raise TypeError("payload is not an object")
        parsed = altcha.Payload.from_dict(data)
        if not isinstance(parsed.challenge.signature, str):
            raise TypeError("unsigned challenge")
        counter, key = parsed.solution.counter, parsed.solution.derived_key
        if type(counter) is not int or not 0 <= counter <= 0xFFFFFFFF:
            raise TypeError("the counter is not a 32-bit unsigned integer")
        if not isinstance(key, str) or not _HEX.fullmatch(key):
            raise TypeError("the derived key is not hex")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, binascii.Error):
        raise Invalid(
            "challenge_invalid", "the proof of work is not a solved ALTCHA challenge"
        ) from None
    return parsed
