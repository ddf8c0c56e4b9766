"""Leases with fencing tokens: one writer per session (issue 19).

A ``leases`` table of its own rather than columns on ``sessions``: a plain create never
writes the session's row (it is the counter's base, see ``breakpilot_store/core/
counters.py``), and a lease's renewals would otherwise rewrite that row every few
seconds; its token must also outlive ``delete_session`` (a token that restarted at 1
would let a zombie holder of an old token 1 write again).

``session_overview`` gains the lease's holder, token and expiry, and whether it is live
now (the database's clock: ``now()`` on PostgreSQL, the host's on SQLite).

Existing data is untouched: no session is leased after the upgrade.

Revision ID: 0003
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Self-contained types, as in 0001.
TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")
SEQ = sa.Integer().with_variant(sa.BigInteger(), "postgresql")
KEY = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")

# The checkpoints created since the session's row was written, newest first.
_ABOVE = "FROM checkpoints c WHERE c.session_id = s.session_id AND c.seq > s.base_seq"

# The store's SQLite timestamps are fixed-width ISO-8601 UTC text; this is "now" in it.
_NOW = {
    "sqlite": "(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000+00:00')",
    "postgresql": "now()",
}


def _overview(leased: bool, now: str = "") -> str:
    lease_columns = (
        f""",
    l.owner AS lease_owner,
    l.token AS lease_token,
    l.expires_at AS lease_expires_at,
    (l.owner IS NOT NULL AND l.expires_at > {now}) AS leased"""
        if leased
        else ""
    )
    join = "\nLEFT JOIN leases l ON l.session_id = s.session_id" if leased else ""
    return f"""
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
        AS updated_at{lease_columns}
FROM sessions s{join}
"""


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("session_id", KEY, nullable=False),
        sa.Column("owner", KEY, nullable=True),
        sa.Column("token", SEQ, nullable=False),
        sa.Column("acquired_at", TIMESTAMP, nullable=False),
        sa.Column("renewed_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_leases"),
    )
    op.execute("DROP VIEW session_overview")
    op.execute(_overview(True, _NOW[op.get_bind().dialect.name]))


def downgrade() -> None:
    op.execute("DROP VIEW session_overview")
    op.execute(_overview(False))  # revision 0002's view, column for column
    op.drop_table("leases")
