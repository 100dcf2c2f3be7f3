"""Voter identities of the email and phone modes: normalisation and masking.

One person, one ballot: every spelling of one mailbox or phone number must give the same
identity, whose keyed HMAC (:meth:`voting.tokens.Signers.voter_hash`) is all that is stored.

- Email: trimmed and lower-cased (RFC 5321 lets the local part be case-sensitive; no mail
  system in use here treats it so); the domain is IDNA-encoded; a ``+tag`` sub-address
  (RFC 5233 convention) is dropped; for Gmail (``gmail.com``, ``googlemail.com``) dots in the
  local part are dropped too, as Gmail ignores them. So ``An.Nguyen+vote@GMail.com`` and
  ``annguyen@gmail.com`` are one voter.
- Phone: Vietnamese mobile numbers only, parsed with Google's libphonenumber (``phonenumbers``)
  in region VN and written in E.164 (``0912 345 678`` → ``+84912345678``).
"""

from __future__ import annotations

import re

import phonenumbers

MAX_EMAIL = 254  # RFC 5321 path limit
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_GMAIL = {"gmail.com", "googlemail.com"}
_MOBILE = {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}


class IdentityInvalid(ValueError):
    """The email address or phone number cannot identify a voter; the message says why."""


def normalise_email(raw: str) -> str:
    """The canonical form of an email address (see the module); raises
    :class:`IdentityInvalid`."""
    text = raw.strip()
    if len(text) > MAX_EMAIL or text.count("@") != 1:
        raise IdentityInvalid("not an email address")
    local, domain = text.rsplit("@", 1)
    if not _LOCAL.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise IdentityInvalid("the part before @ is not valid")
    try:
        domain = domain.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise IdentityInvalid("the domain is not valid") from None
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise IdentityInvalid("the domain is not valid")
    local = local.lower().split("+", 1)[0]
    if domain in _GMAIL:
        domain = "gmail.com"
        local = local.replace(".", "")
    if not local:
        raise IdentityInvalid("the part before @ is not valid")
    return f"{local}@{domain}"


def normalise_phone(raw: str) -> str:
    """A Vietnamese mobile number in E.164 (``+849...``); raises :class:`IdentityInvalid`."""
    try:
        number = phonenumbers.parse(raw.strip(), "VN")
    except phonenumbers.NumberParseException:
        raise IdentityInvalid("not a phone number") from None
    if (
        phonenumbers.region_code_for_number(number) != "VN"
        or not phonenumbers.is_valid_number(number)
        or phonenumbers.number_type(number) not in _MOBILE
    ):
        raise IdentityInvalid("not a Vietnamese mobile number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask(channel: str, identity: str) -> str:
    """A hint safe to show or log: ``a***@gmail.com``, ``+8491*****78``."""
    if channel == "email":
        local, _, domain = identity.partition("@")
        return f"{local[:1]}***@{domain}"
    return identity[:5] + "*" * max(0, len(identity) - 7) + identity[-2:]
