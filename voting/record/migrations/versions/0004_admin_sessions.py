"""Admin sessions recorded server-side, and disabled admin users.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.add_column("admin_users", sa.Column("disabled_at", tz))
    op.create_table(
        "admin_sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "user_id",
            sa.Integer,
            sa.ForeignKey("admin_users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", tz, nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", tz, nullable=False),
        sa.Column("ended_at", tz),
    )
    op.create_index("admin_sessions_user", "admin_sessions", ["user_id"])


def downgrade() -> None:
    op.drop_index("admin_sessions_user", "admin_sessions")
    op.drop_table("admin_sessions")
    op.drop_column("admin_users", "disabled_at")
