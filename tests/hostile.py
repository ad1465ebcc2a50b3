"""What the hostile-input tests share (tests/test_hostile_content.py, tests/test_hostile_faults.py)."""

import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLASSES = "circle,square,other"


def in_thread(work, seconds: float = 20):
    """Run `work()` in a thread: (its result or the exception it raised), or fail when it is still waiting after
    `seconds` (a FIFO opened for reading waits for a writer forever)."""
    outcome = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as error:  # handed to the test, which says what it expected
            outcome["result"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "still waiting: the file was opened as if it were a regular file"
    return outcome["result"]


def labels_by_path(root: Path) -> dict[str, str]:
    from engine.project.folder import open_project

    with open_project(root) as project:
        return {row["path"]: row["label"] for row in project.store.current_labels().to_pylist()
                if row["source"] == "human"}
