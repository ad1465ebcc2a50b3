"""Label Studio: tasks for its JSON import, and human labels read back from its JSON export.

A task's `data.image` is the URL Label Studio loads the image from; machine labels go in `predictions` (with the
model's confidence as `score`), human labels in `annotations`. Their results name the controls of
`labeling_config()`, `<Choices name="choice" toName="image">`, which is what Label Studio checks on import.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import quoteattr

from engine.errors import LabelloopError

# Label Studio serves local files at this URL when started with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and
# LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<the images folder>; `d` is the path relative to that root.
LS_ROOT_URL = "/data/local-files/?d="
FROM_NAME, TO_NAME = "choice", "image"
LabelRow = tuple[str, str, str]  # (where in the file, image path as written there, label; "" = none of these)


def labeling_config(class_names: list[str]) -> str:
    """The labeling interface the exported tasks are written for: one image, one single choice per class."""
    choices = "".join(f"<Choice value={quoteattr(name)}/>" for name in class_names)
    return (f'<View><Image name="{TO_NAME}" value="${TO_NAME}"/>'
            f'<Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single-radio">{choices}</Choices></View>')


def _result(label: str | None) -> list[dict]:
    """A choices result for `label`; none for "none of these" (an annotation with an empty result)."""
    if label is None:
        return []
    return [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": [label]}}]


def tasks(rows: list[dict], *, root_url: str = LS_ROOT_URL) -> list[dict]:
    """One task per export row (path, label (None = none of these), source, confidence, round)."""
    out = []
    for row in rows:
        task: dict = {"data": {TO_NAME: root_url + quote(row["path"], safe="/")}}
        if row["source"] == "human":
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
        return str(annotation.get("updated_at") or annotation.get("created_at") or ""), position

    return max(enumerate(annotations), key=when)[1]


def read_tasks(path: Path, *, root_url: str = LS_ROOT_URL) -> tuple[list[LabelRow], dict[str, list[str]], int]:
    """A Label Studio JSON export -> (rows (where, image path, label; "" = none of these), problems (what ->
    where), tasks skipped because no one annotated them). Each task's newest annotation that was not cancelled
    counts; an annotation with an empty result means "none of these"."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            loaded = json.load(handle)
    except FileNotFoundError:
        raise LabelloopError(f"labels file {path} does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LabelloopError(f"cannot read {path} as Label Studio JSON: {error}") from None
    if not isinstance(loaded, list) or not all(isinstance(task, dict) for task in loaded):
        raise LabelloopError(f"{path} is not a Label Studio JSON export (a list of tasks); export it as JSON")
    rows, problems, skipped = [], {}, 0
    for number, task in enumerate(loaded, start=1):
        where = f"task {task.get('id', f'#{number}')}"
        annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
        if not annotations:
            skipped += 1
            continue
        data = task.get("data")
        image = data.get(TO_NAME) if isinstance(data, dict) else None
        result = _newest(annotations).get("result") or []
        choices = [str(choice) for region in result if isinstance(region, dict) and region.get("type") == "choices"
                   for choice in (region.get("value") or {}).get("choices") or []]
        if not isinstance(image, str) or not image:
            problems.setdefault(f"no data.{TO_NAME}", []).append(where)
        elif len(choices) > 1:
            problems.setdefault("more than one choice", []).append(where)
        elif result and not choices:
            problems.setdefault("an annotation without a choice", []).append(where)
        else:
            rows.append((where, task_path(image, root_url=root_url), choices[0] if choices else ""))
    return rows, problems, skipped
