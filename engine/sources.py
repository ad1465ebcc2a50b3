"""Where a label or a prediction comes from: the values of the `source` column of labels and of predictions."""

from enum import StrEnum


class Source(StrEnum):
    """A str: it compares, hashes, formats and is stored as its value, so it stands wherever those strings do."""

    HUMAN = "human"  # a person's label
    PSEUDO = "pseudo"  # a label a round took from its own confident prediction
    ZEROSHOT = "zeroshot"  # a prediction of CLIP zero-shot (round 0)
    TEACHER = "teacher"  # a prediction of a round's teacher
