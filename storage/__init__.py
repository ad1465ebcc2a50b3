"""All state of a labelloop project: the DuckDB schema, its migrations, and every SQL statement."""

from storage.store import ProjectLocked, ProjectUnreadable, Store

__all__ = ["ProjectLocked", "ProjectUnreadable", "Store"]
