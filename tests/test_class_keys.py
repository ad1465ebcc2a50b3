"""Each class's own key: set, refused, kept through a rename, freed by a removal, stored in the project."""

import duckdb
import pytest

import storage.store as store_module
from engine.labels.class_keys import class_keys_after, set_class_keys
from engine.errors import LabelloopError
from storage import Store


def _keys(store: Store) -> dict:
    return {c["name"]: c["key"] for c in store.classes()}


def _store_with(names: list[str]) -> Store:
    store = Store.memory()
    store.add_classes(names, [None] * len(names))
    return store


def test_new_classes_take_the_free_digits_one_to_nine_and_the_tenth_has_none():
    names = [f"class{i:02d}" for i in range(10)]
    store = _store_with(names)
    assert _keys(store) == {**{name: str(i + 1) for i, name in enumerate(names[:9])}, "class09": None}


def test_a_key_is_set_stored_and_read_back_lower_case(tmp_path):
    path = tmp_path / "p.duckdb"
    with Store.open(path) as store:
        store.add_classes(["circle", "square"], [None, None])
        assert set_class_keys(store, [("circle", "C")]) == {"circle": "c", "square": "2"}
    with Store.open(path) as reopened:
        assert _keys(reopened) == {"circle": "c", "square": "2"}


@pytest.mark.parametrize("changes, fragment", [
    ([("square", "1")], "key '1' is already the key of class 'circle'"),
    ([("circle", "cc")], "key 'cc' for class 'circle' is not one letter or digit"),
    ([("circle", "é")], "is not one letter or digit"),
    ([("circle", "[")], "is not one letter or digit"),
    ([("hexagon", "h")], "unknown class 'hexagon'; classes: circle, square, other"),
    ([("circle", "a")], "the page's key for accept"),
    ([("circle", "N")], "the page's key for none of these"),
    ([("circle", "u")], "the page's key for undo"),
    ([("circle", "s")], "the page's key for more like this"),
    ([("circle", "c"), ("square", "c")], "key 'c' is already the key of class"),
    ([("circle", "c"), ("circle", "d")], "class 'circle' is given two keys ('c' and 'd')"),
])
def test_a_bad_key_is_refused_in_one_line_and_nothing_changes(changes, fragment):
    store = _store_with(["circle", "square", "other"])
    before = _keys(store)
    with pytest.raises(LabelloopError) as refused:
        set_class_keys(store, changes)
    message = str(refused.value)
    assert fragment in message and "\n" not in message
    assert _keys(store) == before


def test_two_classes_swap_keys_in_one_go_and_an_empty_key_takes_one_away():
    current = {"circle": "1", "square": "2", "other": "3"}
    assert class_keys_after(current, [("circle", "2"), ("square", "1"), ("other", "")]) == \
        {"circle": "2", "square": "1", "other": None}
    assert current == {"circle": "1", "square": "2", "other": "3"}  # the argument is left as it was


def test_a_renamed_class_keeps_its_key_and_a_removed_class_frees_it():
    store = _store_with(["circle", "square", "other"])
    set_class_keys(store, [("circle", "c")])
    circle = next(c["id"] for c in store.classes() if c["name"] == "circle")
    store.rename_class(circle, "ring")
    assert _keys(store) == {"ring": "c", "square": "2", "other": "3"}
    store.remove_class(circle)
    assert set_class_keys(store, [("square", "c")]) == {"square": "c", "other": "3"}
    store.add_classes(["star"], [None])  # takes the lowest free digit
    assert _keys(store)["star"] == "1"


def test_a_project_made_before_keys_gives_its_first_nine_classes_the_keys_1_to_9(tmp_path, monkeypatch):
    path = tmp_path / "old.duckdb"
    names = [f"class{i:02d}" for i in range(11)]
    with monkeypatch.context() as old:  # the schema before migration 9 gave classes keys
        old.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:8])
        old.setattr(store_module, "SCHEMA_VERSION", 8)
        Store.open(path).close()
    with duckdb.connect(str(path)) as con:  # the classes such a project held
        con.executemany("INSERT INTO classes VALUES (?, ?, NULL)", list(enumerate(names)))
    with Store.open(path) as store:
        assert _keys(store) == {**{name: str(i + 1) for i, name in enumerate(names[:9])},
                                "class09": None, "class10": None}
