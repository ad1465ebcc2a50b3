"""The Label tab's place as the page's address: the filters, the sort, the page, the subset (when it can be made
again: a search, "more like this", the random audit) and the selected image, so a reload, back and a shared link
land where the person was. A map selection or a duplicate group is not kept (they are made by hand, and may be
thousands of images long): such a link lands on the same filters without it.

`place_link` writes the query string the gallery's drawing carries (GALLERY_JS puts it in the address bar);
`place_from_link` reads one back, leaving out whatever it cannot read (a link edited by hand, an old one)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping
from urllib.parse import urlencode

from engine.views.gallery import GALLERY_SORTS, GALLERY_STATUSES, GalleryQuery

SUBSET_KINDS = ("search", "like", "audit")  # the subsets a link makes again


@dataclass(frozen=True)
class Place:
    query: GalleryQuery  # without its subset
    subset: tuple[str, str] | None = None  # (kind, what: the search text, the image id, "1"), see SUBSET_KINDS
    image_id: int | None = None


def place_link(query: GalleryQuery, subset_link: tuple[str, str] | None = None) -> str:
    """The query string for `query` (only what differs from the gallery as it first opens), without the image."""
    default = GalleryQuery()
    fields = {"class": query.class_name or None,
              "status": query.status if query.status != default.status else None,
              "min": f"{query.min_confidence:g}" if query.min_confidence != default.min_confidence else None,
              "max": f"{query.max_confidence:g}" if query.max_confidence != default.max_confidence else None,
              "sort": query.sort if query.sort != default.sort else None,
              "disagree": "1" if query.disagree else None, "mistakes": "1" if query.mistakes else None,
              "p": str(query.offset // query.page_size + 1) if query.offset else None}
    if subset_link is not None:
        fields[subset_link[0]] = subset_link[1]
    return urlencode({key: value for key, value in fields.items() if value is not None})


def with_image(link: str, image_id: int | None) -> str:
    return f"{link}&image={image_id}".lstrip("&") if image_id is not None else link


def place_from_link(params: Mapping[str, str], class_names: list[str]) -> Place | None:
    """The place a link names, or None when it names none (the page opens as it always does). A value it cannot
    read (a class no longer there, a sort or number it does not know) is left out, never an error."""
    if not any(key in params for key in ("class", "status", "min", "max", "sort", "disagree", "mistakes", "p",
                                          "image", *SUBSET_KINDS)):
        return None
    query = GalleryQuery()
    if params.get("class") in class_names:
        query = replace(query, class_name=params["class"])
    if params.get("status") in GALLERY_STATUSES:
        query = replace(query, status=params["status"])
    low, high = _share(params.get("min"), 0.0), _share(params.get("max"), 1.0)
    query = replace(query, min_confidence=min(low, high), max_confidence=max(low, high),
                    disagree=params.get("disagree") == "1", mistakes=params.get("mistakes") == "1")
    subset = next(((kind, params[kind]) for kind in SUBSET_KINDS if params.get(kind)), None)
    sort = params.get("sort")
    if sort in GALLERY_SORTS and (sort != "match" or subset is not None):
        query = replace(query, sort=sort)
    page = _whole(params.get("p"))  # not "page": Gradio reads that one
    if page is not None and page >= 1:
        query = replace(query, offset=(page - 1) * query.page_size)
    return Place(query, subset, _whole(params.get("image")))


def _share(text: str | None, default: float) -> float:
    try:
        value = float(text) if text is not None else default
    except ValueError:
        return default
    return value if 0.0 <= value <= 1.0 else default


def _whole(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
