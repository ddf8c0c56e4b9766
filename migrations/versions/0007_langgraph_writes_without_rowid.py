"""SQLite: ``langgraph_writes`` as a WITHOUT ROWID table, its primary key the table itself.

A rowid table with a composite text primary key is two B-trees: the rows, and the key's
index holding the key columns a second time. LangGraph writes a checkpoint's pending
writes at every step (``put_writes``), so every step's durable commit changed both.
Stored WITHOUT ROWID, the table is the primary key's B-tree alone: measured on a 50-step
graph, 8.9 -> 7.6 WAL frames per step (``SqliteSaver``: 7.9) and ~7% less time per
step (benchmarks/OPTIMISATIONS.md, LangGraph saver, round 3). A write's value above
~1 KB goes to overflow pages (a rowid table keeps up to ~4 KB in the leaf); pending
writes are mostly small.

PostgreSQL: nothing changes (its tables are heaps with separate indexes either way).

Existing data is copied row for row; the downgrade rebuilds the rowid table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = "session_id, checkpoint_id, task_id, idx, channel, value, task_path"


def _rebuild(*, with_rowid: bool) -> None:
    """Copy ``langgraph_writes`` into a table of the same definition, rowid or not."""
    if op.get_bind().dialect.name != "sqlite":
        return
    # Self-contained (as in 0004): SQLite's types of the columns 0004 created.
    op.create_table(
        "_langgraph_writes_new",
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("checkpoint_id", sa.Text(), nullable=False),
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("idx", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("task_path", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.session_id"],
            name=op.f("fk_langgraph_writes_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "session_id", "checkpoint_id", "task_id", "idx", name=op.f("pk_langgraph_writes")
        ),
        sqlite_with_rowid=with_rowid,
    )
    op.execute(
        f"INSERT INTO _langgraph_writes_new ({_COLUMNS}) SELECT {_COLUMNS} FROM langgraph_writes"
    )
    op.execute("DROP TABLE langgraph_writes")
    op.execute("ALTER TABLE _langgraph_writes_new RENAME TO langgraph_writes")


def upgrade() -> None:
    _rebuild(with_rowid=False)


def downgrade() -> None:
    _rebuild(with_rowid=True)
