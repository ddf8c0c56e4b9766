"""``breakpilot-store ui``: serve the read-only web view (needs the ``[ui]`` extra)."""

from __future__ import annotations

import webbrowser
from urllib.parse import quote

import click

from ..errors import BreakpilotStoreError, CheckpointValueError
from .commands import Options, cli, common, open_read, pass_options


class MissingExtraError(BreakpilotStoreError):
    """The web view's libraries are not installed."""


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0: any free."
)
@click.option(
    "--token",
    metavar="SECRET",
    envvar="BREAKPILOT_UI_TOKEN",
    help="Secret every request must carry (required off loopback; one is made if not given).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a browser.")
@common
@pass_options
def ui(opts: Options, host: str, port: int, token: str | None, open_browser: bool) -> None:
    """Serve a read-only web view of the database: sessions, timelines, checkpoints, diffs.

    It listens on loopback unless --host says otherwise; then every request must carry
    the token (the printed link carries it). Nothing it serves writes. Ctrl-C stops it.
    """
    try:
        from ..ui.server import check_binding, listen, serve
    except ImportError as exc:
        raise MissingExtraError(
            f"the web view needs its extra: pip install 'breakpilot-store[ui]' ({exc.name} missing)"
        ) from exc
    try:
        token = check_binding(host, token)
    except CheckpointValueError as exc:  # a bad --token is a usage error (status 2)
        raise click.BadParameter(str(exc).removeprefix("--token "), param_hint="--token") from exc
    with open_read(opts.db) as store:
        sock = listen(host, port)
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{bound}/"
        if token is not None:
            url += f"?token={quote(token)}"

        def ready() -> None:
            click.echo(f"serving {url}", err=False)
            click.echo(
                "read-only view of the database; Ctrl-C to stop"
                + ("" if token is None else " (the token is in the link; keep it secret)"),
                err=True,
            )
            import sys

            sys.stdout.flush()
            if open_browser:
                webbrowser.open(url)

        try:
            serve(store, sock, token, on_ready=ready)
        except KeyboardInterrupt:
            pass
        finally:
            sock.close()
