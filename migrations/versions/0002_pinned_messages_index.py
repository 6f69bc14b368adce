"""Partial index on pinned messages: a conversation's pins without scanning its history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The predicates are the ones Store.pinned_messages states, per dialect:
    # SQLite stores booleans as 0/1, PostgreSQL has a boolean type.
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_pinned",
            ["conversation_id", "seq"],
            unique=False,
            sqlite_where=sa.text("pinned = 1"),
            postgresql_where=sa.text("pinned"),
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_pinned")
