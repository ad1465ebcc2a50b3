"""The shape of the page's code (issue 26): every function in app/ short enough to read at once. (That app reads no
private attribute of another object is tests/test_layering.py's, beside the same rule for tests.)"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_FUNCTION_LINES = 80


def _trees(package: str):
    for path in sorted((ROOT / package).rglob("*.py")):
        yield path.relative_to(ROOT), ast.parse(path.read_text())


def test_every_function_in_app_is_under_80_lines():
    long = [f"{path}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1} lines"
            for path, tree in _trees("app") for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 >= MAX_FUNCTION_LINES]
    assert not long, "\n".join(long)

