"""Trust: ballot trackers and epochs, round rules fixed at opening, commitments, quarantine.

- ``ballots``: ``tracker`` (the voter's receipt, indexed, not unique), ``epoch`` (the
  commitment that sealed it), ``credential_at`` and ``agent`` (inputs of the quarantine
  rules; ``agent`` is erased with ``ip_prefix`` by ``voting purge``).
- ``rounds``: ``tie_break``, ``field_minimum``, ``detection`` (rules chosen in draft),
  ``rules_hash`` (set at opening), ``draw_seed`` / ``draw_commitment`` (the draw tie-break).
- ``commitments``: one per epoch (seq 0: the rules), append-only by a trigger, chained by
  ``prev`` / ``hash`` (see :mod:`voting.core.merkle`).
- ``quarantined_ballots`` and ``quarantine_decisions`` (see :mod:`voting.core.quarantine`).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.add_column("ballots", sa.Column("tracker", sa.String(13)))
    op.add_column("ballots", sa.Column("epoch", sa.Integer))
    op.add_column("ballots", sa.Column("credential_at", tz))
    op.add_column("ballots", sa.Column("agent", sa.String(16)))
    op.create_index("ballots_tracker", "ballots", ["tracker"])
    op.create_index("ballots_round_epoch", "ballots", ["round_id", "epoch"])

    op.add_column(
        "rounds",
        sa.Column("tie_break", sa.String(16), nullable=False, server_default="committee"),
    )
    op.add_column("rounds", sa.Column("field_minimum", sa.SmallInteger))
    op.add_column(
        "rounds",
        sa.Column("detection", postgresql.JSONB, nullable=False, server_default="{}"),
    )
    op.add_column("rounds", sa.Column("rules_hash", sa.String(64)))
    op.add_column("rounds", sa.Column("draw_seed", sa.String(64)))
    op.add_column("rounds", sa.Column("draw_commitment", sa.String(64)))
    op.create_check_constraint(
        "rounds_tie_break", "rounds", "tie_break IN ('committee', 'draw', 'field_balance')"
    )
    op.create_check_constraint(
        "rounds_field_minimum", "rounds", "field_minimum IS NULL OR field_minimum >= 1"
    )

    op.create_table(
        "commitments",
        sa.Column(
            "round_id",
            sa.Integer,
            sa.ForeignKey("rounds.id", ondelete="RESTRICT"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("closed_at", tz, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("trackers_root", sa.String(64), nullable=False),
        sa.Column("choices_root", sa.String(64), nullable=False),
        sa.Column("rules_hash", sa.String(64)),
        sa.Column("prev", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.CheckConstraint("kind IN ('rules', 'epoch')", name="commitments_kind"),
    )
    op.execute(
        """
        CREATE FUNCTION commitments_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'commitments is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER commitments_append_only
        BEFORE UPDATE OR DELETE ON commitments
        FOR EACH ROW EXECUTE FUNCTION commitments_append_only()
        """
    )

    op.create_table(
        "quarantined_ballots",
        sa.Column(
            "ballot_id",
            sa.Uuid,
            sa.ForeignKey("ballots.ballot_id", ondelete="RESTRICT"),
            primary_key=True,
        ),
        sa.Column(
            "round_id", sa.Integer, sa.ForeignKey("rounds.id", ondelete="RESTRICT"), nullable=False
        ),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("flagged_at", tz, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("quarantined_round_reason", "quarantined_ballots", ["round_id", "reason"])
    op.create_table(
        "quarantine_decisions",
        sa.Column(
            "round_id", sa.Integer, sa.ForeignKey("rounds.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("reason", sa.String(32), primary_key=True),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=False),
        sa.Column("decided_at", tz, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("decision IN ('count', 'void')", name="quarantine_decisions_decision"),
    )


def downgrade() -> None:
    op.drop_table("quarantine_decisions")
    op.drop_index("quarantined_round_reason", "quarantined_ballots")
    op.drop_table("quarantined_ballots")
    op.execute("DROP TRIGGER commitments_append_only ON commitments")
    op.execute("DROP FUNCTION commitments_append_only()")
    op.drop_table("commitments")
    for name in ("rounds_field_minimum", "rounds_tie_break"):
        op.drop_constraint(name, "rounds")
    for column in ("draw_commitment", "draw_seed", "rules_hash", "detection", "field_minimum"):
        op.drop_column("rounds", column)
    op.drop_column("rounds", "tie_break")
    op.drop_index("ballots_round_epoch", "ballots")
    op.drop_index("ballots_tracker", "ballots")
    for column in ("agent", "credential_at", "epoch", "tracker"):
        op.drop_column("ballots", column)
