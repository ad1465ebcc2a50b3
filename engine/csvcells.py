"""CSV cells a spreadsheet will not run: a text cell starting with =, +, -, @, a tab or a carriage return is a
formula to Excel and LibreOffice, so exports prefix it with a single quote (OWASP's advice for CSV injection), and
labelloop's own import takes the quote off again, so an exported CSV imports back name for name."""

from __future__ import annotations

# OWASP's formula starters, and the quote itself: a name that starts with a quote is quoted too, so unquoting
# never takes a quote that was part of the name.
_QUOTED_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def quote_formula(cell):
    """`cell` as a CSV export writes it: text starting like a formula gets a leading single quote; anything else
    (numbers, None, other text) is returned as is."""
    return "'" + cell if isinstance(cell, str) and cell.startswith(_QUOTED_STARTS) else cell


def unquote_formula(cell: str) -> str:
    """The inverse of `quote_formula` on text read from a CSV."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_QUOTED_STARTS) else cell
