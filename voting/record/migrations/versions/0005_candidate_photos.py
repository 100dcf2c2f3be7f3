"""Candidate photos: one row per candidate code and size (re-encoded WebP, hashed); the
candidates' unused ``photo`` and ``photo_type`` columns go (nothing ever wrote them).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "candidate_photos",
        sa.Column(
            "round_id",
            sa.Integer,
            sa.ForeignKey("rounds.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("size", sa.String(16), primary_key=True),
        sa.Column("media_type", sa.String(32), nullable=False),
        sa.Column("width", sa.SmallInteger, nullable=False),
        sa.Column("height", sa.SmallInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("version", sa.String(16), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("size IN ('card', 'profile')", name="candidate_photos_size"),
    )
    op.drop_column("candidates", "photo")
    op.drop_column("candidates", "photo_type")


def downgrade() -> None:
    op.add_column("candidates", sa.Column("photo_type", sa.String(64)))
    op.add_column("candidates", sa.Column("photo", sa.LargeBinary))
    op.drop_table("candidate_photos")
