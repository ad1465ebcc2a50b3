"""The Label tab's place as a link (app/place_link.py): written from a query, read back, and bad values left out."""

from app.place_link import place_from_link, place_link, with_image
from engine.views.gallery import GalleryQuery
from urllib.parse import parse_qsl


def test_a_place_goes_through_its_link_and_back():
    query = GalleryQuery(class_name="circle", status="unlabeled", min_confidence=0.25, max_confidence=0.8,
                         sort="name", disagree=True, mistakes=True, offset=96)
    link = with_image(place_link(query, ("search", "a red star")), 17)
    place = place_from_link(dict(parse_qsl(link)), ["circle", "square"])
    assert place.query == query and place.subset == ("search", "a red star") and place.image_id == 17
    assert place_link(GalleryQuery()) == "" and place_from_link({}, ["circle"]) is None


def test_what_a_link_cannot_say_is_left_out_never_an_error():
    place = place_from_link({"class": "gone", "status": "nonsense", "min": "x", "max": "7", "sort": "match",
                             "p": "-3", "image": "abc"}, ["circle"])
    assert place.query == GalleryQuery() and place.subset is None and place.image_id is None
