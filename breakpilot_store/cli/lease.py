"""``breakpilot-store lease show|release``: the operators' view of session leases.

Registered on the ``breakpilot-store`` group when :mod:`breakpilot_store.cli` is
imported. ``sessions`` shows each session's lease too (see ``lease_cell``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import click

from ..codec import check_key
from ..core import leases
from ..core.leases import LeaseInfo
from ..errors import UnknownSessionError
from .commands import Options, _json, cli, common, open_read, open_write, pass_options
from .format import iso, short_time


def _now() -> datetime:
    return datetime.now(timezone.utc)


def lease_dict(info: LeaseInfo | None) -> dict[str, Any] | None:
    """A lease as JSON (timestamps ISO-8601), or ``None`` for a session never leased."""
    if info is None:
        return None
    return {
        "owner": info.owner,
        "token": info.token,
        "live": info.live,
        "acquired_at": iso(info.acquired_at),
        "renewed_at": iso(info.renewed_at),
        "expires_at": iso(info.expires_at),
        "duration": info.duration,
    }


def lease_cell(info: LeaseInfo | None) -> str:
    """A lease in one table cell: ``owner #token HH:MM:SS`` (its expiry), or ``-``."""
    if info is None or info.owner is None:
        return "-"
    if not info.live:
        return f"{info.owner} #{info.token} expired"
    return f"{info.owner} #{info.token} {short_time(info.expires_at)[11:]}"


def all_leases(store: Any) -> dict[str, LeaseInfo]:
    """Every session's lease row, by session id (one read transaction)."""
    return {i.session_id: i for i in store.run(lambda conn: leases.list_leases(conn, _now()))}


@cli.group()
def lease() -> None:
    """Session leases: who holds a session, with which fencing token, until when."""


@lease.command("show")
@click.argument("session")
@common
@pass_options
def show(opts: Options, session: str) -> None:
    """Show SESSION's lease: holder, token, acquired, renewed, expiry."""
    check_key(session, "session")  # non-UTF-8 argv: one Error: line, not a traceback
    with open_read(opts.db) as store:
        info = store.run(lambda conn: leases.lease_info(conn, session, _now()))
    out = _json(opts)
    if opts.json:
        out.json({"session_id": session, "lease": lease_dict(info)})
        return
    if info is None:
        out.echo(f"session {session!r} was never leased")
        return
    if info.owner is None:
        out.echo(f"session {session!r}: not leased (released; last token {info.token})")
        return
    state = "live" if info.live else "EXPIRED"
    out.echo(f"session:   {session}")
    out.echo(f"holder:    {info.owner}")
    out.echo(f"token:     {info.token}")
    out.echo(f"state:     {state}")
    out.echo(f"acquired:  {short_time(info.acquired_at)} UTC")
    out.echo(f"renewed:   {short_time(info.renewed_at)} UTC")
    out.echo(f"expires:   {short_time(info.expires_at)} UTC (lease of {info.duration:g} s)")


@lease.command("release")
@click.argument("session")
@click.option("--yes", "-y", is_flag=True, help="Confirm: the holder loses the lease.")
@common
@pass_options
def release(opts: Options, session: str, yes: bool) -> None:
    """Release SESSION's lease; its holder's next write fails (LeaseLostError)."""
    check_key(session, "session")  # non-UTF-8 argv: one Error: line, not a traceback
    if not yes:
        raise click.UsageError(
            "release takes the lease from its holder, whose next write then fails: "
            "add --yes to confirm"
        )
    with open_write(opts.db) as store:

        def op(conn: Any) -> tuple[LeaseInfo | None, bool]:
            return leases.lease_info(conn, session, _now()), leases.release(conn, session)

        info, released = store.run(op, write=True)
    if info is None:
        raise UnknownSessionError(f"session {session!r} has no lease in {store!r}")
    out = _json(opts)
    if opts.json:
        out.json({"session_id": session, "released": released, "lease": lease_dict(info)})
        return
    if released:
        out.echo(f"released the lease of {info.owner!r} (token {info.token}) on {session!r}")
    else:
        out.echo(f"session {session!r} was not leased (last token {info.token})")
