"""The one definition of what an image shows for a round: a person's label, else the round's prediction. The page,
its header, bulk accept, the histogram and export all read it."""

# A label an image shows for round $round: a person's, or a pseudo-label from that round. One from a round over a
# class set since changed is stale, and the page, the header and export must not show it.
SHOWN_LABEL = "(l.source = 'human' OR l.round = $round)"


def shown_predictions(only: str = "TRUE") -> str:
    """SQL: the prediction each image shows for round `$round`, one row per image that has one: that round's teacher
    prediction, else zero-shot's (round 0). `$round` is the shown round (Store.shown_round), so a round over a class
    set since changed is not shown. `only`, a condition on `p.image_id`, computes it for some images alone.
    Columns: image_id; label, confidence, source and round of the shown prediction; zero_shot (zero-shot's class);
    disagree (the round's teacher predicts another class than zero-shot); zero_shot_classes, zero_shot_probs,
    teacher_classes, teacher_probs and teacher_round (NULL where there is no such prediction)."""
    return f"""
        SELECT image_id, coalesce(t.label, z.label) AS label, coalesce(t.confidence, z.confidence) AS confidence,
               coalesce(t.source, z.source) AS source, coalesce(t.round, z.round) AS round,
               z.label AS zero_shot, coalesce(t.label <> z.label, FALSE) AS disagree,
               z.class_ids AS zero_shot_classes, z.probs AS zero_shot_probs,
               t.class_ids AS teacher_classes, t.probs AS teacher_probs, t.round AS teacher_round
        FROM (SELECT p.* FROM predictions p WHERE p.round = 0 AND {only}) z
        FULL JOIN (SELECT p.* FROM predictions p WHERE p.round = $round AND p.round > 0 AND {only}) t
        USING (image_id)"""
