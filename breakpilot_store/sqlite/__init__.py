"""SQLite's hot path: the core's statements on a per-thread driver connection."""
