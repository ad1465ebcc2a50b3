"""What keeps a model-free command's start-up short: it must not import torch, open_clip or pandas."""

from __future__ import annotations

import sys


class _NoPandas:
    """A meta-path finder that refuses to import pandas (see skip_pyarrow_pandas_probe)."""

    def find_spec(self, name, path=None, target=None):
        if name == "pandas":
            raise ModuleNotFoundError("pandas is not needed by this command")
        return None


def skip_pyarrow_pandas_probe() -> None:
    """pyarrow imports pandas (0.5-1 s of a command's start-up) the first time it builds or converts an array, only
    to ask whether the input is a pandas object, and it asks once per process. The CLI never hands it one (only the
    page uses pandas), so that one question is answered "no pandas" here; an explicit to_pandas() still imports it."""
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    refuse = _NoPandas()
    sys.meta_path.insert(0, refuse)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(refuse)
