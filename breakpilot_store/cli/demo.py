"""``breakpilot-store demo``: the main job in one command.

A small simulated agent (this module run as ``python -m breakpilot_store.cli.demo``, a real
child process) works through a task, writing a named checkpoint after each step with
the seed's ``CheckpointManager`` API. Part-way through a step the demo kills it with
SIGKILL: no cleanup, no ``finally``, whatever it had not checkpointed is lost. A new
agent process then starts, asks ``get_latest()`` where the last one got to, resumes
there and finishes. The agent reports what it does as JSON lines on stdout, which the
demo relays to the operator.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import BreakpilotStoreError, CheckpointValueError
from ..manager import CheckpointManager

#: What the simulated agent does, one step per entry (it cycles if asked for more).
TASKS = (
    "read the brief",
    "plan the work",
    "search for sources",
    "read source A",
    "read source B",
    "compare the findings",
    "draft the answer",
    "check the draft",
    "polish the answer",
    "hand it in",
)


class DemoError(BreakpilotStoreError):
    """The demo's agent did not behave as the demo expects (its stderr is quoted)."""


# -- the agent (child process) ----------------------------------------------------------


def _emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def _state(step: int, steps: int, findings: list[str]) -> dict[str, Any]:
    task = TASKS[(step - 1) % len(TASKS)] if step else None
    return {"step": step, "steps": steps, "task": task, "findings": findings}


def agent(db: str, session: str, steps: int, stall_at: int | None, delay: float) -> int:
    """Run the simulated agent: resume from ``get_latest()`` or start, then work.

    Args:
        db: The SQLite file.
        session: The session to write to.
        steps: How many steps the task has.
        stall_at: Hang while working on this step (the demo SIGKILLs it there).
        delay: Seconds of "work" per step.

    Returns:
        The process exit status.
    """
    pid = os.getpid()
    with CheckpointManager(session, compress_after=1000, max_checkpoints=1000, store=db) as mgr:
        latest = mgr.get_latest()
        if latest is None:
            state = _state(0, steps, [])
            cp = mgr.create("task_started", state, {"pid": pid})
            _emit("checkpoint", id=cp.id, name=cp.name, step=0, pid=pid)
        else:
            state = dict(latest.data)
            _emit("resumed", id=latest.id, name=latest.name, step=state["step"], pid=pid)
            cp = mgr.create("resumed", state, {"pid": pid, "resumed_from": latest.id})
            _emit("checkpoint", id=cp.id, name=cp.name, step=state["step"], pid=pid)
        for step in range(state["step"] + 1, steps + 1):
            _emit("working", step=step, task=TASKS[(step - 1) % len(TASKS)], pid=pid)
            if step == stall_at:
                sys.stdin.read()  # "busy" until killed (or until the demo goes away)
                return 3
            time.sleep(delay)
            findings = [*state["findings"], f"finding {step}"]
            state = _state(step, steps, findings)
            cp = mgr.create("step_done", state, {"pid": pid})
            _emit("checkpoint", id=cp.id, name=cp.name, step=step, pid=pid)
        cp = mgr.create("task_finished", {**state, "answer": "42"}, {"pid": pid})
        _emit("checkpoint", id=cp.id, name=cp.name, step=steps, pid=pid)
    _emit("finished", pid=pid)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the agent process (``python -m breakpilot_store.cli.demo``)."""
    parser = argparse.ArgumentParser(prog="python -m breakpilot_store.cli.demo")
    parser.add_argument("--db", required=True)
    parser.add_argument("--session", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--stall-at", type=int)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    return agent(args.db, args.session, args.steps, args.stall_at, args.delay)


# -- the demo (parent process) ----------------------------------------------------------


def _spawn(argv: list[str], errors: Any) -> subprocess.Popen[str]:
    env = dict(os.environ)
    # Find this very package in the child even when it is not installed.
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
        env=env,
    )


def _describe(event: dict[str, Any], steps: int) -> str:
    kind = event["event"]
    if kind == "checkpoint":
        return f"checkpoint {event['id']:<12} {event['name']} (step {event['step']}/{steps})"
    if kind == "working":
        return f"working on step {event['step']}/{steps}: {event['task']} ..."
    if kind == "resumed":
        return (
            f"get_latest() -> {event['id']} {event['name']} (step {event['step']}/{steps}): "
            f"resuming at step {event['step'] + 1}"
        )
    return "finished"


def run_agent(
    db: Path,
    session: str,
    steps: int,
    delay: float,
    say: Callable[[str], None],
    kill_at: int | None = None,
) -> tuple[int, int]:
    """Run one agent process, relaying its events; SIGKILL it when it works on ``kill_at``.

    Returns:
        ``(pid, exit status)``; the status is ``-SIGKILL`` for a killed agent.

    Raises:
        DemoError: The agent failed, or was not where it should be when killed.
    """
    argv = [sys.executable, "-m", "breakpilot_store.cli.demo", "--db", str(db)]
    argv += ["--session", session, "--steps", str(steps), "--delay", str(delay)]
    if kill_at is not None:
        argv += ["--stall-at", str(kill_at)]
    with tempfile.TemporaryFile("w+") as errors:
        proc = _spawn(argv, errors)
        killed = False
        if proc.stdout is None:  # stdout=PIPE: never; a guard must survive python -O
            raise DemoError("the agent process has no output pipe")
        try:
            for line in proc.stdout:
                event = json.loads(line)
                say(f"  [agent pid {proc.pid}] {_describe(event, steps)}")
                if kill_at is not None and event["event"] == "working" and event["step"] == kill_at:
                    os.kill(proc.pid, signal.SIGKILL)
                    killed = True
                    break
        except BaseException:
            # The operator went away (a closed pipe, Ctrl-C): no agent outlives the demo.
            proc.kill()
            proc.wait()
            raise
        proc.stdout.close()
        if proc.stdin is not None:
            proc.stdin.close()
        status = proc.wait()
        errors.seek(0)
        stderr = errors.read().strip().splitlines()
    expected = -signal.SIGKILL if kill_at is not None else 0
    if status != expected or (kill_at is not None and not killed):
        detail = stderr[-1] if stderr else "no output on stderr"
        raise DemoError(f"the demo agent (pid {proc.pid}) exited with status {status}: {detail}")
    return proc.pid, status


def next_session(store: Any) -> str:
    """Return the first unused ``demo-N`` session id."""
    n = 1
    while store.session_info(f"demo-{n}") is not None:
        n += 1
    return f"demo-{n}"


def sqlite3_command(path: str, session: str) -> str:
    """The exact ``sqlite3`` shell command that shows the demo's session.

    The SQL goes in double quotes and uses ``->> 'label'`` (no ``$``), so it pastes
    unchanged into bash, zsh and fish.
    """
    sql = (
        "SELECT seq, name, created_at, data ->> 'step' AS step, "
        "data ->> 'task' AS task, metadata ->> 'pid' AS pid "
        f"FROM checkpoints WHERE session_id = '{session}' ORDER BY seq"
    )
    return f'sqlite3 -readonly -header -column {shlex.quote(path)} "{sql}"'


def run_demo(
    target: str,
    output: Any,
    steps: int,
    kill_after: int,
    delay: float,
    open_read: Callable[[Any], Any],
) -> dict[str, Any]:
    """Run the whole demo against the SQLite file ``target`` and print it.

    Args:
        target: A SQLite path (or ``sqlite:///`` URL) for the demo's store.
        output: The CLI's :class:`~breakpilot_store.cli.format.Output`.
        steps: Steps of the simulated task.
        kill_after: The agent is killed while working on the step after this one.
        delay: Seconds of simulated work per step.
        open_read: The CLI's read-only opener, to show the session as the CLI does.

    Returns:
        What happened (also printed as JSON with ``--json``).
    """
    from ..engine import resolve_url, sqlite_path
    from ..store import CheckpointStore

    path = sqlite_path(resolve_url(target))
    if path is None:
        raise CheckpointValueError(f"the demo needs a SQLite file, not {target!r}")
    shown = target if "://" not in target else str(path)
    say = output.note if output.json_mode else output.echo
    with CheckpointStore(path) as store:  # creates the file and its schema
        session = next_session(store)
    try:
        say(f"Demo store {shown}, session {session}: an agent with {steps} steps.")
        say("Run 1: the agent starts from scratch.")
        pid1, status1 = run_agent(path, session, steps, delay, say, kill_at=kill_after + 1)
        say(
            f"  [demo] SIGKILL pid {pid1} mid-step (exit status {status1}); "
            "its unsaved work is lost."
        )
        say("Run 2: a new agent process restarts and asks the store where to resume.")
        pid2, _ = run_agent(path, session, steps, delay, say)
    except BrokenPipeError:
        # `demo | head -3`: nobody reads the rest. Leave no half-finished demo session.
        with CheckpointStore(path) as store:
            store.delete_session(session)
        raise
    command = sqlite3_command(shown, session)
    with open_read(path) as store:
        cps = store.list_checkpoints(session, newest_first=True)
    result = {
        "database": str(path),
        "session_id": session,
        "killed_pid": pid1,
        "resumed_pid": pid2,
        "checkpoints": [cp.to_dict() for cp in cps],
        "sqlite3": command,
    }
    if output.json_mode:
        output.json(result)
        return result
    say("")
    listing = f"breakpilot-store --db {shlex.quote(shown)} list {session}"
    say(f"The session as the CLI sees it ({listing}):")
    output.checkpoints(cps)
    say("Look inside with sqlite3:")
    say(f"  {command}")
    return result


if __name__ == "__main__":
    sys.exit(main())
