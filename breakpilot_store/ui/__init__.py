"""``breakpilot-store ui``: a read-only web view of a live store (the ``[ui]`` extra).

Starlette serves four pages (sessions, a session's timeline, a checkpoint, a diff) and
the JSON they poll for live updates; uvicorn runs it; the chart is uPlot, vendored in
``static/vendor`` so the view works offline. Imported only by the ``ui`` command: the
core never needs these libraries.
"""

from .app import create_app
from .server import serve

__all__ = ["create_app", "serve"]
