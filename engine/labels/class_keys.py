"""Each class's own key on the page: one letter or digit, not a key the page already uses, not another class's.

New classes take the free digits 1-9 (storage's `add_classes`); a person may give any class another key. The key
lives on the class, so a renamed class keeps it and a removed class frees it.
"""

from __future__ import annotations

from typing import Sequence

from engine.errors import LabelloopError
from storage import Store

# The page's own single-character keys that a class could otherwise take ([ and ] are not letters or digits).
PAGE_KEYS = {"a": "accept", "n": "none of these", "s": "more like this", "u": "undo"}
KEY_CHARACTERS = "0123456789abcdefghijklmnopqrstuvwxyz"


def class_keys_after(current: dict[str, str | None], changes: Sequence[tuple[str, str]]) -> dict[str, str | None]:
    """Every class's key once `changes` apply to `current` (class name -> key, None = no key).

    `changes` are (class name, key) pairs; a key is one letter or digit (upper case is read as lower, as the page
    reads keys), "" takes a class's key away. They are checked together, so two classes can swap keys in one go.
    Raises a LabelloopError naming the first change that cannot be made; nothing is changed then."""
    keys = dict(current)
    given: dict[str, str] = {}
    for name, text in changes:
        if name not in keys:
            raise LabelloopError(f"unknown class {name!r}; classes: {', '.join(keys)}")
        key = text.strip().lower()
        if name in given and given[name] != key:
            raise LabelloopError(f"class {name!r} is given two keys ({given[name]!r} and {key!r}); give it one")
        if key and (len(key) != 1 or key not in KEY_CHARACTERS):
            raise LabelloopError(f"key {text!r} for class {name!r} is not one letter or digit; give one of a-z or 0-9")
        if key in PAGE_KEYS:
            raise LabelloopError(f"key {key!r} is the page's key for {PAGE_KEYS[key]}; give class {name!r} another "
                                 "letter or digit")
        given[name] = key
        keys[name] = key or None
    for name, key in given.items():
        holders = [other for other, other_key in keys.items() if other_key == key and other != name]
        if key and holders:
            raise LabelloopError(f"key {key!r} is already the key of class {holders[0]!r}; choose another key for "
                                 f"{name!r}, or give {holders[0]!r} another key too")
    return keys


def set_class_keys(store: Store, changes: Sequence[tuple[str, str]]) -> dict[str, str | None]:
    """Apply `changes` ((class name, key) pairs, see `class_keys_after`) to the project in one step; returns every
    class's key."""
    classes = store.classes()
    keys = class_keys_after({c["name"]: c["key"] for c in classes}, changes)
    store.set_class_keys({c["id"]: keys[c["name"]] for c in classes if keys[c["name"]] != c["key"]})
    return keys
