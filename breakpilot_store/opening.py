"""Opening a store's database: the checks and fallbacks before the first transaction.

SQLite opens a truncated file without complaint and only fails when a query reaches a
missing page, and it cannot read a WAL database in a read-only directory that has no
``-wal``/``-shm`` files. Both are settled here, once, at open.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from .engine import Durability, create_sqlite_engine, create_store_engine, sqlite_path
from .errors import CorruptDatabaseError, ReadOnlyStoreError
from .migrate import HEAD, check_known, ensure_schema, read_revision
from .translate import translate


def open_engine(
    url: URL,
    where: str,
    *,
    durability: Durability,
    busy_timeout: float,
    migrate: bool,
    readonly: bool,
    engine_options: dict[str, Any],
) -> Engine:
    """Create the store's engine and bring (or check) its schema at head.

    Raises:
        CorruptDatabaseError: The file is truncated or not a database.
        SchemaVersionError: The schema is newer than this code (or missing, without
            ``migrate``).
        DatabaseError: Any other failure, translated.
    """
    check_not_truncated(url, where)
    engine = create_store_engine(
        url,
        durability=durability,
        busy_timeout=busy_timeout,
        readonly=readonly,
        engine_options=engine_options,
    )
    try:
        try:
            ensure_schema(engine, url, migrate=migrate and not readonly)
        except SQLAlchemyError as exc:
            if not readonly_place(exc, url):
                raise translate(exc, where) from exc
            # A read-only directory or file system without -wal/-shm: SQLite cannot
            # even read the WAL file there. Nothing can be written either, so read a
            # snapshot; writes then fail in SQLite as read-only, naming the file.
            check_no_pending_wal(url, where)
            engine.dispose()
            engine = create_sqlite_engine(
                url,
                durability=durability,
                busy_timeout=busy_timeout,
                readonly=True,
                immutable=True,
            )
            _check_snapshot(engine, url, where)
    except BaseException:
        engine.dispose()
        raise
    return engine


#: SQLITE_READONLY_DIRECTORY: the directory is read-only and has no -wal/-shm files.
_READONLY_DIRECTORY = 1544


#: SQLITE_CANTOPEN: on a read-only mount (EROFS) SQLite says only this.
_CANTOPEN = 14


def readonly_place(exc: SQLAlchemyError, url: URL) -> bool:
    """Whether ``exc`` says the database's directory or file system is read-only.

    A ``chmod``-ed directory gives ``SQLITE_READONLY_DIRECTORY``; a read-only mount (a
    backup or snapshot mounted ``ro``) only ``SQLITE_CANTOPEN``, so the mount's flags
    are asked when the file exists.
    """
    code = getattr(getattr(exc, "orig", None), "sqlite_errorcode", None)
    if code == _READONLY_DIRECTORY:
        return True
    path = sqlite_path(url)
    if code is None or code & 0xFF != _CANTOPEN or path is None:
        return False
    try:
        return path.is_file() and bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_no_pending_wal(url: URL, where: str) -> None:
    """Refuse a snapshot read that would miss commits still only in the ``-wal``.

    Raises:
        ReadOnlyStoreError: The ``-wal`` has content but no ``-shm`` can be made.
    """
    path = sqlite_path(url)
    wal = path.with_name(path.name + "-wal") if path is not None else None
    try:
        pending = wal is not None and wal.stat().st_size > 0
    except OSError:
        pending = False
    if pending:
        raise ReadOnlyStoreError(
            f"database {where} is in a read-only place and its {wal.name} still holds "
            "commits (it was not closed cleanly); SQLite cannot read them without "
            "writing a -shm file: copy the database with its -wal to a writable place"
        )


def open_snapshot_if_needed(engine: Engine, url: URL, where: str, busy_timeout: float) -> Engine:
    """Return ``engine``, or a snapshot engine if the file is in a read-only place.

    For read-only tools that do not open a store (``doctor``, ``db current``). Only
    a SQLite file can be in a read-only place: any other engine is returned as it is
    (its probe of ``sqlite_master`` failed on every PostgreSQL URL).
    """
    if engine.dialect.name != "sqlite":
        return engine
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
    except SQLAlchemyError as exc:
        if engine.dialect.name != "sqlite" or not readonly_place(exc, url):
            raise translate(exc, where) from exc
        check_no_pending_wal(url, where)
        engine.dispose()
        return create_sqlite_engine(url, busy_timeout=busy_timeout, readonly=True, immutable=True)
    return engine


def _check_snapshot(engine: Engine, url: URL, where: str) -> None:
    """Check a snapshot's schema: it cannot be created or upgraded in a read-only place."""
    try:
        revision = read_revision(engine)
    except SQLAlchemyError as exc:
        raise translate(exc, where) from exc
    check_known(revision, url)
    if revision != HEAD:
        raise ReadOnlyStoreError(
            f"database {where} needs its schema created or upgraded, but its directory "
            "is read-only; nothing was written"
        )


def check_not_truncated(url: URL, where: str) -> None:
    """Refuse a SQLite file shorter than its own header says (O(1): reads 100 bytes).

    SQLite opens such a file and only fails when a query reaches a missing page, maybe
    much later. A WAL with content may legitimately hold pages the file does not have
    yet (a checkpoint cut short), and so may a hot rollback journal: the check is
    skipped then.

    Raises:
        CorruptDatabaseError: The file is truncated.
    """
    path = sqlite_path(url)
    if path is None:
        return
    try:
        size = path.stat().st_size
        for suffix in ("-wal", "-journal"):  # recovery may still supply pages
            log = path.with_name(path.name + suffix)
            if log.exists() and log.stat().st_size > 0:
                return
        if size < 100:
            return
        with open(path, "rb") as file:
            header = file.read(100)
    except OSError:
        return  # missing or unreadable: SQLite reports it, typed, on connect
    if not header.startswith(b"SQLite format 3\x00"):
        return  # SQLite itself reports "not a database"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    header_valid = header[24:28] == header[92:96] and pages > 0
    if header_valid and size < pages * page_size:
        raise CorruptDatabaseError(
            f"database {where} is truncated: its header says {pages} pages of {page_size} "
            f"bytes ({pages * page_size} bytes) but the file has {size}; restore it "
            "from a backup. Nothing was written."
        )
