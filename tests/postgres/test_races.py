"""Real processes racing imports and creates against deletes and prunes of one session.

Found by the campaign: ``INSERT ... ON CONFLICT DO NOTHING`` takes no lock on a row
that exists, so a delete could commit between an import's insert of the session row
and its ``SELECT ... FOR UPDATE``: the import ended in a bare ``AssertionError``
(``assert folded is not None``), and a create in ``next_seq`` unpacked ``None``. Now
the write makes the session again and goes on (it lands after the delete).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

WORKER = str(Path(__file__).with_name("race_worker.py"))
REPO = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT = 120
SECONDS = 2.0


def _race(url: str, roles: list[str]) -> list[dict[str, Any]]:
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, url, role, str(SECONDS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for role in roles
    ]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=CHILD_TIMEOUT)
            assert proc.returncode == 0, err
            results.append(json.loads(out))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


ROLES = ["import", "import", "create", "delete", "prune"]


def test_import_and_create_racing_deletes_and_prunes(pg_url: str, pg_raw: Any) -> None:
    from breakpilot_store import CheckpointStore

    CheckpointStore(pg_url).close()  # the schema, before the race
    results = _race(pg_url, ROLES)
    for role, result in zip(ROLES, results, strict=True):
        assert result["untyped"] == [], result["untyped"][0]
        assert result["calls"] > 0
        if role in ("import", "create"):
            assert result["typed"] == {}, (role, result)  # every write landed
        else:
            assert set(result["typed"]) <= {"UnknownSessionError"}, result
    # Whatever survived is consistent: the counter covers every seq held.
    rows = pg_raw("SELECT seq, origin_id FROM checkpoints WHERE session_id = 's' ORDER BY seq")
    seqs = [r[0] for r in rows]
    assert len(seqs) == len(set(seqs))
    origins = [r[1] for r in rows if r[1] is not None]
    assert len(origins) == len(set(origins))
