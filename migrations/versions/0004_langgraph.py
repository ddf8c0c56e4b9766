"""LangGraph threads and their pending writes (breakpilot_store.langgraph).

A LangGraph checkpoint is an ordinary row of ``checkpoints`` (its LangGraph id is the
row's ``name``); what LangGraph needs beyond that gets two tables of its own:
``langgraph_threads`` maps each session that holds a (thread, namespace) to that pair,
and ``langgraph_writes`` holds the pending writes of a checkpoint's next step. Both go
with their session (ON DELETE CASCADE). Existing rows are untouched.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Self-contained types, as in 0001.
JSON_TEXT = sa.Text().with_variant(postgresql.JSON(), "postgresql")
KEY = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "langgraph_threads",
        sa.Column("session_id", KEY, nullable=False),
        sa.Column("thread_id", KEY, nullable=False),
        sa.Column("checkpoint_ns", KEY, nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.session_id"],
            name=op.f("fk_langgraph_threads_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_langgraph_threads")),
    )
    op.create_index(
        op.f("ix_langgraph_threads_thread_id_checkpoint_ns"),
        "langgraph_threads",
        ["thread_id", "checkpoint_ns"],
        unique=True,
    )
    op.create_table(
        "langgraph_writes",
        sa.Column("session_id", KEY, nullable=False),
        sa.Column("checkpoint_id", KEY, nullable=False),
        sa.Column("task_id", KEY, nullable=False),
        sa.Column("idx", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("channel", KEY, nullable=False),
        sa.Column("value", JSON_TEXT, nullable=False),
        sa.Column("task_path", KEY, server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.session_id"],
            name=op.f("fk_langgraph_writes_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "session_id", "checkpoint_id", "task_id", "idx", name=op.f("pk_langgraph_writes")
        ),
    )


def downgrade() -> None:
    op.drop_table("langgraph_writes")
    op.drop_index(
        op.f("ix_langgraph_threads_thread_id_checkpoint_ns"), table_name="langgraph_threads"
    )
    op.drop_table("langgraph_threads")
