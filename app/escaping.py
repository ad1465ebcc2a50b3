"""How text a person or a folder supplied (class names, file names, and messages that quote them) is shown: as
itself, never as markup or terminal commands. A terminal takes `terminal_text`; HTML (tiles, the detail title, a
toast, the labels Plotly draws) `html_text`; a Gradio Markdown view `markdown_text`."""

from __future__ import annotations

import html

# The characters CommonMark lets a backslash escape, but for <>&"', which html.escape makes entities: each is then
# shown as itself, never as a link, an image, emphasis, a heading or a table, nor as the start of an autolink
# (`http\://`, `www\.`, `name\@host`).
_MARKDOWN_PUNCTUATION = frozenset("!#$%()*+,-./:;=?@[\\]^_`{|}~")


def terminal_text(text) -> str:
    """`text` as a terminal may print it: each character that does not print as itself (control and escape
    characters, line breaks, bidi overrides, zero-width characters) written as in a Python string literal (\\x1b,
    \\n, \\u202e), so no name can colour, move or reorder what a terminal shows, nor pass for another name."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in str(text))


def html_text(text) -> str:
    """`text` for HTML, in an element or a quoted attribute, shown as `terminal_text` writes it. Toasts (gr.Info,
    gr.Warning) are HTML too, and so is the text Plotly draws: it reads <a href>, <b>, <br>, and decodes numeric
    entities but not &quot;, hence quotes as numeric entities."""
    return html.escape(terminal_text(text), quote=False).replace('"', "&#34;").replace("'", "&#39;")


def markdown_text(text) -> str:
    """`text` for a Gradio Markdown view, shown exactly as `terminal_text` writes it: no tag, link, image, autolink or
    formatting in it is ever live."""
    escaped = "".join("\\" + char if char in _MARKDOWN_PUNCTUATION else char for char in terminal_text(text))
    return html.escape(escaped)
