"""The initial schema: sessions, checkpoints, their indexes, and two views for operators.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Self-contained types (a migration must not change when the models do later):
# SQLite keeps timestamps as fixed-width ISO-8601 UTC text so they sort and read as text.
TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")
# JSON on PostgreSQL (not JSONB: JSONB refuses "\u0000" in strings, rewrites -0.0, 1e308
# and key order), TEXT on SQLite; either way the codec's exact text is stored.
JSON_TEXT = sa.Text().with_variant(postgresql.JSON(), "postgresql")
# 64-bit seqs and counters on both (SQLite's INTEGER already is; PostgreSQL's is 32-bit).
SEQ = sa.Integer().with_variant(sa.BigInteger(), "postgresql")
# Ids and names sort by code point on both (PostgreSQL: the "C" collation, any locale).
KEY = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")

SESSION_OVERVIEW = """
CREATE VIEW session_overview AS
SELECT
    s.session_id,
    (SELECT count(*) FROM checkpoints c WHERE c.session_id = s.session_id) AS checkpoints,
    s.last_seq,
    (SELECT min(c.created_at) FROM checkpoints c WHERE c.session_id = s.session_id)
        AS first_checkpoint_at,
    (SELECT max(c.created_at) FROM checkpoints c WHERE c.session_id = s.session_id)
        AS last_checkpoint_at,
    (SELECT c.name FROM checkpoints c WHERE c.session_id = s.session_id
        ORDER BY c.seq DESC LIMIT 1) AS last_name,
    s.created_at,
    s.updated_at
FROM sessions s
"""

CHECKPOINT_OVERVIEW = """
CREATE VIEW checkpoint_overview AS
SELECT
    c.session_id || ':' || CAST(c.seq AS TEXT) AS id,
    c.session_id,
    c.seq,
    c.name,
    c.created_at,
    length(CAST(c.data AS TEXT)) + length(CAST(c.metadata AS TEXT)) AS payload_size,
    substr(CAST(c.data AS TEXT), 1, 60) AS preview,
    c.origin_id,
    c.data,
    c.metadata
FROM checkpoints c
"""


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("session_id", KEY, nullable=False),
        sa.Column("last_seq", SEQ, nullable=False),
        sa.Column("checkpoint_count", SEQ, server_default="0", nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_sessions")),
    )
    op.create_table(
        "checkpoints",
        sa.Column("session_id", KEY, nullable=False),
        sa.Column("seq", SEQ, autoincrement=False, nullable=False),
        sa.Column("name", KEY, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("data", JSON_TEXT, nullable=False),
        sa.Column("metadata", JSON_TEXT, nullable=False),
        sa.Column("origin_id", KEY, nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.session_id"],
            name=op.f("fk_checkpoints_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "seq", name=op.f("pk_checkpoints")),
    )
    op.create_index(
        op.f("ix_checkpoints_session_id_name_seq"),
        "checkpoints",
        ["session_id", "name", "seq"],
    )
    op.create_index(
        op.f("ix_checkpoints_session_id_created_at"),
        "checkpoints",
        ["session_id", "created_at"],
    )
    op.create_index(
        op.f("ix_checkpoints_session_id_origin_id"),
        "checkpoints",
        ["session_id", "origin_id"],
        unique=True,
        sqlite_where=sa.text("origin_id IS NOT NULL"),
        postgresql_where=sa.text("origin_id IS NOT NULL"),
    )
    op.execute(SESSION_OVERVIEW)
    op.execute(CHECKPOINT_OVERVIEW)


def downgrade() -> None:
    op.execute("DROP VIEW checkpoint_overview")
    op.execute("DROP VIEW session_overview")
    op.drop_table("checkpoints")
    op.drop_table("sessions")
