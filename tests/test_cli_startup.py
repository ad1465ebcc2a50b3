"""Commands that need no model import neither torch nor open_clip (3 s of start-up): each runs here in a fresh
interpreter, which then reports which of the two it loaded."""

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "open_clip")
_RUN_AND_REPORT = """
import json, sys
from app.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "loaded": [name for name in %r if name in sys.modules]}), file=sys.stderr)
""" % (HEAVY,)


def _fresh_run(*args) -> dict:
    done = subprocess.run([sys.executable, "-c", _RUN_AND_REPORT, *map(str, args)], capture_output=True, text=True,
                          timeout=120)
    return json.loads(done.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("command", [
    ["status"], ["status", "--json"], ["queue", "--k", "5"], ["export", "--format", "csv", "--out", "{tmp}/x.csv"],
    ["export", "--format", "parquet", "--out", "{tmp}/x.parquet"], ["label", "--csv", "{tmp}/labels.csv"],
])
def test_model_free_commands_do_not_import_torch(project, images, tmp_path, command):
    first = min(path for path in images.rglob("*") if path.is_file()).relative_to(images).as_posix()
    (tmp_path / "labels.csv").write_text(f"path,label\n{first},circle\n")
    args = [part.format(tmp=tmp_path) for part in command]
    result = _fresh_run(args[0], project, *args[1:])
    assert result == {"code": 0, "loaded": []}


def test_a_model_command_still_loads_the_model(project):
    """The check above can fail: ingest (which embeds) does import torch and open_clip in the same harness."""
    assert _fresh_run("ingest", project, "--workers", "0")["loaded"] == list(HEAVY)
