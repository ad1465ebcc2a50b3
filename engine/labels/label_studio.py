"""Label Studio: tasks for its JSON import, and human labels read back from its JSON export.

A task's `data.image` is the URL Label Studio loads the image from; machine labels go in `predictions` (with the
model's confidence as `score`), human labels in `annotations`. Their results name the controls of
`labeling_config()`, `<Choices name="choice" toName="image">` (one class per image), or in a multi-label project
`<Choices name="tags" toName="image" choice="multiple">` (a set of tags; an empty result = no tag applies), which is
what Label Studio checks on import. The control's name tells the two kinds of export apart on the way back.

Label Studio serves a local file only from inside a local-files storage, and a storage cannot be its document root
itself. So the recipe is: LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT = the images folder's parent, a local-files storage
for the images folder, and `data.image` = `/data/local-files/?d=<images folder name>/<path>` (`default_root_url`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import quoteattr

from engine.errors import LabelloopError
from engine.files.input_files import open_input
from engine.learning.tags import TAG_SEPARATOR
from engine.sources import Source

# Label Studio serves local files at this URL when started with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true;
# `d` is the path relative to LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT.
LS_ROOT_URL = "/data/local-files/?d="
FROM_NAME, TAGS_NAME, TO_NAME = "choice", "tags", "image"  # the single-label and multi-label controls, the image's
# (where in the file, image path as written there, label; "" = none of these; multi-label: the tags ;-joined)
LabelRow = tuple[str, str, str]


def default_root_url(images_root: Path) -> str:
    """The `data.image` prefix that works with the document root set to the images folder's parent and a
    local-files storage for the images folder: `/data/local-files/?d=<images folder name>/`."""
    return f"{LS_ROOT_URL}{quote(images_root.name, safe='')}/"


def labeling_config(class_names: list[str], *, multi_label: bool = False) -> str:
    """The labeling interface the exported tasks are written for: one image, one choice per class; a single
    choice, or in a multi-label project any number of them (`choice="multiple"`)."""
    choices = "".join(f"<Choice value={quoteattr(name)}/>" for name in class_names)
    name, kind = (TAGS_NAME, "multiple") if multi_label else (FROM_NAME, "single-radio")
    return (f'<View><Image name="{TO_NAME}" value="${TO_NAME}"/>'
            f'<Choices name="{name}" toName="{TO_NAME}" choice="{kind}">{choices}</Choices></View>')


def _result(label: str | list[str] | None) -> list[dict]:
    """A choices result for `label` (a class name, or a multi-label project's list of tags); none for "none of
    these" or no tag (an annotation with an empty result)."""
    if not label:
        return []
    name, choices = (TAGS_NAME, label) if isinstance(label, list) else (FROM_NAME, [label])
    return [{"from_name": name, "to_name": TO_NAME, "type": "choices", "value": {"choices": choices}}]


def tasks(rows: list[dict], *, root_url: str, people: dict[str, list[dict]] | None = None) -> list[dict]:
    """One task per export row (path, label (None = none of these; a multi-label project's: a list of tags), source,
    confidence, round); an image that people of the project labelled (`people`: path -> [{"person", "label",
    "labelled_at"}]) carries one annotation per person, `completed_by` their name."""
    out = []
    for row in rows:
        task: dict = {"data": {TO_NAME: root_url + quote(row["path"], safe="/")}}
        if people and row["path"] in people:
            task["annotations"] = [{"completed_by": given["person"], "created_at": given["labelled_at"] + "Z",
                                    "updated_at": given["labelled_at"] + "Z", "result": _result(given["label"])}
                                   for given in people[row["path"]]]
        elif row["source"] == Source.HUMAN:
            task["annotations"] = [{"result": _result(row["label"])}]
        else:
            score = row["confidence"]
            task["predictions"] = [{"model_version": f"labelloop-{row['source']}-round-{row['round']}",
                                    "score": score, "result": [dict(r, score=score) for r in _result(row["label"])]}]
        out.append(task)
    return out


def task_path(url: str, *, root_url: str = LS_ROOT_URL) -> str:
    """The image path a task's `data.image` names: `root_url` + a quoted path as `tasks()` writes it, any Label
    Studio local-files URL (`...?d=PATH`), or a path as it stands (relative to the images folder, or absolute)."""
    if url.startswith(root_url):
        return unquote(url[len(root_url):])
    parts = urlsplit(url)
    if parts.path.rstrip("/").endswith("/data/local-files"):
        return parse_qs(parts.query).get("d", [""])[-1]  # decoded once, the last value wins, as Label Studio does
    return url


def _newest(annotations: list[dict]) -> dict:
    """The annotation updated (or created) last; the last listed where Label Studio's timestamps tie or are absent."""
    def when(pair: tuple[int, dict]) -> tuple[str, int]:
        position, annotation = pair
        return _stamp(annotation), position

    return max(enumerate(annotations), key=when)[1]


def _stamp(annotation: dict) -> str:
    return str(annotation.get("updated_at") or annotation.get("created_at") or "")


def _seconds(stamp: str) -> float:
    """Label Studio's ISO 8601 time (UTC, `Z`) -> seconds since the epoch; a time without a zone is taken as UTC."""
    when = dt.datetime.fromisoformat(stamp.removesuffix("Z") + ("+00:00" if stamp.endswith("Z") else ""))  # 3.10
    return (when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).timestamp()


@dataclass
class TaskLabels:
    """What a Label Studio JSON export says, per task; `where` ("task ID") keys every mapping."""
    rows: list[LabelRow] = field(default_factory=list)  # (where, image path, label; "" = none of these)
    problems: dict[str, list[str]] = field(default_factory=dict)  # what -> where
    urls: dict[str, str] = field(default_factory=dict)  # where -> data.image as written
    annotated_at: dict[str, float] = field(default_factory=dict)  # where -> the annotation's updated_at (epoch s)
    unannotated: int = 0  # tasks no one annotated
    cancelled: int = 0  # tasks whose every annotation was cancelled (skipped)


def read_tasks(path: Path, *, root_url: str, multi_label: bool = False) -> TaskLabels:
    """A Label Studio JSON export -> its labels. Each task's newest annotation that was not cancelled counts; an
    annotation with an empty result means "none of these" (multi-label: no tag applies). `multi_label`: the
    project's kind; an answer from the other kind's control (`labeling_config`), or several choices in a
    single-label project, is a problem of the task."""
    try:
        with open_input(path, "labels file") as handle:
            loaded = json.load(handle)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LabelloopError(f"cannot read {path} as Label Studio JSON: {error}") from None
    except RecursionError:  # Python's JSON parser recurses once per level; no export nests more than a few
        raise LabelloopError(f"cannot read {path} as Label Studio JSON: it is nested thousands of levels deep; "
                             "is it the right file?") from None
    except OSError as error:
        raise LabelloopError(f"cannot read labels file {path}: {error.strerror or error}") from None
    if not isinstance(loaded, list) or not all(isinstance(task, dict) for task in loaded):
        raise LabelloopError(f"{path} is not a Label Studio JSON export (a list of tasks); export it as JSON")
    out = TaskLabels()
    ids = [str(task.get("id", f"#{number}")) for number, task in enumerate(loaded, start=1)]
    counts = Counter(ids)
    repeated = {task_id for task_id, count in counts.items() if count > 1}
    for number, task_id in enumerate(ids, start=1):
        if task_id in repeated:  # a file that repeats an id is refused: its tasks cannot be told apart
            out.problems.setdefault(f"task id {task_id} is used by {counts[task_id]} tasks; ids must be unique",
                                    []).append(f"task #{number}")
    for task, task_id in zip(loaded, ids):
        if task_id in repeated:
            continue
        where = f"task {task_id}"
        given = [a for a in _listed(task.get("annotations")) if isinstance(a, dict)]
        annotations = [a for a in given if not a.get("was_cancelled")]
        if not annotations:
            if given:
                out.cancelled += 1
            else:
                out.unannotated += 1
            continue
        data = task.get("data")
        image = data.get(TO_NAME) if isinstance(data, dict) else None
        newest = _newest(annotations)
        result = _listed(newest.get("result"))
        regions = [region for region in result if isinstance(region, dict) and region.get("type") == "choices"
                   and isinstance(region.get("value"), dict)]
        choices = [str(choice) for region in regions for choice in _listed(region["value"].get("choices"))]
        other_kind = FROM_NAME if multi_label else TAGS_NAME
        if not isinstance(image, str) or not image:
            out.problems.setdefault(f"no data.{TO_NAME}", []).append(where)
        elif any(region.get("from_name") == other_kind for region in regions):
            out.problems.setdefault(_OTHER_KIND[multi_label], []).append(where)
        elif len(choices) > 1 and not multi_label:
            out.problems.setdefault("more than one choice", []).append(where)
        elif result and not choices:
            out.problems.setdefault("an annotation without a choice", []).append(where)
        else:
            if stamp := _stamp(newest):
                try:
                    out.annotated_at[where] = _seconds(stamp)
                except ValueError:
                    out.problems.setdefault(f"unreadable updated_at {stamp!r}", []).append(where)
                    continue
            out.rows.append((where, task_path(image, root_url=root_url), TAG_SEPARATOR.join(choices)))
            out.urls[where] = image
    return out


_OTHER_KIND = {  # what an answer from the other kind of project's control says, by whether this one is multi-label
    False: f"tags from a multi-label config (<Choices name=\"{TAGS_NAME}\">) and this project is single-label",
    True: f"one class from a single-label config (<Choices name=\"{FROM_NAME}\">) and this project is multi-label"}


def _listed(value) -> list:
    """`value` if it is a list, else nothing: an export edited by hand may hold anything where a list belongs."""
    return value if isinstance(value, list) else []


def suggest_root_url(urls: list[str], names_image: Callable[[list[str]], int]) -> tuple[str, int] | None:
    """The `--ls-root-url` that maps the most of `urls` (data.image values refused as unknown images) to images of
    the project, as (prefix, how many it maps), or None where no prefix all of them share maps any.
    names_image(paths) -> how many of the paths name an image of the project."""
    if not urls:
        return None
    first = urls[0]
    # a root URL ends where a path or query value starts: after a "/" or "="
    candidates = [first[:end] for end in range(1, len(first)) if first[end - 1] in "/="]
    best = None
    for prefix in candidates:
        if not all(url.startswith(prefix) for url in urls):
            break  # a longer prefix is not shared either
        mapped = names_image([task_path(url, root_url=prefix) for url in urls])
        if mapped and (best is None or mapped > best[1]):
            best = (prefix, mapped)
    return best
