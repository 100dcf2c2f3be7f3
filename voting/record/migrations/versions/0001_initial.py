"""Initial schema: rounds, candidates, ballots, admin users, audit events.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "rounds",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("slug", sa.String(80), nullable=False, unique=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("status", sa.String(16), nullable=False, server_default="draft"),
        sa.Column("min_choices", sa.SmallInteger, nullable=False, server_default="1"),
        sa.Column("max_choices", sa.SmallInteger, nullable=False, server_default="16"),
        sa.Column("winners", sa.SmallInteger, nullable=False, server_default="16"),
        sa.Column(
            "results_visibility", sa.String(16), nullable=False, server_default="after_close"
        ),
        sa.Column("fields", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("opens_at", tz),
        sa.Column("closes_at", tz),
        sa.Column("created_at", tz, nullable=False, server_default=sa.func.now()),
        sa.Column("closed_at", tz),
        sa.Column("final_at", tz),
        sa.Column("final_tally", postgresql.JSONB),
        sa.CheckConstraint("status IN ('draft', 'open', 'paused', 'closed')", name="rounds_status"),
        sa.CheckConstraint(
            "results_visibility IN ('live', 'after_close')", name="rounds_visibility"
        ),
        sa.CheckConstraint(
            "min_choices >= 1 AND min_choices <= max_choices AND winners >= 1",
            name="rounds_choices",
        ),
    )
    op.create_table(
        "candidates",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "round_id", sa.Integer, sa.ForeignKey("rounds.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("full_name", sa.Text, nullable=False),
        sa.Column("gender", sa.String(16), nullable=False),
        sa.Column("birth_year", sa.SmallInteger, nullable=False),
        sa.Column("position", sa.Text, nullable=False),
        sa.Column("workplace", sa.Text, nullable=False),
        sa.Column("nominated_by", sa.Text, nullable=False),
        sa.Column("field", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("achievements", sa.Text, nullable=False),
        sa.Column("photo", sa.LargeBinary),
        sa.Column("photo_type", sa.String(64)),
        sa.UniqueConstraint("round_id", "code", name="candidates_round_code"),
    )
    op.create_table(
        "ballots",
        sa.Column("ballot_id", sa.Uuid, primary_key=True),
        sa.Column(
            "round_id", sa.Integer, sa.ForeignKey("rounds.id", ondelete="RESTRICT"), nullable=False
        ),
        sa.Column("voter_hash", sa.String(128), nullable=False),
        sa.Column("choices", postgresql.ARRAY(sa.Integer), nullable=False),
        sa.Column("cast_at", tz, nullable=False),
        sa.Column("ip_prefix", sa.String(64)),
        sa.Column("persisted_at", tz, nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("round_id", "voter_hash", name="ballots_one_per_voter"),
    )
    op.create_table(
        "admin_users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", tz, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("role IN ('admin', 'observer')", name="admin_users_role"),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("round_id", sa.Integer, sa.ForeignKey("rounds.id", ondelete="SET NULL")),
        sa.Column("details", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column("created_at", tz, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("audit_events_round", "audit_events", ["round_id", "created_at"])


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_table("admin_users")
    op.drop_table("ballots")
    op.drop_table("candidates")
    op.drop_table("rounds")
