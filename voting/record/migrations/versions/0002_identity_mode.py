"""Rounds choose how voters are identified: device, code, email or phone.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "rounds",
        sa.Column("identity_mode", sa.String(16), nullable=False, server_default="device"),
    )
    op.create_check_constraint(
        "rounds_identity_mode", "rounds", "identity_mode IN ('device', 'code', 'email', 'phone')"
    )


def downgrade() -> None:
    op.drop_constraint("rounds_identity_mode", "rounds")
    op.drop_column("rounds", "identity_mode")
