"""The round form's quarantine thresholds (see :mod:`voting.core.quarantine`): one fieldset
per rule, read into the ``detection`` setting of the API's round bodies."""

from __future__ import annotations

from typing import Any

from admin.console.forms import FIELD_RULES, FormErrors
from voting.core.quarantine import RULE_BY_CODE, THRESHOLDS, defaults
from voting.core.rounds import Round

#: Vietnamese names of the rules (fieldset legends, review headings).
RULE_NAMES = {code: rule.name for code, rule in RULE_BY_CODE.items()}


def detection_fieldsets(rnd: Round | None, values: dict[str, Any]) -> list[dict[str, Any]]:
    """The round form's quarantine fieldsets, one per rule: ``{code, name, inputs: [{name,
    label, value, default, step}]}``; an empty input means the default of the round's
    identity mode (shown as the placeholder)."""
    mode = str(values.get("identity_mode") or (rnd.identity_mode if rnd else "device"))
    base = defaults(mode)
    stored = rnd.detection if rnd is not None else {}
    out = []
    for code, name in RULE_NAMES.items():
        inputs = []
        for t in THRESHOLDS:
            if t.rule != code:
                continue
            key = f"detection.{t.name}"
            value = values[key] if key in values else stored.get(t.name, "")
            inputs.append(
                {
                    "name": key,
                    "label": t.label,
                    "value": value,
                    "default": base[t.name],
                    "step": "1" if t.kind is int else "0.01",
                }
            )
        out.append({"code": code, "name": name, "inputs": inputs})
    return out


def detection_values(form: dict[str, Any]) -> dict[str, int | float]:
    """The thresholds a round form sets (empty inputs left out: the defaults).
    :class:`FormErrors` for an input that is not a number."""
    out: dict[str, int | float] = {}
    errors = {}
    rules = FIELD_RULES
    for t in THRESHOLDS:
        key = f"detection.{t.name}"
        raw = str(form.get(key, "")).strip().replace(",", ".")
        if not raw:
            continue
        try:
            number = float(raw)
        except ValueError:
            errors[key] = rules[key]
            continue
        out[t.name] = int(number) if number.is_integer() else number
    if errors:
        raise FormErrors(errors)
    return out
