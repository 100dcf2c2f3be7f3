"""The audit log hash-chained: each event carries the hash of the previous one.

Existing events are chained in id order as they are (their ``created_at`` and details as
stored), then both columns become required.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from voting.core.chain import GENESIS, event_hash

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("prev_hash", sa.String(64)))
    op.add_column("audit_events", sa.Column("hash", sa.String(64)))
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT id, created_at, actor, action, round_id, details FROM audit_events ORDER BY id"
        )
    ).mappings()
    prev = GENESIS
    for row in rows.all():
        value = event_hash(
            prev, row["created_at"], row["actor"], row["action"], row["round_id"], row["details"]
        )
        bind.execute(
            sa.text("UPDATE audit_events SET prev_hash = :p, hash = :h WHERE id = :i"),
            {"p": prev, "h": value, "i": row["id"]},
        )
        prev = value
    op.alter_column("audit_events", "prev_hash", nullable=False)
    op.alter_column("audit_events", "hash", nullable=False)


def downgrade() -> None:
    op.drop_column("audit_events", "hash")
    op.drop_column("audit_events", "prev_hash")
