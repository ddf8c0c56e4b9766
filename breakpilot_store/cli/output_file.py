"""Where ``export -o`` writes: a file replaced whole, or a pipe or device written through.

A regular file is written to a temporary sibling, flushed to disk and renamed over the
target, so a reader never sees half an export and a failed export leaves the old file.
That cannot work for a FIFO, a process substitution (``-o >(gzip > a.json.gz)``, which
is ``/dev/fd/63``), ``/dev/stdout`` or another device: there is no sibling to rename (or,
as root, the rename would replace the device node with a regular file), and reading the
target first to see whether it is a database would wait for a writer that never comes.
Those are written through, as a shell redirection would. A symlink to a regular file is
followed: the file it names is replaced and the link kept.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.engine import URL

from ..engine import sqlite_path
from ..errors import CheckpointValueError

_SQLITE_MAGIC = b"SQLite format 3\x00"


def is_stream(target: Path) -> bool:
    """Whether ``target`` exists and is not a regular file (a FIFO, device or socket).

    Args:
        target: The ``--output`` path as given (symlinks are followed).
    """
    try:
        mode = os.stat(target).st_mode
    except OSError:
        return False  # missing (or unreachable: the write reports it)
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def check_output_path(target: Path, source: URL, *, force: bool) -> None:
    """Refuse to replace the database being read (or its companions), or any database.

    ``export -o agents.db`` once renamed the JSON over the database it read. The file
    itself, its ``-wal``/``-shm``/``-journal`` and the ``.lock`` sidecar are never
    replaced; another SQLite database only with ``--force``. A pipe or device is never
    read (opening a FIFO to read waits for a writer, forever).

    Raises:
        CheckpointValueError: Naming the file and why.
    """
    db = sqlite_path(source)
    if db is not None:
        companions = [db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))]
        companions.append(db.with_name(db.name + ".lock"))
        for path in companions:
            if _same_file(target, path):
                raise CheckpointValueError(
                    f"--output {target} is the database being exported ({path}); "
                    "choose another file"
                )
    if is_stream(target):
        return
    try:
        with open(target, "rb") as file:
            head = file.read(len(_SQLITE_MAGIC))
    except OSError:
        return  # missing (or unreadable: the write reports it)
    if head == _SQLITE_MAGIC and not force:
        raise CheckpointValueError(
            f"--output {target} is an SQLite database; refusing to replace it (--force replaces it)"
        )


@contextlib.contextmanager
def open_output(target: Path) -> Iterator[BinaryIO]:
    """A binary file to write the export to; on a clean exit it is the target's content.

    Args:
        target: The ``--output`` path as given.

    Yields:
        The target itself when it is a pipe or device; else a temporary sibling of the
        file it names (symlinks followed), fsynced and renamed over it on success and
        removed on failure.
    """
    if is_stream(target):
        with open(target, "wb") as file:
            yield file
        return
    real = Path(os.path.realpath(target))
    temp = real.with_name(f".{real.name}.{os.getpid()}.part")
    try:
        with temp.open("wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, real)
    finally:
        temp.unlink(missing_ok=True)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist: compare where they would be
        return os.path.abspath(a) == os.path.abspath(b)
