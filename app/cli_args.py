"""Argument parsing for the `labelloop` command line that answers bad input with one line saying what to do."""

from __future__ import annotations

import argparse


class OneLineParser(argparse.ArgumentParser):
    """argparse prints a usage block on bad input; we print one line that says what to do."""

    def error(self, message: str):
        self.exit(2, f"labelloop: error: {message} (see `{self.prog} --help`)\n")


def at_least(lowest: int, highest: int | None = None):
    """An argparse type: an integer in [lowest, highest], else one line saying the range."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < lowest or (highest is not None and value > highest):
            span = f"between {lowest} and {highest}" if highest is not None else f"at least {lowest}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {value}")
        return value

    return parse


def search_text(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("the search text is empty; describe what the images show, e.g. 'a red star'")
    return text


def cosine_threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value <= 1.0:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"must be a cosine similarity in (0, 1], got {text}")
    return value


def class_key(text: str) -> tuple[str, str]:
    """NAME=KEY, e.g. circle=c (KEY empty: the class has no key); the class and the key are checked by the engine."""
    name, equals, key = text.rpartition("=")
    if not equals or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not CLASS=KEY; give e.g. --key circle=c")
    return name.strip(), key
