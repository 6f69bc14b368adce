"""Message embeddings: one vector per message and embedder, for semantic recall.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Integer on SQLite, as for every id column (see 0001).
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "message_embeddings",
        sa.Column("message_id", ID, nullable=False),
        sa.Column("embedder_id", sa.String(length=500), nullable=False),
        sa.Column("conversation_id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        # float32 little-endian values: BLOB on SQLite, BYTEA on PostgreSQL.
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("dim > 0", name=op.f("ck_message_embeddings_dim")),
        sa.CheckConstraint(
            "length(vector) = 4 * dim", name=op.f("ck_message_embeddings_vector_size")
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_embeddings_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "embedder_id", name=op.f("pk_message_embeddings")),
    )
    with op.batch_alter_table("message_embeddings", schema=None) as batch_op:
        # One conversation's vectors for one embedder, in seq order, from the index alone.
        batch_op.create_index(
            batch_op.f("ix_message_embeddings_conversation_id_embedder_id_seq"),
            ["conversation_id", "embedder_id", "seq"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("message_embeddings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_embeddings_conversation_id_embedder_id_seq"))
    op.drop_table("message_embeddings")
