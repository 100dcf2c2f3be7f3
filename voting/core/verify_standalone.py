#!/usr/bin/env python3
"""Standalone verifier of a voting round's audit package (Python 3.9+, standard library only).

    python3 verify.py package.zip [--commitments saved.json]

Recomputes every Merkle root (RFC 6962) and commitment hash, checks the chain, recounts the
votes from the choice lists minus the quarantined groups not counted, compares them with the
published results, checks the audit log head, and, given commitments saved during the vote,
that none changed. Prints one line per check; exit status 0 when all pass, 1 otherwise.
"""

import hashlib
import json
import sys
import zipfile
from collections import Counter


def sha(data):
    return hashlib.sha256(data).digest()


def mth(leaves):  # RFC 6962 section 2.1 Merkle tree hash
    if not leaves:
        return sha(b"")
    if len(leaves) == 1:
        return sha(b"\x00" + leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return sha(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def canonical_hash(value):
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def text(choices):
    return ",".join(str(c) for c in sorted(choices))


def verify(path, saved_path=None):
    bad, ok = [], []
    z = zipfile.ZipFile(path)

    def read(name):
        return json.loads(z.read(name).decode("utf-8"))

    doc = read("round.json")
    rnd = doc["round"]
    codes = {c["id"]: c["code"] for c in doc["candidates"]}
    chain = read("commitments.json")["commitments"]
    prev, rules_hash = "0" * 64, canonical_hash(doc["rules"])
    for i, c in enumerate(chain):
        body = {k: v for k, v in c.items() if k != "hash"}
        if c["seq"] != i or c["prev"] != prev or canonical_hash(body) != c["hash"]:
            bad.append(f"commitment chain breaks at seq {i}")
            break
        prev = c["hash"]
    if not chain or chain[0]["rules_hash"] != rules_hash or rnd["rules_hash"] != rules_hash:
        bad.append("rules: round.json's rules do not match commitment seq 0")
    all_lists: Counter[str] = Counter()
    trackers_seen = set()
    for c in chain[1:]:
        seq = c["seq"]
        try:
            ep = read(f"epochs/{seq:04d}.json")
        except KeyError:
            bad.append(f"epoch {seq}: its file is missing")
            continue
        trackers, lists = ep["trackers"], ep["choices"]
        tr = mth(sorted(t.encode("ascii") for t in trackers)).hex()
        ch = mth(sorted(text(cl).encode("ascii") for cl in lists)).hex()
        if (len(trackers), len(lists)) != (c["count"], c["count"]):
            bad.append(f"epoch {seq}: count differs from its commitment")
        if tr != c["trackers_root"] or ch != c["choices_root"]:
            bad.append(f"epoch {seq}: roots differ from its commitment")
        for cl in lists:
            n_ok = rnd["min_choices"] <= len(set(cl)) == len(cl) <= rnd["max_choices"]
            if not n_ok or any(x not in codes for x in cl):
                bad.append(f"epoch {seq}: invalid ballot {text(cl)}")
        all_lists.update(text(cl) for cl in lists)
        trackers_seen.update(trackers)
    minus: Counter[str] = Counter()
    for g in read("quarantine.json")["groups"]:
        if not set(g["trackers"]) <= trackers_seen:
            bad.append(f"quarantine {g['reason']}: trackers in no epoch")
        if g["decision"] != "count":
            minus.update(text(cl) for cl in g["choices"])
    if minus - all_lists:
        bad.append("quarantine: ballots to subtract are in no epoch")
    counted = all_lists - minus
    tally: Counter[int] = Counter()
    for t, n in counted.items():
        for cid in t.split(","):
            tally[int(cid)] += n
    res = read("results.json")
    ballots = sum(counted.values())
    if res["total_ballots"] != ballots:
        bad.append(f"results: {res['total_ballots']} ballots published, recount {ballots}")
    for c in res["candidates"]:
        if c["votes"] != tally[c["candidate_id"]]:
            recount = tally[c["candidate_id"]]
            bad.append(f"results: candidate {c['code']} has {c['votes']} votes, recount {recount}")
    order = sorted(codes, key=lambda i: (-tally[i], codes[i], i))
    n = rnd["winners"]
    if len(order) <= n:
        win = order
    elif tally[order[n - 1]] != tally[order[n]]:
        win = order[:n]
    else:
        win = [i for i in order if tally[i] > tally[order[n - 1]]]
    if set(win) != set(res["winners"]):
        bad.append(f"results: winners are not those certainly in the top {n} by votes")
    head = read("audit-head.json")
    if not head["intact"]:
        bad.append(f"audit log: the chain breaks at event {head['broken_at']}")
    if saved_path:
        with open(saved_path, encoding="utf-8") as f:
            saved = json.load(f)
        saved = saved["commitments"] if isinstance(saved, dict) else saved
        now = {c["seq"]: c for c in chain}
        for c in saved:  # every field the same, the hash included
            if now.get(c["seq"]) != c or c["round_id"] != rnd["id"]:
                bad.append(f"saved commitment seq {c['seq']} changed or missing")
    if not bad:
        ok.append(f"{len(chain)} commitments chained, {len(chain) - 1} epochs recounted")
        ok.append(f"{ballots} ballots counted; votes and winners equal the published results")
    return ok, bad


def main(argv):
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--commitments"):
        print("usage: python3 verify.py package.zip [--commitments saved.json]")
        return 2
    try:
        ok, bad = verify(argv[1], argv[3] if len(argv) == 4 else None)
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as exc:
        ok, bad = [], [f"the package cannot be read: {type(exc).__name__}: {exc}"]
    for line in ok:
        print("ok: " + line)
    for line in bad:
        print("FAILED: " + line)
    print("VERIFIED" if not bad else "NOT VERIFIED")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
