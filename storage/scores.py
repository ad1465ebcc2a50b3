"""SQL for a round's per-image scores: out-of-sample probabilities of the person's labels, with the one definition
of a possible label mistake, and outlier scores (mixed into Store)."""

from __future__ import annotations

import numpy as np

from storage.labels import CONFIRMED

# A possible label mistake (Cleanlab's "predicted_neq_given" over out-of-sample probabilities, Northcutt et al.,
# "Confident Learning", 2021): a person's class label that the round's cross-fitted student, which never trained on
# it, predicts as another class. Ranked by Cleanlab's normalized margin, the out-of-sample probability of the given
# label minus that of the best other class (here the predicted one; lower = more likely a mistake). Measured by
# bench_selftrain's planted-mistakes procedure (20 wrong of 200 labels, share in the first 40; its seed 0 and seeds
# 1 / 2): margin 0.75 / 0.90 / 0.90 on inked_digits and 0.80 / 0.85 / 0.75 on shapes_and_digits, against 0.70 /
# 0.75 / 0.70 and 0.70 / 0.60 / 0.65 by self-confidence alone; 1.00 on the demo either way (seed 0). A label
# changed since the round is judged as it is now; one the person confirmed (gave again as it was, see
# `confirm_labels`) is not a possible mistake while it keeps that class: the flag's evidence does not change from one
# round to the next, and a person asked the same question every round would stop trusting the flags.
# engine.learning.review_ranking's `label_quality` is the same rule over arrays; the gallery's mistakes filter reads
# this query (parameter $round), and its tiles the class the students predict instead (`predicted`).
LABEL_MISTAKES = """
    SELECT c.image_id, c.probs[list_position(c.class_ids, l.class_id)] - list_max(c.probs) AS margin,
           c.class_ids[list_position(c.probs, list_max(c.probs))] AS predicted
    FROM crossfit_probs c JOIN labels l ON l.image_id = c.image_id
    WHERE c.round = $round AND l.source = 'human' AND l.class_id IS NOT NULL
      AND list_contains(c.class_ids, l.class_id)
      AND c.class_ids[list_position(c.probs, list_max(c.probs))] <> l.class_id
      AND NOT """ + CONFIRMED


class ScoreQueries:
    def label_mistakes(self, round_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(image ids (M,), normalized margin (M,), <= 0) of the possible label mistakes of `round_id`, most likely
        first."""
        rows = self._query(f"SELECT * FROM ({LABEL_MISTAKES}) ORDER BY margin, image_id",
                           {"round": round_id})
        return (np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.float32))

    def crossfit_matrix(self, round_id: int) -> tuple[np.ndarray, list[int], np.ndarray] | None:
        """(image ids (H,), class ids, out-of-sample probs (H, C)) of one round; None if it stored none."""
        rows = self._query("SELECT image_id, class_ids, probs FROM crossfit_probs WHERE round = ? ORDER BY image_id",
                           [round_id])
        if not rows:
            return None
        return np.array([r[0] for r in rows], np.int64), list(rows[0][1]), np.array([r[2] for r in rows], np.float32)

    def outlier_scores(self, round_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(image ids (N,), outlier score (N,)) of one round, by image id; higher = fits no class more."""
        rows = self._query("SELECT image_id, score FROM outlier_scores WHERE round = ? ORDER BY image_id", [round_id])
        return np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.float32)
