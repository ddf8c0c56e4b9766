"""Operations shared by every front: SQL over a connection passed in, never committed.

Counters, retention, import and export live here; the sync store, the async store and
the framework integrations run them on connections of their own.
"""
