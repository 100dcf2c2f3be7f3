"""One-time voting codes: only keyed hashes, per round (identity mode ``code``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "voter_codes",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column(
            "round_id", sa.Integer, sa.ForeignKey("rounds.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("created_at", tz, nullable=False, server_default=sa.func.now()),
        sa.Column("redeemed_at", tz),
    )
    op.create_index("voter_codes_round", "voter_codes", ["round_id"])


def downgrade() -> None:
    op.drop_index("voter_codes_round", "voter_codes")
    op.drop_table("voter_codes")
