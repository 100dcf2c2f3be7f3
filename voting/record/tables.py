"""The record: Postgres tables as SQLAlchemy Core ``Table`` objects.

The alembic migrations in ``voting/record/migrations`` create exactly these tables; this module is
what the code queries through. Postgres is the record (rounds, candidates and their photos,
ballots, voting codes, admin users, audit log); Redis only holds live state that can be rebuilt
from here.
No email address, phone number or full IP address is stored: voters are keyed hashes and
ballots keep the client's network prefix only, erased by ``voting purge``.
"""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from voting.core.photos import SIZE_NAMES
from voting.core.roles import ADMIN_ROLES
from voting.core.rounds import IDENTITY_MODES, RESULTS_VISIBILITIES, ROUND_STATUSES, TIE_BREAKS

metadata = MetaData()

rounds = Table(
    "rounds",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(80), nullable=False, unique=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("status", String(16), nullable=False, server_default="draft"),
    Column("min_choices", SmallInteger, nullable=False, server_default="1"),
    Column("max_choices", SmallInteger, nullable=False, server_default="16"),
    Column("winners", SmallInteger, nullable=False, server_default="16"),
    Column("results_visibility", String(16), nullable=False, server_default="after_close"),
    Column("fields", ARRAY(Text), nullable=False),
    Column("identity_mode", String(16), nullable=False, server_default="device"),
    Column("opens_at", DateTime(timezone=True)),
    Column("closes_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("closed_at", DateTime(timezone=True)),
    Column("final_at", DateTime(timezone=True)),
    Column("final_tally", JSONB),
    Column("official_at", DateTime(timezone=True)),
    #: rules chosen in draft and frozen at opening (see voting.core.rules)
    Column("tie_break", String(16), nullable=False, server_default="committee"),
    Column("field_minimum", SmallInteger),
    Column("detection", JSONB, nullable=False, server_default="{}"),
    Column("rules_hash", String(64)),
    Column("draw_seed", String(64)),
    Column("draw_commitment", String(64)),
    CheckConstraint(f"status IN {ROUND_STATUSES}", name="rounds_status"),
    CheckConstraint(f"tie_break IN {TIE_BREAKS}", name="rounds_tie_break"),
    CheckConstraint("field_minimum IS NULL OR field_minimum >= 1", name="rounds_field_minimum"),
    CheckConstraint(f"results_visibility IN {RESULTS_VISIBILITIES}", name="rounds_visibility"),
    CheckConstraint(f"identity_mode IN {IDENTITY_MODES}", name="rounds_identity_mode"),
    CheckConstraint(
        "min_choices >= 1 AND min_choices <= max_choices AND winners >= 1",
        name="rounds_choices",
    ),
)

candidates = Table(
    "candidates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("round_id", Integer, ForeignKey("rounds.id", ondelete="CASCADE"), nullable=False),
    Column("code", String(32), nullable=False),
    Column("full_name", Text, nullable=False),
    Column("gender", String(16), nullable=False),
    Column("birth_year", SmallInteger, nullable=False),
    Column("position", Text, nullable=False),
    Column("workplace", Text, nullable=False),
    Column("nominated_by", Text, nullable=False),
    Column("field", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("achievements", Text, nullable=False),
    UniqueConstraint("round_id", "code", name="candidates_round_code"),
)

#: Candidate photos (see :mod:`voting.core.photos`): one row per candidate code and size,
#: never the upload itself but its re-encoded renditions. Keyed by the candidate's ``code``,
#: not its id, so that a shortlist imported again keeps the photos of the codes it still has.
#: ``sha256``: hex digest of ``data`` (the ETag); ``version``: the same for every size of one
#: upload (``?v=`` in photo URLs).
candidate_photos = Table(
    "candidate_photos",
    metadata,
    Column("round_id", Integer, ForeignKey("rounds.id", ondelete="CASCADE"), primary_key=True),
    Column("code", String(32), primary_key=True),
    Column("size", String(16), primary_key=True),
    Column("media_type", String(32), nullable=False),
    Column("width", SmallInteger, nullable=False),
    Column("height", SmallInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("version", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(f"size IN {SIZE_NAMES}", name="candidate_photos_size"),
)

ballots = Table(
    "ballots",
    metadata,
    Column("ballot_id", Uuid, primary_key=True),
    Column("round_id", Integer, ForeignKey("rounds.id", ondelete="RESTRICT"), nullable=False),
    Column("voter_hash", String(128), nullable=False),
    Column("choices", ARRAY(Integer), nullable=False),
    Column("cast_at", DateTime(timezone=True), nullable=False),
    Column("ip_prefix", String(64)),
    Column("persisted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    #: the voter's receipt (voting.core.tracker); not unique: 60 random bits may collide
    Column("tracker", String(13)),
    #: seq of the commitment that sealed the ballot; NULL while its epoch is open
    Column("epoch", Integer),
    #: inputs of the quarantine rules: when the credential was issued, a hash of the
    #: User-Agent (16 hex; erased with ip_prefix by voting purge)
    Column("credential_at", DateTime(timezone=True)),
    Column("agent", String(16)),
    UniqueConstraint("round_id", "voter_hash", name="ballots_one_per_voter"),
    Index("ballots_tracker", "tracker"),
    Index("ballots_round_epoch", "round_id", "epoch"),
)

#: Published commitments (see voting.core.merkle): seq 0 the rules frozen at opening, then
#: one per sealed epoch, each naming the hash of the one before. Append-only (a trigger).
commitments = Table(
    "commitments",
    metadata,
    Column("round_id", Integer, ForeignKey("rounds.id", ondelete="RESTRICT"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=False),
    Column("count", Integer, nullable=False),
    Column("trackers_root", String(64), nullable=False),
    Column("choices_root", String(64), nullable=False),
    Column("rules_hash", String(64)),
    Column("prev", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    CheckConstraint("kind IN ('rules', 'epoch')", name="commitments_kind"),
)

#: Ballots a quarantine rule flagged (voting.core.quarantine): kept, not in the tally unless
#: their reason group is decided "count". One reason per ballot.
quarantined_ballots = Table(
    "quarantined_ballots",
    metadata,
    Column(
        "ballot_id", Uuid, ForeignKey("ballots.ballot_id", ondelete="RESTRICT"), primary_key=True
    ),
    Column("round_id", Integer, ForeignKey("rounds.id", ondelete="RESTRICT"), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("flagged_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("quarantined_round_reason", "round_id", "reason"),
)

#: An admin's decision on one reason group of a round's quarantine: count or void, why.
quarantine_decisions = Table(
    "quarantine_decisions",
    metadata,
    Column("round_id", Integer, ForeignKey("rounds.id", ondelete="CASCADE"), primary_key=True),
    Column("reason", String(32), primary_key=True),
    Column("decision", String(8), nullable=False),
    Column("note", Text, nullable=False),
    Column("decided_by", String(64), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("decision IN ('count', 'void')", name="quarantine_decisions_decision"),
)

admin_users = Table(
    "admin_users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("disabled_at", DateTime(timezone=True)),
    CheckConstraint(f"role IN {ADMIN_ROLES}", name="admin_users_role"),
)

#: Admin sessions (see :mod:`admin.sessions`): a session token names its row by ``id``; it is
#: valid while ``ended_at`` is null (logout, revocation) and ``expires_at`` is ahead.
#: ``csrf_token``: what a cookie-authenticated change must repeat in ``X-CSRF-Token``.
admin_sessions = Table(
    "admin_sessions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", Integer, ForeignKey("admin_users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Index("admin_sessions_user", "user_id"),
)

#: One-time voting codes of rounds in identity mode ``code`` (see
#: :mod:`voting.identity.codes`): only a keyed hash of each code; ``redeemed_at`` is the
#: first time it yielded a credential.
voter_codes = Table(
    "voter_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("round_id", Integer, ForeignKey("rounds.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("redeemed_at", DateTime(timezone=True)),
    Index("voter_codes_round", "round_id"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("round_id", Integer, ForeignKey("rounds.id", ondelete="SET NULL")),
    Column("details", JSONB, nullable=False, server_default="{}"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    #: the hash chain (see :mod:`voting.core.chain`)
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

#: The standing committee's decision on a tie across the cut-off (see
#: :mod:`voting.services.publication`): which tied candidates take the seats left, who decided,
#: why and when; who recorded it. One per round; replaced (and audited) until the results are
#: official.
tie_decisions = Table(
    "tie_decisions",
    metadata,
    Column("round_id", Integer, ForeignKey("rounds.id", ondelete="CASCADE"), primary_key=True),
    Column("chosen", ARRAY(Integer), nullable=False),
    Column("decided_by", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("decided_on", Date, nullable=False),
    Column("recorded_by", String(64), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
