"""PostgreSQL: engine settings, the schema option, the advisory lock."""
