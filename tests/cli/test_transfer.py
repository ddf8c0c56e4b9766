"""export, import and copy: exact bytes, streaming, all-or-nothing, verification."""

from __future__ import annotations

import io
import json
import sqlite3
import tracemalloc
import types

import breakpilot_store.cli.commands as cli_module
from breakpilot_store import CheckpointStore
from breakpilot_store.checkpoint import Checkpoint

from .conftest import one_line_error, raw_rows


def _export_json(path, session):
    with CheckpointStore(path, readonly=True, migrate=False) as store:
        return store.export_json(session)


def test_export_to_stdout_is_the_seed_format_byte_for_byte(run, db):
    result = run("--db", db, "export", "alpha")
    assert result.exit_code == 0, result.output
    assert result.stdout == _export_json(db, "alpha")
    assert [Checkpoint.from_dict(d).id for d in json.loads(result.stdout)] == [
        f"alpha:{i}" for i in range(1, 6)
    ]


def test_export_to_file_and_import_round_trip(run, db, tmp_path):
    out = tmp_path / "alpha.json"
    result = run("--db", db, "export", "alpha", "-o", out)
    assert result.exit_code == 0, result.output
    assert "exported 5 checkpoints of session 'alpha'" in result.stderr
    assert out.read_text(encoding="utf-8") == _export_json(db, "alpha")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []

    target = tmp_path / "target.db"
    result = run("--db", target, "import", "alpha", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "imported 5 checkpoints into session 'alpha'"
    assert raw_rows(target, "SELECT seq, name, data FROM checkpoints ORDER BY seq") == raw_rows(
        db, "SELECT seq, name, data FROM checkpoints WHERE session_id = 'alpha' ORDER BY seq"
    )
    assert _export_json(target, "alpha") == out.read_text(encoding="utf-8")

    again = run("--db", target, "--json", "import", "alpha", out)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == {"session_id": "alpha", "entries": 5, "written": 0}
    assert raw_rows(target, "SELECT count(*) FROM checkpoints") == [(5,)]


def test_import_into_another_session_keeps_origin_ids(run, db, tmp_path):
    out = tmp_path / "beta.json"
    run("--db", db, "export", "beta", "-o", out)
    result = run("--db", db, "import", "beta-copy", out)
    assert result.exit_code == 0, result.output
    rows = raw_rows(
        db, "SELECT seq, origin_id FROM checkpoints WHERE session_id = 'beta-copy' ORDER BY seq"
    )
    assert rows == [(1, "beta:1"), (2, "beta:2")]


def test_import_from_stdin(run, db, tmp_path):
    text = _export_json(db, "beta")
    result = run("--db", tmp_path / "t.db", "import", "beta", "-", input=text.encode())
    assert result.exit_code == 0, result.output
    assert raw_rows(tmp_path / "t.db", "SELECT count(*) FROM checkpoints") == [(2,)]


def _doc(data):
    entry = {"id": "s:1", "name": "n", "timestamp": "2026-01-01T00:00:00+00:00", "data": data}
    return json.dumps([entry])


def test_import_keeps_floats_and_integers_exactly(run, tmp_path):
    data = {"f": 0.1, "e": 1e-7, "n": -3, "big": 1e308, "z": -0.0, "i": 2**63}
    path = tmp_path / "in.json"
    path.write_text(_doc(data))
    result = run("--db", tmp_path / "t.db", "import", "s", path)
    assert result.exit_code == 0, result.output
    (stored,) = raw_rows(tmp_path / "t.db", "SELECT data FROM checkpoints")[0]
    got = json.loads(stored)
    assert got == data
    assert [type(got[k]) for k in data] == [float, float, int, float, float, int]
    assert str(got["z"]) == "-0.0"


def test_import_keeps_integers_beyond_64_bits_exactly(run, tmp_path):
    big = {"big": 12345678901234567890, "neg": -(2**63), "f": 2.5}
    path = tmp_path / "in.json"
    path.write_text(_doc(big))
    result = run("--db", tmp_path / "t.db", "import", "s", path)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "imported 1 checkpoint into session 's'"
    (data,) = raw_rows(tmp_path / "t.db", "SELECT data FROM checkpoints")[0]
    assert json.loads(data) == big
    assert raw_rows(tmp_path / "t.db", "SELECT count(*) FROM checkpoints") == [(1,)]


def _big_export(path, n):
    blob = "x" * 1000
    with path.open("w") as f:
        f.write("[")
        for i in range(1, n + 1):
            entry = {
                "id": f"big:{i}",
                "name": "step",
                "timestamp": "2026-01-01T00:00:00+00:00",
                "data": {"i": i, "blob": blob},
                "metadata": {},
            }
            f.write(("," if i > 1 else "") + json.dumps(entry))
        f.write("]")


def _peaks(run, tmp_path, n):
    """Peak Python memory of importing, then exporting, an n-checkpoint session."""
    src = tmp_path / f"big{n}.json"
    _big_export(src, n)
    target = tmp_path / f"big{n}.db"
    CheckpointStore(target).close()  # the schema (and alembic) before measuring
    run("--db", target, "sessions")  # and the CLI's own imports
    out = tmp_path / f"out{n}.json"
    tracemalloc.start()
    try:
        result = run("--db", target, "import", "big", src)
        _, import_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        exported = run("--db", target, "export", "big", "-o", out)
        _, export_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.output
    assert exported.exit_code == 0, exported.output
    assert raw_rows(target, "SELECT count(*) FROM checkpoints") == [(n,)]
    assert len(json.loads(out.read_text())) == n
    return import_peak, export_peak, src.stat().st_size


def test_import_and_export_memory_does_not_grow_with_the_session(run, tmp_path):
    # Both sizes well past what the import holds at once (a few batches of 1,000 entries
    # in its pipeline, and a piece of the file), so that only growth would show. The
    # pipeline holds up to four batches when the writer lags: at 6,000 entries a run
    # could end before it ever did (4.2 MB against 7.0 MB at 24,000, one CI run in
    # many), so the small size too is long enough to reach that steady state.
    small_import, small_export, _ = _peaks(run, tmp_path, 10000)
    big_import, big_export, big_size = _peaks(run, tmp_path, 30000)  # a ~33 MB document
    # Three times the checkpoints, (about) the same memory: nothing holds the session.
    assert big_import < small_import * 1.5, (small_import, big_import)
    assert big_export < small_export * 1.5, (small_export, big_export)
    assert big_import < big_size / 1.5, (big_import, big_size)
    assert big_export < big_size / 2, (big_export, big_size)


def test_export_unknown_session_writes_no_file(run, db, tmp_path):
    out = tmp_path / "x.json"
    result = run("--db", db, "export", "nobody", "-o", out)
    assert result.exit_code == 1
    assert "no session 'nobody'" in one_line_error(result)
    assert not out.exists()


def test_export_into_missing_directory_is_a_one_line_error(run, db, tmp_path):
    result = run("--db", db, "export", "alpha", "-o", tmp_path / "no" / "such" / "x.json")
    assert result.exit_code == 1
    one_line_error(result)


def test_import_invalid_json_writes_nothing(run, db, tmp_path):
    good = json.loads(_export_json(db, "beta"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(good)[:-10])  # truncated mid-document
    before = raw_rows(db, "SELECT * FROM checkpoints ORDER BY session_id, seq")
    result = run("--db", db, "import", "fresh", bad)
    assert result.exit_code == 1
    assert "is not valid JSON" in one_line_error(result)
    assert raw_rows(db, "SELECT * FROM checkpoints ORDER BY session_id, seq") == before
    assert raw_rows(db, "SELECT count(*) FROM sessions WHERE session_id = 'fresh'") == [(0,)]


def test_import_rejects_a_document_that_is_not_an_array(run, db, tmp_path):
    doc = tmp_path / "obj.json"
    doc.write_text('  {"id": "a:1"}')
    result = run("--db", db, "import", "x", doc)
    assert result.exit_code == 1
    assert "must be a JSON array" in one_line_error(result)
    empty = tmp_path / "empty.json"
    empty.write_text("")
    result = run("--db", db, "import", "x", empty)
    assert result.exit_code == 1
    assert "not valid JSON" in one_line_error(result)


def test_import_malformed_entry_names_it_and_writes_nothing(run, db, tmp_path):
    doc = json.loads(_export_json(db, "beta"))
    del doc[1]["timestamp"]
    path = tmp_path / "e.json"
    path.write_text(json.dumps(doc))
    result = run("--db", db, "import", "beta2", path)
    assert result.exit_code == 1
    assert "entry 1" in one_line_error(result)
    assert raw_rows(db, "SELECT count(*) FROM checkpoints WHERE session_id = 'beta2'") == [(0,)]


def test_import_conflict_is_a_one_line_error(run, db, tmp_path):
    doc = json.loads(_export_json(db, "beta"))
    doc[0]["data"] = {"x": "changed"}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    result = run("--db", db, "import", "beta", path)
    assert result.exit_code == 1
    assert "differs" in one_line_error(result)
    assert raw_rows(db, "SELECT data FROM checkpoints WHERE session_id='beta' AND seq=1") == [
        ('{"x":1}',)
    ]


def test_import_missing_file_is_a_usage_error(run, db, tmp_path):
    result = run("--db", db, "import", "x", tmp_path / "missing.json")
    assert result.exit_code == 2


def test_copy_streams_every_session_and_verifies(run, db, tmp_path):
    target = tmp_path / "copy.db"
    result = run("copy", "--from", db, "--to", target)
    assert result.exit_code == 0, result.output
    assert "copied 3 sessions (8 checkpoints)" in result.stdout
    cols = "session_id, seq, name, created_at, data, metadata"
    query = f"SELECT {cols} FROM checkpoints ORDER BY session_id, seq"
    assert raw_rows(target, query) == raw_rows(db, query)
    again = run("--db", db, "--json", "copy", "--to", target)  # --from defaults to --db
    assert again.exit_code == 0, again.output
    got = json.loads(again.stdout)
    assert [(s["session_id"], s["checkpoints"], s["written"]) for s in got["sessions"]] == [
        ("alpha", 5, 0),
        ("beta", 2, 0),
        ("gamma-long", 1, 0),
    ]


def test_copy_prefix_and_sqlite_urls(run, db, tmp_path):
    target = tmp_path / "p.db"
    result = run(
        "copy", "--from", f"sqlite:///{db}", "--to", f"sqlite:///{target}", "--prefix", "b"
    )
    assert result.exit_code == 0, result.output
    assert raw_rows(target, "SELECT DISTINCT session_id FROM checkpoints") == [("beta",)]


def test_copy_refuses_the_same_database(run, db):
    result = run("copy", "--from", db, "--to", f"sqlite:///{db}")
    assert result.exit_code == 1
    assert "same database" in one_line_error(result)


def test_copy_conflict_fails_and_leaves_target_session_unchanged(run, db, tmp_path):
    target = tmp_path / "t.db"
    with CheckpointStore(target) as store:
        store.create("beta", "other", {"y": 1})
    result = run("copy", "--from", db, "--to", target)
    assert result.exit_code == 1
    assert "differs" in one_line_error(result)
    assert raw_rows(target, "SELECT name FROM checkpoints WHERE session_id = 'beta'") == [
        ("other",)
    ]


def test_copy_needs_to_and_an_existing_source(run, db, tmp_path):
    assert run("copy", "--from", db).exit_code == 2
    result = run("copy", "--from", tmp_path / "none.db", "--to", tmp_path / "t.db")
    assert result.exit_code == 1
    assert "no database" in one_line_error(result)


def test_export_does_not_write_to_the_source(run, db):
    before = sqlite3.connect(db).execute("PRAGMA data_version").fetchone()
    assert before
    result = run("--db", db, "export", "alpha")
    assert result.exit_code == 0
    assert raw_rows(db, "SELECT count(*) FROM checkpoints") == [(8,)]


def test_copy_keeps_each_sessions_numbering(run, db, tmp_path):
    # The newest checkpoints of 'alpha' are gone at the source; its counter is not.
    with CheckpointStore(db) as store:
        store.clear("alpha")
        store.create("alpha", "after-clear", {})
        store.clear("alpha")
    target = tmp_path / "numbered.db"
    result = run("copy", "--from", db, "--to", target)
    assert result.exit_code == 0, result.output
    query = "SELECT session_id, last_seq FROM session_overview ORDER BY session_id"
    assert raw_rows(target, query) == raw_rows(db, query)
    with CheckpointStore(target) as store:
        assert store.create("alpha", "next", {}).id == "alpha:7"


def _many(path, n):
    with CheckpointStore(path) as store:
        for i in range(n):
            store.create("many", f"step{i % 3}", {"i": i, "text": "Größe ✓ " * (i % 5)})


def test_export_of_several_batches_is_byte_for_byte_on_every_output(run, tmp_path, monkeypatch):
    db = tmp_path / "many.db"
    _many(db, 600)  # three of the store's 256-row batches
    expected = _export_json(db, "many")
    assert len(json.loads(expected)) == 600
    # stdout as the UTF-8 pieces themselves (CliRunner's stdout has a binary buffer)
    result = run("--db", db, "export", "many")
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == expected.encode("utf-8")
    # a file, with the count the progress hook adds up
    out = tmp_path / "many.json"
    result = run("--db", db, "export", "many", "-o", out)
    assert result.exit_code == 0, result.output
    assert "exported 600 checkpoints of session 'many'" in result.stderr
    assert out.read_bytes() == expected.encode("utf-8")
    # a text-only stdout (no .buffer) gets the decoded chunks
    text_only = io.StringIO()
    monkeypatch.setattr(cli_module, "sys", types.SimpleNamespace(stdout=text_only))
    result = run("--db", db, "export", "many")
    assert result.exit_code == 0, result.output
    assert text_only.getvalue() == expected
