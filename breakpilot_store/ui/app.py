"""The web view's routes: four pages and the JSON they poll, all read-only.

Pages are rendered on the server with Jinja2 (autoescape on: ids, names and data are
hostile input) and work without JavaScript; the script in ``static/app.js`` adds the
chart, the collapsible JSON tree and the live updates, and builds every node it adds
with ``textContent``. Ids travel in query strings (``/session?id=...``): a session id
may hold ``/``, ``?`` or anything else. Every read is one read transaction of a store
opened read-only (SQLite ``mode=ro``; ``default_transaction_read_only`` on PostgreSQL).
"""

from __future__ import annotations

import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..checkpoint import split_id
from ..codec import check_key, render_json
from ..core import bounds, browse
from ..core import repository as repo
from ..core.diff import MISSING, count_kinds, diff_checkpoints
from ..engine import sqlite_path
from ..errors import BreakpilotStoreError, CheckpointTypeError, CheckpointValueError
from ..store import CheckpointStore
from .security import Gate

STATIC = Path(__file__).parent / "static"

#: Sessions per page, and checkpoints per page of a session's table.
SESSIONS_PER_PAGE = 100
ENTRIES_PER_PAGE = 50
#: Points drawn on a session's chart (the newest); more would slow the page, not inform.
CHART_POINTS = 20_000
#: Characters of one value shown in a diff cell before it is cut (the page stays light).
DIFF_VALUE_CHARS = 2_000
#: Changes listed on a diff page.
DIFF_ROWS = 1_000
#: Characters of an id or name shown in a table cell (the link keeps the whole id).
CELL_CHARS = 200

_SORTABLE = {
    "id": "session_id",
    "checkpoints": "checkpoints",
    "seq": "last_seq",
    "first": "first_checkpoint_at",
    "last": "updated_at",
    "name": "last_name",
}


def _clip(text: Any, width: int = CELL_CHARS) -> str:
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def _time(value: Any) -> str:
    if not isinstance(value, datetime):
        return "-" if value is None else str(value)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _ago(value: Any) -> str:
    if not isinstance(value, datetime):
        return "-"
    seconds = int((datetime.now(timezone.utc) - value).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{max(seconds, 0)}s ago"


def _bytes(size: Any) -> str:
    from ..cli.format import human_bytes

    return human_bytes(size)


def _value_text(value: Any) -> str:
    if value is MISSING:
        return ""
    text = render_json(value, indent=True).decode()
    if len(text) > DIFF_VALUE_CHARS:
        return text[:DIFF_VALUE_CHARS] + f"\n\u2026 cut: {_bytes(len(text.encode()))} in all"
    return text


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("breakpilot_store.ui", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.filters.update(clip=_clip, time=_time, ago=_ago, human_bytes=_bytes, value=_value_text)
    return env


def _parse_idle(text: str | None) -> Any:
    if not text:
        return None
    from ..cli.format import parse_duration

    return parse_duration(text)


class View:
    """The pages and JSON endpoints over one read-only store."""

    def __init__(self, store: CheckpointStore) -> None:
        self.store = store
        self.env = _environment()
        self.where = str(sqlite_path(store.url) or store.url.render_as_string(hide_password=True))

    # -- helpers -----------------------------------------------------------------------

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        """Render a page template with the database's name."""
        page = self.env.get_template(template).render(where=self.where, **context)
        return HTMLResponse(page, status_code=status)

    def problem(self, status: int, message: str) -> HTMLResponse:
        """An error page (404 for what is not there, 400 for a bad request)."""
        return self.render("problem.html", status=status, message=message)

    def sqlite3_command(self, session_id: str, seq: int) -> str:
        """The exact shell command that shows this checkpoint (``sqlite3`` or ``psql``)."""
        sid = session_id.replace("'", "''")
        sql = (
            "SELECT id, name, created_at, data, metadata FROM checkpoint_overview "
            f"WHERE session_id = '{sid}' AND seq = {seq}"
        )
        # In double quotes when nothing in it is special there (it pastes readably into
        # bash, zsh and fish); else quoted by shlex, which is always exact.
        quoted = f'"{sql}"' if not set(sql) & set('"$`\\!') else shlex.quote(sql)
        path = sqlite_path(self.store.url)
        if path is not None:
            return f"sqlite3 -readonly -line {shlex.quote(str(path))} {quoted}"
        url = self.store.url.set(drivername="postgresql")
        target = url.render_as_string(hide_password=True)
        return f"psql {shlex.quote(target)} -x -c {quoted}"

    def _session_query(self, request: Request) -> dict[str, Any]:
        q = request.query_params
        sort = q.get("sort", "id")
        # A page past any offset the database can bind is just past the end (a
        # 30-digit page raised OverflowError: a 500 from a read-only view).
        page = min(max(_int(q.get("page")) or 1, 1), MAX_PAGE)
        return {
            "prefix": q.get("prefix") or "",
            "idle": q.get("idle") or "",
            "sort": sort if sort in _SORTABLE else "id",
            "order": "desc" if q.get("order") == "desc" else "asc",
            "page": page,
        }

    def _sessions(self, query: dict[str, Any]) -> browse.SessionPage:
        idle = _parse_idle(query["idle"])
        # The store's own bounds, so the page means what list_sessions means: an idle
        # time reaching before year 1 matches nothing (it overflowed: a 500), a prefix
        # longer than any id matches nothing (SQLite refused the LIKE pattern: a 503).
        now = datetime.now(timezone.utc)
        idle_before = bounds.idle_cutoff(now, idle) if idle is not None else None
        prefix = bounds.check_prefix(query["prefix"])
        return self.store.run(
            lambda conn: browse.session_page(
                conn,
                prefix=prefix,
                idle_before=idle_before,
                sort=_SORTABLE[query["sort"]],
                descending=query["order"] == "desc",
                limit=SESSIONS_PER_PAGE,
                offset=(query["page"] - 1) * SESSIONS_PER_PAGE,
            )
        )

    # -- pages -------------------------------------------------------------------------

    def sessions_page(self, request: Request) -> Response:
        """``/``: the sessions, filtered, sorted and paged."""
        query = self._session_query(request)
        try:
            page = self._sessions(query)
        except ValueError as exc:  # a bad --idle duration
            return self.problem(400, str(exc))
        extra = [c for c in page.columns if c not in browse.BASE_SESSION_COLUMNS]
        pages = max((page.total + SESSIONS_PER_PAGE - 1) // SESSIONS_PER_PAGE, 1)
        return self.render(
            "sessions.html", page=page, extra=extra, query=query, pages=pages, sortable=_SORTABLE
        )

    def session_page(self, request: Request) -> Response:
        """``/session?id=``: one session's facts, chart, gaps and checkpoints."""
        session_id = request.query_params.get("id", "")
        before = _int(request.query_params.get("before"))
        if _session(session_id) is None:
            return self.problem(404, f"no session {session_id!r}")

        def read(conn: Any) -> Any:
            infos = repo.list_sessions(conn, session_id=session_id)
            if not infos:
                return None
            info = infos[0]
            rows = browse.entries(conn, session_id, before_seq=before, limit=ENTRIES_PER_PAGE)
            return info, rows, browse.gaps(conn, session_id, info.last_seq)

        found = self.store.run(read)
        if found is None:
            return self.problem(404, f"no session {session_id!r}")
        info, rows, gaps = found
        older = rows[-1].seq if len(rows) == ENTRIES_PER_PAGE else None
        removed = sum(b - a + 1 for a, b in gaps)
        return self.render(
            "session.html",
            info=info,
            rows=rows,
            gaps=gaps,
            removed=removed,
            before=before,
            older=older,
            chart_points=CHART_POINTS,
        )

    def checkpoint_page(self, request: Request) -> Response:
        """``/checkpoint?id=``: one checkpoint (its tree is fetched by the page)."""
        checkpoint_id = request.query_params.get("id", "")
        parts = split_id(checkpoint_id)
        if parts is None:
            return self.problem(400, f"{checkpoint_id!r} is not a checkpoint id (SESSION:SEQ)")
        session_id, seq = parts
        if _session(session_id) is None:
            return self.problem(404, f"no checkpoint {checkpoint_id!r}")

        def read(conn: Any) -> Any:
            row = conn.execute(
                browse.select_one(session_id, seq)  # size and neighbours, not the data
            ).first()
            if row is None:
                return None
            return row, browse.neighbours(conn, session_id, seq)

        found = self.store.run(read)
        if found is None:
            return self.problem(404, f"no checkpoint {checkpoint_id!r}")
        row, (prev_seq, next_seq) = found
        return self.render(
            "checkpoint.html",
            checkpoint_id=checkpoint_id,
            session_id=session_id,
            seq=seq,
            name=row.name,
            created_at=row.created_at,
            size=row.size,
            origin_id=row.origin_id,
            prev_seq=prev_seq,
            next_seq=next_seq,
            command=self.sqlite3_command(session_id, seq),
        )

    def diff_page(self, request: Request) -> Response:
        """``/diff?a=&b=``: what changed from checkpoint ``a`` to ``b``."""
        a_id = request.query_params.get("a", "")
        b_id = request.query_params.get("b", "")
        found = []
        for cid in (a_id, b_id):
            cp = self._checkpoint(cid)
            if cp is None:
                return self.problem(404, f"no checkpoint {cid!r} (ids are SESSION:SEQ)")
            found.append(cp)
        a, b = found
        changes = diff_checkpoints(a, b)
        return self.render(
            "diff.html",
            a=a,
            b=b,
            changes=changes[:DIFF_ROWS],
            more=max(len(changes) - DIFF_ROWS, 0),
            counts=count_kinds(changes),
            missing=MISSING,
        )

    # -- JSON the pages poll -----------------------------------------------------------

    def sessions_json(self, request: Request) -> Response:
        """``/api/sessions``: the sessions page's rows, for live counts."""
        query = self._session_query(request)
        try:
            page = self._sessions(query)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        rows = [{k: _iso(v) for k, v in row.items()} for row in page.rows]
        return _json({"columns": page.columns, "rows": rows, "total": page.total})

    def entries_json(self, request: Request) -> Response:
        """``/api/entries?id=&after=``: a session's counts, gaps and new checkpoints."""
        session_id = request.query_params.get("id", "")
        after = _int(request.query_params.get("after"))
        known_held = _int(request.query_params.get("held"))
        if _session(session_id) is None:
            return _json({"exists": False, "entries": []})

        def read(conn: Any) -> Any:
            state = browse.session_state(conn, session_id)
            if state is None:
                return None
            if state[0] == after and state[1] == known_held:
                return state, None, None  # nothing new: no scan for gaps, every second
            new = browse.entries(conn, session_id, after_seq=after, limit=500)
            return state, new, browse.gaps(conn, session_id, state[0])

        found = self.store.run(read)
        if found is None:
            return _json({"exists": False, "entries": []})
        (last_seq, held, _created), new, gaps = found
        if new is None:
            return _json({"exists": True, "unchanged": True, "last_seq": last_seq, "held": held})
        return _json(
            {
                "exists": True,
                "last_seq": last_seq,
                "held": held,
                "gaps": gaps,
                "entries": [_entry(e) for e in new],
            }
        )

    def timeline_json(self, request: Request) -> Response:
        """``/api/timeline?id=``: ``[time, seq, name]`` of the chart's points."""
        session_id = request.query_params.get("id", "")
        points = []
        if _session(session_id) is not None:
            points = self.store.run(lambda conn: browse.timeline(conn, session_id, CHART_POINTS))
        return _json(
            {
                "points": [[t.timestamp(), seq, name] for seq, name, t in points],
                "limit": CHART_POINTS,
            }
        )

    def checkpoint_json(self, request: Request) -> Response:
        """``/api/checkpoint?id=``: one checkpoint in the export format."""
        checkpoint_id = request.query_params.get("id", "")
        cp = self._checkpoint(checkpoint_id)
        if cp is None:
            return _json({"error": f"no checkpoint {checkpoint_id!r}"}, 404)
        return _json(cp.to_dict())

    def _checkpoint(self, checkpoint_id: str) -> Any:
        """The checkpoint of an id from a URL; ``None`` if there is none, or cannot be."""
        parts = split_id(checkpoint_id)
        if parts is None or _session(parts[0]) is None:
            return None
        return self.store.get(checkpoint_id)


#: Highest page number asked for (its offset still fits a 64-bit integer).
MAX_PAGE = 2**53

_INT64 = 2**63 - 1


def _int(text: str | None) -> int | None:
    """An integer query parameter, clamped to 64 bits (what the database can bind).

    A seq beyond every seq (``before=10**30``) means the same as the largest one; bound
    as it was, SQLite raised ``OverflowError`` (a 500 page).
    """
    try:
        value = int(text) if text not in (None, "") else None
    except ValueError:
        return None
    return None if value is None else max(min(value, _INT64), -_INT64 - 1)


def _entry(e: browse.Entry) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "name": e.name,
        "created_at": e.created_at.isoformat(),
        "time": _time(e.created_at),
        "size": e.size,
        "preview": e.preview,
    }


def _session(value: str) -> str | None:
    """A session id from a URL, or ``None`` if no session can have it.

    NUL, too long, a lone surrogate: such ids are no session's, and PostgreSQL refuses
    a NUL (a 503 before).
    """
    try:
        return check_key(value, "session id")
    except (CheckpointValueError, CheckpointTypeError):
        return None


def _json(value: Any, status: int = 200) -> Response:
    # orjson: datetimes as ISO-8601, non-ASCII kept; ints past 2**53 stay exact in the
    # text (the browser's JSON.parse rounds them, which only the tree view shows).
    # "<" only occurs inside strings: escaped, the JSON stays the same and no browser
    # that sniffs it as HTML finds a tag in it.
    body = render_json(value).replace(b"<", b"\\u003c")
    return Response(body, status_code=status, media_type="application/json")


def create_app(store: CheckpointStore, token: str | None = None) -> Any:
    """Build the ASGI application over ``store`` (opened read-only by the caller).

    Args:
        store: The store to show; the app never writes to it.
        token: A secret every request must carry (see :mod:`.security`), or ``None``
            for a view that answers only to loopback ``Host`` names.
    """
    view = View(store)

    def handler(method: Any) -> Any:
        def endpoint(request: Request) -> Response:
            try:
                return method(request)
            except BreakpilotStoreError as exc:
                # A refused argument is the request's fault (400); anything else is the
                # database's (503).
                status = (
                    400 if isinstance(exc, (CheckpointValueError, CheckpointTypeError)) else 503
                )
                if request.url.path.startswith("/api/"):
                    return _json({"error": str(exc)}, status)
                return view.problem(status, str(exc))

        return endpoint

    routes = [
        Route("/", handler(view.sessions_page)),
        Route("/session", handler(view.session_page)),
        Route("/checkpoint", handler(view.checkpoint_page)),
        Route("/diff", handler(view.diff_page)),
        Route("/api/sessions", handler(view.sessions_json)),
        Route("/api/entries", handler(view.entries_json)),
        Route("/api/timeline", handler(view.timeline_json)),
        Route("/api/checkpoint", handler(view.checkpoint_json)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes)
    return Gate(app, token)
