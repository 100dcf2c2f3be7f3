"""The standing committee's decision on a tie, and the moment results become official.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.add_column("rounds", sa.Column("official_at", tz))
    op.create_table(
        "tie_decisions",
        sa.Column(
            "round_id",
            sa.Integer,
            sa.ForeignKey("rounds.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("chosen", postgresql.ARRAY(sa.Integer), nullable=False),
        sa.Column("decided_by", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("decided_on", sa.Date, nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("recorded_at", tz, nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("tie_decisions")
    op.drop_column("rounds", "official_at")
