"""A process that runs (or resumes) the counting graph: ``url thread run|resume steps delay``.

Prints the final state as JSON (count and each message's type, id and content).
"""

from __future__ import annotations

import json
import sys

from breakpilot_store.langgraph import BreakpilotSaver
from tests.langgraph.graphs import counting_graph, start_count


def main() -> None:
    url, thread, mode, steps, delay = sys.argv[1:6]
    config = {"configurable": {"thread_id": thread}}
    with BreakpilotSaver.from_conn_string(url) as saver:
        graph = counting_graph(saver, int(steps), float(delay))
        result = graph.invoke(start_count() if mode == "run" else None, config)
    state = {
        "count": result["count"],
        "messages": [(type(m).__name__, m.id, m.content) for m in result["messages"]],
    }
    print(json.dumps(state), flush=True)


if __name__ == "__main__":
    main()
