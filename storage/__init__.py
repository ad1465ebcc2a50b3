"""All state of a labelloop project: the DuckDB schema, its migrations, and every SQL statement."""

from storage.store import ProjectLocked, Store

__all__ = ["ProjectLocked", "Store"]
