"""The Label tab's finding tools: text search, "more like this" (a button in the detail view and key S) and
near-duplicate groups shown one at a time. Each answer narrows the gallery to a Subset shown in its own order (sort
"best match") with its similarity on every tile, so the filters and bulk tools (accept page, picked tiles) work on
it; "✕ show all images" leaves it.
"""

from __future__ import annotations

from dataclasses import replace

import gradio as gr

from engine.project.discovery import Discovery, DuplicateGroup, Match
from engine.errors import LabelloopError
from engine.views.gallery import PAGE_SIZE, GalleryQuery, Subset

SEARCH_RESULTS = 10 * PAGE_SIZE  # images a search or "more like this" narrows the gallery to (ten pages)
SEARCH_PLACEHOLDER = "search, e.g. a red star"


def _subset(name: str, matches: list[Match], link: tuple[str, str] | None = None) -> Subset:
    return Subset(name=name, image_ids=tuple(m.image_id for m in matches), scores=tuple(m.score for m in matches),
                  link=link)


def group_name(group: DuplicateGroup, number: int, count: int, threshold: float) -> str:
    """What the page says a duplicate group is: its place, size, threshold and which members are exact copies."""
    exact = [m.path for m, is_exact in zip(group.matches, group.exact) if is_exact]
    named = ", ".join(exact[:3]) + (f" and {len(exact) - 3} more" if len(exact) > 3 else "")
    return (f"duplicates: group {number} of {count} (cosine ≥ {threshold:g})"
            + (f", exact copies: {named}" if exact else ""))


class FindTools:
    """Handlers of the finding tools. Each returns the new query, the gallery's outputs (`refresh`) and the sort
    dropdown; the duplicate ones also the shown group's index."""

    def __init__(self, discovery: Discovery, refresh):
        self.discovery = discovery
        self.refresh = refresh  # (query, selected image) -> the gallery's outputs

    def _shown(self, query: GalleryQuery, chosen: int | None, subset: Subset) -> tuple:
        query = replace(query, subset=subset, sort="match", offset=0)
        return (query, *self.refresh(query, chosen), gr.Dropdown(value="match"))

    def search_shown(self, query, chosen, text):
        return self._shown(query, chosen, self.searched(text))

    def similar_shown(self, query, chosen):
        """The selected image first, then its nearest neighbours."""
        if chosen is None:
            raise LabelloopError("select an image first (click it, or press →), then ask for more like it")
        return self._shown(query, chosen, self.like(chosen))

    def searched(self, text: str) -> Subset:
        return _subset(f"search: {text.strip()!r}", self.discovery.search_text(text, SEARCH_RESULTS),
                       ("search", text.strip()))

    def like(self, image_id: int) -> Subset:
        matches = self.discovery.search_like(image_id, SEARCH_RESULTS)
        return _subset(f"like {matches[0].path}", matches, ("like", str(image_id)))

    def _group_shown(self, query, chosen, threshold, index: int):
        if threshold is None:
            raise LabelloopError("set the duplicate threshold (a cosine similarity in (0, 1])")
        groups = self.discovery.duplicates(float(threshold))
        if not groups:
            raise LabelloopError(f"no near-duplicates at cosine ≥ {threshold:g}; lower the threshold to find more")
        index %= len(groups)
        group = groups[index]
        subset = _subset(group_name(group, index + 1, len(groups), float(threshold)), list(group.matches))
        return (*self._shown(query, chosen, subset), index)

    def duplicates_shown(self, query, chosen, threshold):
        return self._group_shown(query, chosen, threshold, 0)

    def next_group_shown(self, query, chosen, threshold, at):
        return self._group_shown(query, chosen, threshold, at + 1)

    def previous_group_shown(self, query, chosen, threshold, at):
        return self._group_shown(query, chosen, threshold, at - 1)
