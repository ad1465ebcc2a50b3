"""All state of a labelloop project: the DuckDB schema, its migrations, and every SQL statement."""

from storage.store import MULTI_LABEL, SINGLE_LABEL, ProjectLocked, ProjectUnreadable, Store

__all__ = ["MULTI_LABEL", "SINGLE_LABEL", "ProjectLocked", "ProjectUnreadable", "Store"]
