"""Process memory readings and the machine line for the report (Linux /proc)."""

from __future__ import annotations

import os
import platform
import sqlite3
from importlib import metadata


def _status_kib(field: str) -> int:
    """A ``kB`` field of /proc/self/status (0 where /proc is missing)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib() -> int:
    """Current resident set size."""
    return _status_kib("VmRSS")


def hwm_kib() -> int:
    """Peak resident set size since start or since the last ``reset_peak``."""
    return _status_kib("VmHWM")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or the platform's guess)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version_of(dist: str) -> str:
    """Installed version of a distribution, or ``"not installed"``."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_line() -> str:
    """CPU, cores, Python, SQLite, SQLAlchemy (and the comparators' versions)."""
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; SQLite {sqlite3.sqlite_version}; "
        f"SQLAlchemy {version_of('SQLAlchemy')}; "
        f"langgraph-checkpoint-sqlite {version_of('langgraph-checkpoint-sqlite')}; "
        f"breakpilot-store {version_of('breakpilot-store')}"
    )
