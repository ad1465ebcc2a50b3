"""Classes and their prompts: what the person asks for, and the sentences CLIP reads for each class.

A project has a default ensemble of templates (each with one `{}` for the class name); a class may override it
with its own list of templates or literal prompts.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from engine.errors import LabelloopError
from engine.files.input_files import bounded_lines, open_input

DEFAULT_TEMPLATES_FILE = Path(__file__).resolve().parents[2] / "assets" / "prompts" / "default.txt"
MAX_CLASSES = 1000


def parse_class_list(text: str) -> list[str]:
    """'cat, dog,bird' -> ['cat', 'dog', 'bird']; refuses empty names, names that do not print as themselves
    (`unprintable`), duplicates and a list of fewer than two."""
    names = [name.strip() for name in (text or "").split(",")]
    if names == [""]:
        raise LabelloopError('no classes given; give at least two, comma-separated: "cat,dog,bird"')
    for position, name in enumerate(names, start=1):
        if not name:
            raise LabelloopError(f"class list has an empty name at position {position}: {text!r}")
        hidden = unprintable(name)
        if hidden:
            raise LabelloopError(f"class name {name!r} holds {hidden}, which does not show as itself (it could "
                                 "pass for another name); type the name without it")
    seen: dict[str, str] = {}
    for name in names:
        if name.casefold() in seen:
            raise LabelloopError(f"class {name!r} appears twice in the class list (as {seen[name.casefold()]!r})")
        seen[name.casefold()] = name
    if len(names) < 2:
        raise LabelloopError(f"only one class ({names[0]!r}); give at least two, or add a catch-all such as 'other'")
    if len(names) > MAX_CLASSES:
        raise LabelloopError(f"{len(names)} classes is more than the {MAX_CLASSES} labelloop supports")
    return names


def unprintable(name: str) -> str | None:
    """The first character of `name` that does not print as itself, described ("U+202E RIGHT-TO-LEFT OVERRIDE"),
    else None: control and escape characters, line breaks, bidi overrides that reorder what follows, zero-width
    characters and spaces other than the plain one (str.isprintable's rule). Such a class name reads like another
    one on the page and in a terminal, so it is refused."""
    hidden = next((char for char in name if not char.isprintable()), None)
    if hidden is None:
        return None
    return f"U+{ord(hidden):04X} {unicodedata.name(hidden, 'a control character')}"


def default_templates() -> list[str]:
    return _template_lines(DEFAULT_TEMPLATES_FILE.read_text(encoding="utf-8").splitlines(), DEFAULT_TEMPLATES_FILE)


def _template_lines(lines: list[str], source: Path) -> list[str]:
    templates = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.count("{}") != 1:
            raise LabelloopError(f"{source} line {number}: a template needs exactly one {{}} for the class name: "
                                 f"{line!r}")
        templates.append(line)
    return templates


def read_prompts_file(path: str | Path, class_names: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Read a prompts file: one template per line (`a photo of a {}.`); a line `CLASS: text` adds a prompt or
    template used for that class only instead of the defaults. Returns (templates, per-class overrides)."""
    path = Path(path)
    try:
        with open_input(path, "prompts file") as handle:
            lines = [line.rstrip("\r\n") for line in bounded_lines(handle, path, "prompts file")]
    except (OSError, UnicodeDecodeError) as error:
        raise LabelloopError(f"cannot read prompts file {path}: {error}") from None
    known = {name.casefold(): name for name in class_names}
    overrides: dict[str, list[str]] = {}
    template_lines: list[str] = []
    for line in lines:
        head, colon, rest = line.partition(":")
        if colon and head.strip().casefold() in known and rest.strip():
            overrides.setdefault(known[head.strip().casefold()], []).append(rest.strip())
        else:
            template_lines.append(line)
    templates = _template_lines(template_lines, path)
    if not templates and len(overrides) < len(class_names):
        raise LabelloopError(f"prompts file {path} has no template lines (each with {{}}) and does not cover every "
                             "class with CLASS: lines")
    return templates, overrides


def prompts_for(name: str, templates: list[str], override: list[str] | None) -> list[str]:
    """The sentences the text encoder reads for one class."""
    chosen = override or templates
    return [entry.replace("{}", name) for entry in chosen]
