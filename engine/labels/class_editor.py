"""Changing the project's classes from the page: add, rename, remove, edit prompts, set keys. Each change but a key
reruns zero-shot in the background; edits that arrive while it runs fold into the running job
(JobRunner.submit_or_fold)."""

from __future__ import annotations

from typing import Callable

from engine.labels.class_keys import set_class_keys
from engine.errors import LabelloopError
from engine.views.gallery import GalleryView
from engine.jobs.runner import JobContext, JobRunner
from engine.learning.models import LoadedModel
from engine.learning.class_prompts import parse_class_list
from storage import Store


class ClassEditor:
    def __init__(self, store: Store, view: GalleryView, runner: JobRunner, model: Callable[[], LoadedModel]):
        self.store = store
        self.view = view
        self.runner = runner
        self._model = model

    def add(self, text: str) -> int:
        """Add the comma-separated classes in `text`; returns the zero-shot job's id."""
        existing = self.view.class_names()
        names = parse_class_list(",".join([*existing, text]))[len(existing):]  # refuses empties and duplicates
        self.store.add_classes(names, [None] * len(names))
        return self._rerun_zero_shot("add classes")

    def rename(self, old: str | None, new: str) -> int:
        if not old:
            raise LabelloopError("choose the class to rename first")
        if "," in new:
            raise LabelloopError(f"a class name cannot contain a comma: {new!r}")
        others = [name for name in self.view.class_names() if name != old]
        new = parse_class_list(",".join([*others, new]))[-1]  # refuses an empty or taken name
        self.store.rename_class(self.view.class_id(old), new)
        return self._rerun_zero_shot("rename class")

    def remove(self, name: str | None) -> int:
        if not name:
            raise LabelloopError("choose the class to remove first")
        class_id = self.view.class_id(name)
        humans = self.store.human_label_count(class_id)
        if humans:
            raise LabelloopError(f"class {name!r} has {humans} human labels; relabel them first, or rename the class")
        if len(self.view.class_names()) <= 2:
            raise LabelloopError("a project needs at least two classes")
        self.store.remove_class(class_id)
        return self._rerun_zero_shot("remove class")

    def set_prompts(self, name: str | None, prompts_text: str) -> int:
        """One prompt per line ({} stands for the class name); empty = the project's default templates."""
        if not name:
            raise LabelloopError("choose the class whose prompts to set first")
        prompts = [line.strip() for line in prompts_text.splitlines() if line.strip()]
        self.store.set_class_prompts(self.view.class_id(name), prompts or None)
        return self._rerun_zero_shot("edit prompts")

    def set_key(self, name: str | None, key: str) -> str | None:
        """Give class `name` the key `key` (one letter or digit; empty = no key); returns the key it has now."""
        if not name:
            raise LabelloopError("choose the class whose key to set first")
        return set_class_keys(self.store, [(name, key)])[name]

    def _rerun_zero_shot(self, reason: str) -> int:
        from engine.learning.zeroshot import run_zero_shot

        def work(context: JobContext) -> dict:
            context.progress(0.0, "loading the model")
            model = self._model()
            context.progress(0.3, "scoring every image against the classes")
            return {"predicted": run_zero_shot(self.store, model)}

        return self.runner.submit_or_fold("zero-shot", {"reason": reason}, work)
