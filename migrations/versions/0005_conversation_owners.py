"""Conversation owners, history keys and turn leases, for the HTTP service.

`owner` names the API key a conversation was created through (a digest, never
the key), so other keys cannot see it; `history_key` is the fingerprint of the
history a client will re-send to continue it; `lease_holder`/`lease_until` let
one server process at a time run a turn in it, across replicas.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("history_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("lease_holder", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        # A client's re-sent history is looked up among its own key's conversations.
        batch_op.create_index(
            batch_op.f("ix_conversations_owner_history_key"),
            ["owner", "history_key"],
            unique=False,
        )


def downgrade() -> None:
    # recreate="never": SQLite (3.35+) drops a column in place. Copying the table
    # instead would have to drop `conversations`, which other tables reference.
    with op.batch_alter_table("conversations", schema=None, recreate="never") as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversations_owner_history_key"))
        batch_op.drop_column("lease_until")
        batch_op.drop_column("lease_holder")
        batch_op.drop_column("history_key")
        batch_op.drop_column("owner")
