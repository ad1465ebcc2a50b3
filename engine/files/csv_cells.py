"""CSV cells a spreadsheet will not run: a text cell starting with =, +, -, @, a tab or a carriage return is a
formula to Excel and LibreOffice, so exports prefix it with a single quote (OWASP's advice for CSV injection), and
labelloop's own import takes the quote off again, so an exported CSV imports back name for name."""

from __future__ import annotations

import functools

import pyarrow as pa
import pyarrow.compute as pc

# OWASP's formula starters, and the quote itself: a name that starts with a quote is quoted too, so unquoting
# never takes a quote that was part of the name.
_QUOTED_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def quote_formula(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """A text column as a CSV export writes it: each value starting like a formula gets a leading single quote
    (in Arrow: a Python loop over a million rows of names would add seconds to an export)."""
    starts = pc.fill_null(functools.reduce(pc.or_, (pc.starts_with(values, start) for start in _QUOTED_STARTS)),
                          False)
    if not pc.any(starts).as_py():
        return values
    return pc.if_else(starts, pc.binary_join_element_wise("'", values, ""), values)


def unquote_formula(cell: str) -> str:
    """The inverse of `quote_formula` on one cell read from a CSV."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_QUOTED_STARTS) else cell
