"""The one exception type whose message is shown to a person as is, and the one place that words the failures of
the machine under labelloop (a full disk, a read-only file) for a person."""

from __future__ import annotations

import errno
import re
import zipfile
from pathlib import Path


class LabelloopError(Exception):
    """A failure a person can act on. Its message is one line naming the thing and what to do."""


# What np.load raises on a cut-short or damaged .npz (a cache or checkpoint a full disk or a kill left half written)
DAMAGED_NPZ = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)
# What DuckDB's errors say (they carry no errno): 'Could not write file "PATH": No space left on device'
_NO_SPACE_WORDS = ("no space left on device", "disk quota exceeded")
_READ_ONLY_WORDS = ("read-only file system", "permission denied")
_QUOTED_PATH = re.compile(r'"([^"]*/[^"]*)"')


def as_refusal(error: BaseException, where: str | Path | None = None) -> LabelloopError | None:
    """The one line a person sees for `error`: itself when it is a LabelloopError; when the disk under labelloop
    caused it (full, or read-only, as an OSError or a DuckDB error of any kind), the cause and what to do, naming
    `where` (the project, the export), else the path the error names; None for anything else (a bug, whose
    traceback says more). Every write is one transaction, so what was stored before such a failure stays."""
    if isinstance(error, LabelloopError):
        return error
    number = error.errno if isinstance(error, OSError) else None
    text = str(error).lower()
    quoted = _QUOTED_PATH.search(str(error))
    where = where or getattr(error, "filename", None) or (quoted.group(1) if quoted else None)
    if number in _NO_SPACE or any(words in text for words in _NO_SPACE_WORDS):
        cause, advice = (f"disk full at {where}" if where else "the disk is full"), "free space and run again"
    elif number in _READ_ONLY or any(words in text for words in _READ_ONLY_WORDS):
        cause = f"cannot write {where}: it is read-only" if where else "cannot write: the disk is read-only"
        advice = "make it writable (or copy it elsewhere) and run again"
    else:
        return None
    return LabelloopError(f"{cause}: {advice}; nothing stored was lost")
