"""The audit package of a round: its format, its deterministic ZIP, and the checks of
``voting verify`` (issue 10, section 3).

A ZIP (stdlib :mod:`zipfile`, deflated; every entry dated 1980-01-01 00:00 with mode 0644,
names sorted, so the same record gives the same bytes) holding JSON files (UTF-8, keys
sorted, indented by one space)::

    round.json        {"round": settings (id, slug, title, status, min_choices, max_choices,
                       winners, results_visibility, identity_mode, fields, tie_break,
                       field_minimum, detection, rules_hash, draw_commitment, draw_seed,
                       opens_at, closes_at, closed_at, final_at, official_at),
                       "candidates": [{"id", "code", "full_name", "field"}] by code,
                       "rules": the frozen-rules document whose hash is rules_hash}
    commitments.json  {"round_id", "commitments": [...]}, as GET /rounds/{id}/commitments
    epochs/NNNN.json  {"round_id", "seq", "count", "trackers": [...], "choices": [[id, ...]]}
                      one per sealed epoch (NNNN: its seq, 4 digits at least); trackers
                      sorted bytewise, choice lists each ascending and ordered by their leaf
                      string ("3,7,12"), so no tracker is linked to its choices
    results.json      the published results, as GET /rounds/{id}/results gives them
    quarantine.json   {"round_id", "groups": [{"reason", "decision" ("count", "void" or
                       null: undecided), "counted", "count", "trackers": [...], "choices":
                       [[...]] only when not counted}]}
    audit-head.json   {"round_id", "events_checked", "intact", "broken_at", "head",
                       "round_events": [{"id", "action", "created_at", "hash"}]}: the audit
                      log's hash chain checked up to the round's last event, whose hash is
                      the head
    verify.py         the standalone verifier (stdlib only; voting/core/verify_standalone.py)
    README.txt        how to run it, in Vietnamese and English

The checks (:func:`verify_package`, the same as ``verify.py``'s): the commitment chain
(:func:`voting.core.merkle.check_commitments`), seq 0's rules hash against the rules document,
every epoch's count and both roots, every ballot valid for the round, the quarantine's
subtracted ballots present in the epochs, the recount (all choice lists minus the quarantined
groups not counted) against the results' ballots and votes per candidate, the winners by
votes (those certainly in the top N; seats settled by a rule are not checked), the audit
chain intact, and every commitment saved during the vote (``saved``) present with the same fields
and hash (so the chain, checked, extends the copy).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from voting.core.chain import canonical_hash
from voting.core.merkle import (
    check_commitments,
    choice_string,
    choices_root,
    commitment_of,
    sorted_trackers,
    trackers_root,
)

ROUND = "round.json"
COMMITMENTS = "commitments.json"
RESULTS = "results.json"
QUARANTINE = "quarantine.json"
AUDIT_HEAD = "audit-head.json"
VERIFIER = "verify.py"
README = "README.txt"
#: fixed timestamp of every entry (the earliest a ZIP can say)
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
MAX_NAMED = 5  # problems of one kind named one by one before "and N more"


def epoch_name(seq: int) -> str:
    """The file of epoch ``seq``: ``epochs/0001.json``."""
    return f"epochs/{seq:04d}.json"


def json_bytes(value: Any) -> bytes:
    """``value`` as a package's JSON file: UTF-8, keys sorted, one-space indent, a newline."""
    return (json.dumps(value, ensure_ascii=False, sort_keys=True, indent=1) + "\n").encode()


def zip_bytes(files: Mapping[str, bytes]) -> bytes:
    """A deterministic ZIP of ``files`` (name → bytes; see the module)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16
            info.create_system = 3
            zf.writestr(info, files[name])
    return out.getvalue()


@dataclass
class Report:
    """What :func:`verify_package` found: ``passed`` and ``failed`` lines in plain English."""

    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every check passed."""
        return not self.failed

    def lines(self) -> list[str]:
        """``ok: ...`` then ``FAILED: ...`` lines."""
        return [f"ok: {p}" for p in self.passed] + [f"FAILED: {f}" for f in self.failed]


class _Broken(Exception):
    """The package cannot be read far enough to go on."""


def _named(items: list[str]) -> str:
    more = len(items) - MAX_NAMED
    return ", ".join(items[:MAX_NAMED]) + (f" and {more} more" if more > 0 else "")


def _load(zf: zipfile.ZipFile, name: str) -> Any:
    try:
        return json.loads(zf.read(name))
    except KeyError:
        raise _Broken(f"the package has no {name}") from None
    except ValueError as exc:
        raise _Broken(f"{name} is not valid JSON: {exc}") from None


def saved_list(saved: Any) -> list[dict[str, Any]]:
    """The commitments of a saved file: the commitments route's answer or a bare list.
    Raises ``ValueError`` for anything else."""
    items = saved.get("commitments") if isinstance(saved, dict) else saved
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValueError("not a list of commitments (the answer of the commitments route)")
    return items


def verify_package(data: bytes, saved: Any = None) -> Report:
    """Every check of the package ``data`` (the ZIP's bytes), and of ``saved`` commitments
    (the decoded JSON of a copy of the commitments route kept during the vote) when given.
    Never raises for a bad package: what cannot be read is a failure in the report."""
    report = Report()
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        report.failed.append("this file is not a ZIP audit package")
        return report
    try:
        with zf:
            _verify(zf, saved, report)
    except _Broken as exc:
        report.failed.append(str(exc))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        report.failed.append(f"the package is malformed: {type(exc).__name__}: {exc}")
    return report


def winners_by_votes(tally: Mapping[int, int], codes: Mapping[int, str], seats: int) -> list[int]:
    """The candidates certainly within the top ``seats`` by votes, as
    :func:`voting.core.ranking.rank_candidates` finds them (ties across the cut-off left out),
    re-derived here in a few lines as an outsider would."""
    order = sorted(codes, key=lambda cid: (-tally.get(cid, 0), codes[cid], cid))
    if len(order) <= seats:
        return order
    cut = tally.get(order[seats - 1], 0)
    if tally.get(order[seats], 0) != cut:
        return order[:seats]
    return [cid for cid in order if tally.get(cid, 0) > cut]


def _verify(zf: zipfile.ZipFile, saved: Any, report: Report) -> None:
    doc = _load(zf, ROUND)
    rnd, candidates = doc["round"], doc["candidates"]
    round_id = int(rnd["id"])
    codes = {int(c["id"]): str(c["code"]) for c in candidates}
    published = [commitment_of(c) for c in _load(zf, COMMITMENTS)["commitments"]]
    chain = check_commitments(published)
    if chain.ok:
        report.passed.append(f"commitment chain: {chain.checked} commitments, head {chain.head}")
    else:
        report.failed.append(f"commitment chain breaks at seq {chain.broken_at}: {chain.problem}")
    others = sorted({c.seq for c in published if c.round_id != round_id})
    if others:
        report.failed.append(f"commitments of another round: seq {others}")

    rules_hash = canonical_hash(doc["rules"])
    first = published[0] if published and published[0].seq == 0 else None
    if first is None or first.rules_hash != rules_hash or rnd.get("rules_hash") != rules_hash:
        report.failed.append(
            "rules: the hash of round.json's rules does not match the rules commitment (seq 0)"
        )
    else:
        report.passed.append(f"rules: hash {rules_hash} is commitment seq 0")

    everything: Counter[str] = Counter()
    all_trackers: set[str] = set()
    epoch_files = {n for n in zf.namelist() if n.startswith("epochs/")}
    lo, hi = int(rnd["min_choices"]), int(rnd["max_choices"])
    for c in published:
        if c.kind != "epoch":
            continue
        name = epoch_name(c.seq)
        epoch_files.discard(name)
        try:
            ep = _load(zf, name)
        except _Broken as exc:
            report.failed.append(f"epoch {c.seq}: {exc}")
            continue
        trackers, lists = [str(t) for t in ep["trackers"]], ep["choices"]
        problems = []
        if len(trackers) != c.count or len(lists) != c.count:
            problems.append(
                f"{len(trackers)} trackers and {len(lists)} choice lists, committed {c.count}"
            )
        if trackers_root(trackers) != c.trackers_root:
            problems.append("its trackers do not give the committed trackers_root")
        if choices_root(lists) != c.choices_root:
            problems.append("its choice lists do not give the committed choices_root")
        if trackers != sorted_trackers(trackers):
            problems.append("its trackers are not sorted")
        invalid = [
            choice_string(cl)
            for cl in lists
            if not lo <= len(cl) <= hi
            or len(set(cl)) != len(cl)
            or any(int(x) not in codes for x in cl)
        ]
        if invalid:
            problems.append(f"ballots the round's rules refuse: {_named(invalid)}")
        if problems:
            report.failed.append(f"epoch {c.seq}: " + "; ".join(problems))
        everything.update(choice_string(cl) for cl in lists)
        all_trackers.update(trackers)
    if epoch_files:
        report.failed.append(f"files of epochs not committed: {_named(sorted(epoch_files))}")
    sealed = sum(everything.values())
    epochs = sum(1 for c in published if c.kind == "epoch")
    report.passed.append(f"epochs: {epochs} read, {sealed} ballots")

    subtract: Counter[str] = Counter()
    for group in _load(zf, QUARANTINE)["groups"]:
        reason = group["reason"]
        missing = sorted(set(group["trackers"]) - all_trackers)
        if missing:
            report.failed.append(f"quarantine {reason}: trackers in no epoch: {_named(missing)}")
        if group["decision"] != "count":
            lists = group.get("choices") or []
            if len(lists) != len(group["trackers"]):
                report.failed.append(
                    f"quarantine {reason}: {len(group['trackers'])} trackers but "
                    f"{len(lists)} choice lists to subtract"
                )
            subtract.update(choice_string(cl) for cl in lists)
    absent = sorted((subtract - everything).elements())
    if absent:
        report.failed.append(f"quarantine: ballots to subtract are in no epoch: {_named(absent)}")
    counted = everything - subtract
    ballots = sum(counted.values())
    tally: Counter[int] = Counter()
    for text, n in counted.items():
        for cid in text.split(","):
            tally[int(cid)] += n

    results = _load(zf, RESULTS)
    if int(results["total_ballots"]) != ballots:
        report.failed.append(
            f"results: {results['total_ballots']} ballots published, recount gives {ballots}"
        )
    published_votes = {int(c["candidate_id"]): int(c["votes"]) for c in results["candidates"]}
    wrong = [
        f"{codes.get(cid, cid)} (id {cid}): published {published_votes.get(cid)}, "
        f"recount {tally.get(cid, 0)}"
        for cid in sorted(set(codes) | set(published_votes))
        if published_votes.get(cid) != tally.get(cid, 0)
    ]
    if wrong:
        report.failed.append(f"results: votes differ for {_named(wrong)}")
    if not wrong and int(results["total_ballots"]) == ballots:
        report.passed.append(f"recount: {ballots} ballots counted, votes equal the results")
    expected = winners_by_votes(tally, codes, int(rnd["winners"]))
    if set(results["winners"]) != set(expected):
        named = _named([codes[c] for c in expected])
        report.failed.append(f"results: the winners by votes are not those published ({named})")
    else:
        report.passed.append(f"winners: the {len(expected)} certainly in the top by votes")

    head = _load(zf, AUDIT_HEAD)
    if head["intact"]:
        report.passed.append(
            f"audit log: {head['events_checked']} events chained; head {head['head']}"
        )
    else:
        report.failed.append(
            f"audit log: the chain breaks at event {head['broken_at']} (changed, removed or "
            "inserted)"
        )

    if saved is not None:
        by_seq = {c.seq: c for c in published}
        changed = []
        items = saved_list(saved)
        for item in items:
            s = commitment_of(item)
            now = by_seq.get(s.seq)
            if s.round_id != round_id or now != s:  # every field, the hash included
                changed.append(str(s.seq))
        if changed:
            report.failed.append(
                f"saved commitments: seq {_named(changed)} changed or missing since they were saved"
            )
        else:
            report.passed.append(f"saved commitments: all {len(items)} unchanged in the chain")
