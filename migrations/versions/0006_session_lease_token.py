"""The held lease's token on the session's row: leases seen by PostgreSQL's one-statement create.

``sessions.lease_token`` mirrors ``leases``: the token of the lease held on the
session (``owner`` set), NULL while none is held. Every acquisition and release
writes it in its own transaction, after locking the session's row. PostgreSQL's
one-statement create waits for that lock and then re-reads the row's newest version
(READ COMMITTED), so it sees a lease acquired while it waited, which the statement's
snapshot cannot (a first acquisition inserts the lease row; see
``breakpilot_store/core/repository.py``, ``PG_CREATE``).

Existing data: the column is filled from ``leases`` (live or expired leases that are
still held keep their token; released ones give NULL). Nothing else changes.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Self-contained types, as in 0001.
SEQ = sa.Integer().with_variant(sa.BigInteger(), "postgresql")


def upgrade() -> None:
    op.add_column("sessions", sa.Column("lease_token", SEQ, nullable=True))
    op.execute(
        "UPDATE sessions SET lease_token = (SELECT l.token FROM leases l "
        "WHERE l.session_id = sessions.session_id AND l.owner IS NOT NULL)"
    )


def downgrade() -> None:
    # Plain ALTER TABLE on both backends (SQLite >= 3.35): alembic's batch mode would
    # rebuild ``sessions`` on SQLite, and dropping it would cascade to the checkpoints.
    op.execute("ALTER TABLE sessions DROP COLUMN lease_token")
