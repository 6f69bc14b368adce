"""Conversation imports: each imported conversation's document fingerprint and source file.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Integer on SQLite, as for every id column (see 0001).
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "conversation_imports",
        sa.Column("conversation_id", ID, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_imports_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("conversation_id", name=op.f("pk_conversation_imports")),
    )
    with op.batch_alter_table("conversation_imports", schema=None) as batch_op:
        # A re-import looks its documents up by fingerprint.
        batch_op.create_index(
            batch_op.f("ix_conversation_imports_fingerprint"), ["fingerprint"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("conversation_imports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversation_imports_fingerprint"))
    op.drop_table("conversation_imports")
