import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from tests.imagegen import write_bad_files, write_images
from tests.tiny_model import make_tiny_model


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory) -> Path:
    """The demo project as `labelloop demo` leaves it; tests copy it before changing anything."""
    from engine.demo.setup import prepare_demo

    root, _ = prepare_demo(tmp_path_factory.mktemp("demo"))
    return root


def pytest_collection_modifyitems(items):
    """Every test that drives Chromium is marked `browser`, so `-m "not browser"` runs the rest in a few minutes."""
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(server, browser):
    """A tab at 1280×800 on the page of the module's `server` fixture ((url, workspace))."""
    from tests.browser import open_page

    tab = open_page(browser, server[0])
    yield tab
    tab.context.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    """Where browser tests keep their screenshots: $LABELLOOP_SCREENSHOTS, else a pytest temp folder."""
    folder = Path(os.environ.get("LABELLOOP_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    write_images(folder, 12)
    return folder


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exit_:
            code = exit_.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def cli_json(cli):
    def run(*args: str):
        code, out, err = cli(*args, "--json")
        assert code == 0, err
        return json.loads(out)

    return run


@pytest.fixture
def project(tmp_path, images, tiny_model, cli) -> Path:
    """An ingested project over 12 images and the tiny model."""
    root = tmp_path / "project"
    assert cli("init", root, "--images", images, "--classes", "circle,square,other", "--model", tiny_model)[0] == 0
    assert cli("ingest", root, "--workers", "0")[0] == 0
    return root


@pytest.fixture
def hold():
    """hold(root) -> pid: another process (not a server) opens the project at `root` for writing and keeps it open
    until the test ends."""
    holders = []

    def hold(root: Path) -> int:
        holder = subprocess.Popen([sys.executable, "-c", (
            "import time; from storage import Store; "
            f"s = Store.open({str(root / 'labelloop.duckdb')!r}); print('open', flush=True); time.sleep(60)")],
            stdout=subprocess.PIPE, text=True)
        holders.append(holder)
        assert holder.stdout.readline().strip() == "open"
        return holder.pid

    yield hold
    for holder in holders:
        holder.kill()
        holder.wait()


@pytest.fixture
def held_project(tmp_path, tiny_model, hold):
    """A project held by a process that is not a server; (project, holder's pid)."""
    write_images(tmp_path / "images", 3)
    root = tmp_path / "project"
    assert main(["init", str(root), "--images", str(tmp_path / "images"), "--classes", "a,b",
                 "--model", str(tiny_model)]) == 0
    return root, hold(root)


__all__ = ["write_bad_files", "write_images"]
