"""The layers of docs/ARCHITECTURE.md: app -> engine -> storage, SQL only in storage, torch never in app, gradio
never below app."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(package: str) -> dict[str, set[str]]:
    found = {}
    for path in (ROOT / package).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("package, forbidden", [
    ("storage", {"app", "engine", "gradio", "torch"}),
    ("engine", {"app", "gradio", "duckdb"}),
    ("app", {"duckdb", "torch"}),
])
def test_imports_point_one_way(package, forbidden):
    offenders = {path: names & forbidden for path, names in _imports(package).items() if names & forbidden}
    assert not offenders


def test_sql_lives_only_in_storage():
    for package in ("app", "engine"):
        for path in (ROOT / package).rglob("*.py"):
            assert ".execute(" not in path.read_text(), path
