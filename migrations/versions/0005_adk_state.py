"""Google ADK sessions: their state, and the app- and user-scoped state ADK shares.

An ADK session's events live in ``checkpoints`` (one row per event, in the store
session ``adk:<app>:<user>:<session>``); these three tables hold what has no place
there. Nothing existing changes, so the downgrade only drops them.

Revision ID: 0005
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")
JSON_TEXT = sa.Text().with_variant(postgresql.JSON(), "postgresql")
SEQ = sa.Integer().with_variant(sa.BigInteger(), "postgresql")
KEY = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "adk_sessions",
        sa.Column("app_name", KEY, nullable=False),
        sa.Column("user_id", KEY, nullable=False),
        sa.Column("session_id", KEY, nullable=False),
        sa.Column("store_session_id", KEY, nullable=False),
        sa.Column("state", JSON_TEXT, nullable=False),
        sa.Column("create_time", TIMESTAMP, nullable=False),
        sa.Column("update_time", TIMESTAMP, nullable=False),
        sa.Column("revision", SEQ, server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["store_session_id"],
            ["sessions.session_id"],
            name=op.f("fk_adk_sessions_store_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("app_name", "user_id", "session_id", name=op.f("pk_adk_sessions")),
        sa.UniqueConstraint("store_session_id", name=op.f("uq_adk_sessions_store_session_id")),
    )
    op.create_table(
        "adk_app_states",
        sa.Column("app_name", KEY, nullable=False),
        sa.Column("state", JSON_TEXT, nullable=False),
        sa.Column("update_time", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("app_name", name=op.f("pk_adk_app_states")),
    )
    op.create_table(
        "adk_user_states",
        sa.Column("app_name", KEY, nullable=False),
        sa.Column("user_id", KEY, nullable=False),
        sa.Column("state", JSON_TEXT, nullable=False),
        sa.Column("update_time", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("app_name", "user_id", name=op.f("pk_adk_user_states")),
    )


def downgrade() -> None:
    op.drop_table("adk_user_states")
    op.drop_table("adk_app_states")
    op.drop_table("adk_sessions")
