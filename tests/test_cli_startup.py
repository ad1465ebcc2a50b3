"""Commands that need no model import neither torch nor open_clip (3 s of start-up), nor the page's pandas and
gradio (pyarrow would import pandas on its own: 0.5-1 s): each runs here in a fresh interpreter, which then
reports which of them it loaded."""

import json
import subprocess
import sys

import pytest

MODEL = ("torch", "open_clip")
PAGE = ("pandas", "gradio")
_RUN_AND_REPORT = """
import json, sys
from app.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "loaded": [name for name in %r if name in sys.modules]}), file=sys.stderr)
""" % (MODEL + PAGE,)


def _fresh_run(*args) -> dict:
    done = subprocess.run([sys.executable, "-c", _RUN_AND_REPORT, *map(str, args)], capture_output=True, text=True,
                          timeout=120)
    return json.loads(done.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("command", [
    ["status"], ["status", "--json"], ["queue", "--k", "5"], ["export", "--format", "csv", "--out", "{tmp}/x.csv"],
    ["export", "--format", "parquet", "--out", "{tmp}/x.parquet"], ["label", "--csv", "{tmp}/labels.csv"],
    ["classes", "--key", "circle=c"],
])
def test_model_free_commands_import_neither_the_model_nor_the_page(project, images, tmp_path, command):
    first = min(path for path in images.rglob("*") if path.is_file()).relative_to(images).as_posix()
    (tmp_path / "labels.csv").write_text(f"path,label\n{first},circle\n")
    args = [part.format(tmp=tmp_path) for part in command]
    result = _fresh_run(args[0], project, *args[1:])
    assert result == {"code": 0, "loaded": []}


def test_a_model_command_still_loads_the_model(project):
    """The check above can fail: ingest (which embeds) does import torch and open_clip in the same harness."""
    assert _fresh_run("ingest", project, "--workers", "0")["loaded"] == list(MODEL)


def test_pyarrow_still_converts_to_pandas_after_the_cli_skipped_its_probe():
    """The CLI answers pyarrow's "is this pandas?" question without importing pandas; a later explicit
    conversion must still work."""
    done = subprocess.run([sys.executable, "-c", """
import sys
from app.startup import skip_pyarrow_pandas_probe
skip_pyarrow_pandas_probe()
import pyarrow as pa
assert "pandas" not in sys.modules
table = pa.table({"a": pa.array([1, 2])})
assert "pandas" not in sys.modules
print(type(table.to_pandas()).__name__, int(table.to_pandas()["a"].sum()))
"""], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["DataFrame", "3"], done.stderr
