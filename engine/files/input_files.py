"""Opening the files a person hands labelloop (a labels CSV, a Label Studio JSON export, a prompts file): only
regular files, read without ever waiting on a writer, and no line longer than MAX_LINE_CHARS. A FIFO, a device such
as /dev/zero or a file of one endless line is refused in one line instead of hanging the command or filling its
memory."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterator, TextIO

from engine.errors import LabelloopError

MAX_LINE_CHARS = 1 << 20  # far longer than any labels row or prompt, far shorter than what strains memory


def file_kind(mode: int) -> str:
    """A person's word for what a stat mode says a path is."""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((word for test, word in kinds if test(mode)), "not a plain file")


def open_input(path: str | Path, what: str, *, newline: str | None = None) -> TextIO:
    """`path` opened as UTF-8 text (a byte-order mark skipped). Refuses, in one line naming it as `what` ("labels
    file"), a path that is missing, unreadable, a folder or anything but a regular file."""
    try:
        # O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever (it means nothing for a regular file)
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise LabelloopError(f"{what} {path} does not exist") from None
    except OSError as error:
        raise LabelloopError(f"cannot read {what} {path}: {error.strerror or error}") from None
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        if stat.S_ISDIR(mode):
            raise LabelloopError(f"{path} is a folder; give the {what}")
        raise LabelloopError(f"{what} {path} is {file_kind(mode)}, not a regular file; save it to a file and give "
                             "that")
    return open(descriptor, encoding="utf-8-sig", newline=newline)


def bounded_lines(handle: TextIO, path: str | Path, what: str) -> Iterator[str]:
    """The lines of `handle`, each read at most MAX_LINE_CHARS at a time: a longer line is refused in one line
    naming the file and the line, before the rest of it is read."""
    for number, line in enumerate(iter(lambda: handle.readline(MAX_LINE_CHARS + 1), ""), start=1):
        if len(line) > MAX_LINE_CHARS:
            raise LabelloopError(f"{what} {path} line {number} is longer than {MAX_LINE_CHARS:,} characters; "
                                 "is it the right file?")
        yield line
