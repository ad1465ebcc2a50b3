"""The layers of docs/ARCHITECTURE.md: app -> engine -> storage, SQL only in storage, torch never in app, gradio
never below app; engine's subpackages in one order; tests and benchmarks use no private name of the code they
test."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# engine's subpackages, lowest first: each may import those before it (and engine.errors, engine.sources), never one
# after it. The learner (learning/) knows no project; a view reads the project; labels are written through the views
# they refresh; the dataset goes in and out with labels (folder names, Label Studio); the session opens it all.
ENGINE_ORDER = ["files", "jobs", "learning", "project", "views", "labels", "dataset", "demo", "session"]
ENGINE_BASE = {"errors", "sources"}  # modules at engine's top that every subpackage may use; they import no engine


def _python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, by its full dotted name (imports inside functions included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from engine import x`
    return names


def _imports(package: str) -> dict[str, set[str]]:
    return {str(path.relative_to(ROOT)): {name.split(".")[0] for name in _imported_modules(path)}
            for path in _python_files(package)}


@pytest.mark.parametrize("package, forbidden", [
    ("storage", {"app", "engine", "gradio", "torch"}),
    ("engine", {"app", "gradio", "duckdb"}),
    ("app", {"storage", "duckdb", "torch"}),
])
def test_imports_point_one_way(package, forbidden):
    offenders = {path: names & forbidden for path, names in _imports(package).items() if names & forbidden}
    assert not offenders


def test_sql_lives_only_in_storage():
    for package in ("app", "engine"):
        for path in _python_files(package):
            assert ".execute(" not in path.read_text(), path


def _engine_part(module: str) -> str | None:
    """The subpackage (or base module) of engine that the dotted `module` lies in; None outside engine."""
    parts = module.split(".")
    return parts[1] if parts[0] == "engine" and len(parts) > 1 else None


def test_every_engine_module_lies_in_a_declared_subpackage():
    for path in _python_files("engine"):
        parts = path.relative_to(ROOT / "engine").with_suffix("").parts
        assert parts == ("__init__",) or parts[0] in ENGINE_ORDER or parts[0] in ENGINE_BASE, path


def test_engine_subpackages_import_only_those_below_them():
    offenders = {}
    for path in _python_files("engine"):
        parts = path.relative_to(ROOT / "engine").with_suffix("").parts
        own = parts[0]
        for module in _imported_modules(path):
            part = _engine_part(module)
            if part is None or part == own or (part in ENGINE_BASE and own not in ENGINE_BASE):
                continue
            if own in ENGINE_BASE or part in ENGINE_BASE or ENGINE_ORDER.index(part) > ENGINE_ORDER.index(own):
                offenders.setdefault(str(path.relative_to(ROOT)), set()).add(module)
    assert not offenders


def test_the_learner_does_no_project_io():
    """engine/learning/selftrain takes arrays and returns results; the round runner (engine/session) reads and
    writes the project around it."""
    for path in _python_files("engine/learning/selftrain"):
        modules = {name.split(".")[0] for name in _imported_modules(path)}
        assert "storage" not in modules, path
        assert not {name for name in _imported_modules(path) if _engine_part(name) == "project"}, path


# ---- no test reads a private name ------------------------------------------------------------------------------

# A string that reaches into a private field of an object: `plot._fullData` in JavaScript a test runs in the page.
PRIVATE_FIELD = re.compile(r"\.\s*_[A-Za-z]\w*")


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _own_module(module: str) -> bool:
    """Modules whose private names a test may use: the tests' and benchmarks' own helpers."""
    return module.split(".")[0] in ("tests", "benchmarks")


def _private_reads(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and node.module and not _own_module(node.module):
            found += [f"{node.lineno}: from {node.module} import {alias.name}" for alias in node.names
                      if _is_private(alias.name)]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("setattr", "delattr") and len(node.args) >= 2 and \
                isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str) and \
                _is_private(node.args[1].value):  # monkeypatch.setattr(module, "_name", ...)
            found.append(f"{node.lineno}: {node.func.attr} {node.args[1].value}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and PRIVATE_FIELD.search(node.value):
            found.append(f"{node.lineno}: {PRIVATE_FIELD.search(node.value).group(0)} in a string")
    return sorted(found, key=lambda line: int(line.split(":")[0]))


def test_no_test_or_benchmark_reads_a_private_name():
    """Tests and benchmarks reach the code through its public names (or through what it does); a private name is
    the code's to change. `self._x` inside a test's own helper is fine, and so are the tests' own private helpers."""
    offenders = {str(path.relative_to(ROOT)): found
                 for package in ("tests", "benchmarks") for path in _python_files(package)
                 if path != Path(__file__).resolve() and (found := _private_reads(path))}  # not its own samples
    assert not offenders


def test_app_reads_no_private_name_of_another_object():
    """The page reaches libraries and engine through public names only: a private field (Gradio's
    `EventData._data`, Plotly's `_fullData`) changed meaning between versions before."""
    offenders = {str(path.relative_to(ROOT)): found for path in _python_files("app") if (found := _private_reads(path))}
    assert not offenders


def test_the_private_name_check_finds_each_kind_of_read(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from storage.gallery import _shown_sql\n"
                      "from tests.test_store import _store_with_images\n"
                      "store._query('SELECT 1')\n"
                      "self._cache = None\n"
                      "monkeypatch.setattr(models, '_cached_hub_file', None)\n"
                      "page.evaluate('() => plot._fullLayout.xaxis')\n"
                      "page.evaluate('() => window.__named')\n")
    assert [line.split(":")[0] for line in _private_reads(sample)] == ["1", "3", "5", "6"]
