"""Signed tokens: voter credentials, admin sessions and ballot receipts (itsdangerous), and the
keys that sign proof-of-work challenges.

Each purpose has its own salt, so a token of one kind never verifies as another. Keys rotate:
``Settings.secret_keys`` is newest first; itsdangerous signs with the *last* key of the list it
is given and verifies with all, so the list is passed reversed. Expiry is enforced by passing
``max_age`` when loading (itsdangerous checks no age otherwise). Tokens are readable by their
holder (base64 JSON): they carry random ids and hashes only, never personal data in clear.

ALTCHA challenges are signed by the ``altcha`` library with HMAC keys derived here from each
signing key and the purpose salt ``voting.challenge`` (newest first, like the serializers), so
rotating ``VOTING_SECRET_KEYS`` rotates them too and a challenge key never equals a token key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

VOTER_SALT = "voting.voter"
ADMIN_SALT = "voting.admin-session"
RECEIPT_SALT = "voting.receipt"
CHALLENGE_SALT = "voting.challenge"


class TokenInvalid(Exception):
    """The token is forged, malformed, of another purpose, or expired (``expired`` tells)."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True)
class VoterCredential:
    """A verified voter credential: the voter's keyed hash, the identity mode that vouched for
    it, and the one round it is valid for (``None``: any round of that mode)."""

    voter_hash: str
    mode: str
    round_id: int | None = None
    #: when the credential was issued (seconds since the epoch, whole seconds: the
    #: itsdangerous timestamp); an input of the quarantine rules
    issued_at: int = 0

    def check_round(self, round_id: int, identity_mode: str, *, device_bound: bool = False) -> None:
        """Raise :class:`TokenInvalid` unless the credential may vote in ``round_id``, whose
        identity mode is ``identity_mode``. ``device_bound``: a device credential must name
        its round (when the proof of work is required every device credential is issued for
        one round, so one that names none predates that rule or was made without a proof)."""
        if self.mode != identity_mode:
            raise TokenInvalid(
                f"this round identifies voters by {identity_mode}; the credential is {self.mode}"
            )
        if self.round_id is not None and self.round_id != round_id:
            raise TokenInvalid("this credential is for another round")
        if self.round_id is None and device_bound and self.mode == "device":
            raise TokenInvalid("this device credential names no round; get a new one")


@dataclass(frozen=True)
class Signers:
    """The service's serializers, one per purpose, built from the settings' keys.

    ``secret_keys``: newest first. ``identity_key``: key of the HMAC that turns a voter's
    identity into the hash stored in Redis and Postgres. ``challenge_keys``: per signing key,
    newest first, the pair (challenge signature secret, derived-key signature secret) given to
    ``altcha.create_challenge`` / ``verify_solution``.
    """

    voter: URLSafeTimedSerializer
    admin: URLSafeTimedSerializer
    receipt: URLSafeTimedSerializer
    identity_key: bytes
    challenge_keys: tuple[tuple[bytes, bytes], ...] = ()

    @classmethod
    def from_keys(cls, secret_keys: tuple[str, ...], identity_key: str) -> Signers:
        """Build the serializers; raises ValueError when no key is given."""
        if not secret_keys:
            raise ValueError("at least one secret key is required")
        keys = list(reversed(secret_keys))  # itsdangerous signs with the last one
        return cls(
            voter=URLSafeTimedSerializer(keys, salt=VOTER_SALT),
            admin=URLSafeTimedSerializer(keys, salt=ADMIN_SALT),
            receipt=URLSafeTimedSerializer(keys, salt=RECEIPT_SALT),
            identity_key=identity_key.encode(),
            challenge_keys=tuple(
                (_derive(k, CHALLENGE_SALT), _derive(k, CHALLENGE_SALT + ".key"))
                for k in secret_keys
            ),
        )

    def voter_hash(self, identity: str) -> str:
        """Keyed HMAC-SHA256 of a voter identity, hex, 32 chars (128 bits)."""
        return hmac.new(self.identity_key, identity.encode(), hashlib.sha256).hexdigest()[:32]

    def issue_voter(
        self, mode: str = "device", identity: str | None = None, round_id: int | None = None
    ) -> str:
        """A voter credential.

        ``mode``: the identity mode that vouched for the voter (``device``, ``code``, ``email``,
        ``phone``); ``identity``: what identifies the voter in that mode (a normalised email
        address, a code...; ``None``: a fresh random voter, 128 bits). Only its keyed hash is
        in the token. ``round_id``: the one round the credential is valid for (``None``: any
        round of that mode). Payload ``{"v": voter hash, "m": mode, "r": round or absent, "j":
        token id}``; the token id lets single-use or revoked tokens be told apart.
        """
        who = identity if identity is not None else secrets.token_urlsafe(16)
        payload: dict[str, Any] = {
            "v": self.voter_hash(f"{mode}:{who}"),
            "m": mode,
            "j": secrets.token_urlsafe(9),
        }
        if round_id is not None:
            payload["r"] = round_id
        return self.voter.dumps(payload)

    def load_voter(self, token: str, max_age: int) -> VoterCredential:
        """Verify a voter credential no older than ``max_age`` seconds.

        Raises :class:`TokenInvalid`.
        """
        payload, issued = _load(self.voter, token, max_age, stamped=True)
        if not isinstance(payload, dict):
            raise TokenInvalid("malformed voter token")
        voter, mode, round_id = payload.get("v"), payload.get("m"), payload.get("r")
        if not isinstance(voter, str) or not voter or not isinstance(mode, str):
            raise TokenInvalid("malformed voter token")
        if round_id is not None and not isinstance(round_id, int):
            raise TokenInvalid("malformed voter token")
        return VoterCredential(
            voter_hash=voter, mode=mode, round_id=round_id, issued_at=int(issued.timestamp())
        )

    def issue_admin(self, username: str, session_id: str) -> str:
        """An admin session token ``{"u": username, "s": session id}`` (the session's row,
        not the token, says whether it is live and with which role: :mod:`admin.sessions`)."""
        return self.admin.dumps({"u": username, "s": session_id})

    def load_admin(self, token: str, max_age: int) -> tuple[str, str]:
        """Verify an admin session token; return ``(username, session id)``. Raises
        TokenInvalid."""
        payload = _load(self.admin, token, max_age)
        if not isinstance(payload, dict):
            raise TokenInvalid("malformed admin token")
        user, session_id = payload.get("u"), payload.get("s")
        if not isinstance(user, str) or not isinstance(session_id, str) or not session_id:
            raise TokenInvalid("malformed admin token")
        return user, session_id

    def issue_receipt(self, round_id: int, ballot_id: str, choices: list[int]) -> str:
        """A receipt the voter keeps: signed ``{"r", "b", "c"}`` (round, ballot id, choices)."""
        return self.receipt.dumps({"r": round_id, "b": ballot_id, "c": choices})

    def load_receipt(self, receipt: str) -> dict[str, Any]:
        """Verify a receipt (no expiry); return its payload. Raises TokenInvalid."""
        payload = _load(self.receipt, receipt, None)
        if not isinstance(payload, dict) or not {"r", "b", "c"} <= payload.keys():
            raise TokenInvalid("malformed receipt")
        return payload


def _derive(key: str, purpose: str) -> bytes:
    """HMAC-SHA256(key, purpose): an independent 32-byte key per purpose."""
    return hmac.new(key.encode(), purpose.encode(), hashlib.sha256).digest()


def _load(
    serializer: URLSafeTimedSerializer, token: str, max_age: int | None, *, stamped: bool = False
) -> Any:
    """The payload of ``token`` (with ``stamped``: ``(payload, issued datetime)``)."""
    try:
        if stamped:
            return serializer.loads(token, max_age=max_age, return_timestamp=True)
        return serializer.loads(token, max_age=max_age)
    except SignatureExpired:
        raise TokenInvalid("token expired", expired=True) from None
    except (BadSignature, ValueError, UnicodeDecodeError):
        raise TokenInvalid("token signature is invalid") from None
