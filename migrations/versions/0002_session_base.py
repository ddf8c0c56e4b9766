"""A create writes one row in two B-trees fewer: the session's row and the time index.

Revision 0001 updated ``sessions.last_seq``, ``checkpoint_count`` and ``updated_at`` in
every create, and kept an index on ``checkpoints (session_id, created_at)``: each one
more B-tree page in every commit, measured at ~20% and ~8% of a create. From here on a
plain create only inserts its checkpoint; the session's row is written by every other
write (see ``breakpilot_store/counters.py``), and time filters read a session's rows in
seq order.

The columns are renamed to say what they now hold (``base_seq``, ``base_count``,
``base_at``): a revision-0001 agent still running against an upgraded database fails
on its next write, naming a missing column, instead of miscounting. Existing rows are
valid bases as they are (nothing has been created above them yet).
``session_overview`` shows the live values under the column names it always had; its
first and last checkpoint times are now those of the first and last checkpoint by seq
(as ``get_summary`` has always chosen them), which needs no time index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The checkpoints created since the session's row was written, newest first.
_ABOVE = "FROM checkpoints c WHERE c.session_id = s.session_id AND c.seq > s.base_seq"

SESSION_OVERVIEW = f"""
CREATE VIEW session_overview AS
SELECT
    s.session_id,
    (SELECT count(*) FROM checkpoints c WHERE c.session_id = s.session_id) AS checkpoints,
    coalesce((SELECT max(c.seq) {_ABOVE}), s.base_seq) AS last_seq,
    (SELECT c.created_at FROM checkpoints c WHERE c.session_id = s.session_id
        ORDER BY c.seq LIMIT 1) AS first_checkpoint_at,
    (SELECT c.created_at FROM checkpoints c WHERE c.session_id = s.session_id
        ORDER BY c.seq DESC LIMIT 1) AS last_checkpoint_at,
    (SELECT c.name FROM checkpoints c WHERE c.session_id = s.session_id
        ORDER BY c.seq DESC LIMIT 1) AS last_name,
    s.created_at,
    coalesce((SELECT c.created_at {_ABOVE} ORDER BY c.seq DESC LIMIT 1), s.base_at)
        AS updated_at
FROM sessions s
"""

# Revision 0001's view, verbatim, for the downgrade.
SESSION_OVERVIEW_0001 = """
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

_RENAMES = (("last_seq", "base_seq"), ("checkpoint_count", "base_count"), ("updated_at", "base_at"))


_TIME_INDEX = "ix_checkpoints_session_id_created_at"


def upgrade() -> None:
    op.execute("DROP VIEW session_overview")
    for old, new in _RENAMES:
        # Plain SQL on both backends (SQLite >= 3.25, which the store's 3.35 floor covers).
        op.execute(f"ALTER TABLE sessions RENAME COLUMN {old} TO {new}")
    op.drop_index(_TIME_INDEX, table_name="checkpoints")
    op.execute(SESSION_OVERVIEW)


def downgrade() -> None:
    op.execute("DROP VIEW session_overview")
    # Fold every session's creates into its row: revision 0001 reads the counter there.
    # (Each right-hand side sees the row as it was before the UPDATE.)
    op.execute(
        f"""
        UPDATE sessions AS s SET
            base_count = s.base_count + coalesce((SELECT max(c.seq) {_ABOVE}), s.base_seq)
                - s.base_seq,
            base_at = coalesce((SELECT c.created_at {_ABOVE} ORDER BY c.seq DESC LIMIT 1),
                s.base_at),
            base_seq = coalesce((SELECT max(c.seq) {_ABOVE}), s.base_seq)
        """
    )
    for old, new in _RENAMES:
        op.execute(f"ALTER TABLE sessions RENAME COLUMN {new} TO {old}")
    op.create_index(_TIME_INDEX, "checkpoints", ["session_id", "created_at"])
    op.execute(SESSION_OVERVIEW_0001)
