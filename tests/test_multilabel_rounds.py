"""Multi-label rounds (issue 27): each tag refined over the kNN graph, the person's tags cross-fitted, and the
possible tag mistakes those scores flag, as pure functions and through the CLI's round and queue."""

from __future__ import annotations

import numpy as np

from tests.test_multilabel import multi_project  # noqa: F401 (a fixture)


def test_tag_mistakes_flag_an_answer_the_out_of_sample_model_predicts_otherwise():
    from engine.learning.tags import MISSING_TAG, WRONG_TAG, tag_mistakes

    probs = np.array([[0.9, 0.2, 0.6], [0.1, 0.7, 0.95]], np.float32)
    has = np.array([[False, False, True], [False, True, True]])
    looked = np.array([[True, True, True], [True, True, False]])
    margin, mistake = tag_mistakes(probs, has, looked)
    assert mistake.tolist() == [[MISSING_TAG, 0, 0], [0, 0, 0]]  # row 1's third tag: no one looked
    assert np.allclose(margin, [[-0.8, 0.6, 0.2], [0.8, 0.4, 1.0]])
    margin, mistake = tag_mistakes(np.array([[0.3]]), np.array([[True]]), np.array([[True]]))
    assert mistake.tolist() == [[WRONG_TAG]] and np.allclose(margin, [[-0.4]])


def test_refine_tags_spreads_each_tag_over_the_graph_and_holds_the_answers():
    from engine.learning.selftrain.propagate import affinity_matrix
    from engine.learning.selftrain.tag_propagation import refine_tags

    # two cliques of four images: tag 0 belongs to the first, tag 1 to the second
    neighbours = np.array([[j for j in range(4) if j != i] for i in range(4)]
                          + [[j for j in range(4, 8) if j != i] for i in range(4, 8)])
    affinity = affinity_matrix(neighbours, np.full(neighbours.shape, 0.9, np.float32))
    probs = np.full((8, 2), 0.5, np.float32)
    probs[0] = [0.1, 0.5]  # the head doubts image 0's tag 0, which its clique all have
    probs[1:4, 0], probs[4:, 0] = 0.9, 0.1
    has, looked = np.zeros((8, 2), bool), np.zeros((8, 2), bool)
    has[5, 1] = looked[5, 1] = True  # a person gave image 5 tag 1 ...
    looked[6, 1] = True  # ... and said image 6 lacks it
    refined = refine_tags(affinity, probs, has, looked, alpha=0.8)
    assert refined.shape == (8, 2) and refined[0, 0] > 0.5 and refined[4:, 0].max() < 0.5
    assert refined[5, 1] == 1.0 and refined[6, 1] == 0.0


def test_a_round_cross_fits_the_person_s_tags_and_finds_flipped_answers():
    from engine.learning.neighbours import knn_graph
    from engine.learning.selftrain.config import RoundConfig
    from engine.learning.selftrain.propagate import affinity_matrix
    from engine.learning.tags import MISSING_TAG, WRONG_TAG, tag_mistakes, zero_shot_tag_probs
    from engine.session.tag_rounds import tag_round
    from tests.synthetic import planted_embeddings

    x, y, text = planted_embeddings(600, 32, 4, seed=1, spread=0.3, text_noise=0.4)
    truth = np.eye(4, dtype=bool)[y]
    looked = np.zeros_like(truth)
    looked[:120] = True
    given = truth.copy()
    given[3, y[3]] = False  # a tag the person missed
    given[7, (y[7] + 1) % 4] = True  # one they gave wrongly
    config = RoundConfig()
    output = tag_round(x, text, 50.0, zero_shot_tag_probs(x, text), given & looked, looked, config,
                       affinity=affinity_matrix(*knn_graph(x, config.neighbours)))
    assert output.tagged.tolist() == list(range(120)) and output.crossfit_probs.shape == (120, 4)
    assert ((output.probs >= 0.5) == truth)[120:].mean() > 0.95
    margin, mistake = tag_mistakes(output.crossfit_probs, given[:120], looked[:120])
    assert mistake[3, y[3]] == MISSING_TAG and mistake[7, (y[7] + 1) % 4] == WRONG_TAG
    assert (mistake > 0).sum() <= 24  # under 5 % of the 480 answers flagged
    assert set(np.argsort(margin.min(axis=1))[:2].tolist()) == {3, 7}  # the two most doubted images


def test_a_round_writes_out_of_sample_scores_and_the_queue_names_a_doubted_tag_first(multi_project, tmp_path,
                                                                                       cli, cli_json):  # noqa: F811
    from engine.project.folder import open_project

    labels = tmp_path / "tags.csv"
    labels.write_text("path,label\n" + "".join(f"{path},{tags}\n" for path, tags in (
        ("img_00001.png", "circle;square"), ("img_00002.webp", ""), ("img_00005.jpg", "star"),
        ("img_00007.webp", "square"), ("img_00004.tiff", "circle"), ("sub/img_00003.bmp", "star;circle"))))
    assert cli("label", multi_project, "--csv", labels)[0] == 0
    metrics = cli_json("round", multi_project)[0]
    assert 0 <= metrics["human_accuracy_crossfit"] <= 1
    with open_project(multi_project) as project:
        image_ids, class_ids, probs = project.store.crossfit_matrix(1)
        assert len(image_ids) == 6 and probs.shape == (6, 3)
        from engine.session.tag_rounds import possible_tag_mistakes
        doubted = possible_tag_mistakes(project.store)
    queue = cli_json("queue", multi_project, "--k", "20")
    reasons = [item["reason"] for item in queue]
    assert reasons == ["possible missing tag" if probability >= 0.5 else "possible wrong tag"
                       for _, _, probability, _ in doubted] + ["least sure tag"] * 6
    assert [item["image_id"] for item in queue[:len(doubted)]] == [image_id for image_id, *_ in doubted]


def test_a_round_over_one_tagged_image_has_nothing_to_cross_fit(multi_project, tmp_path, cli, cli_json):  # noqa: F811
    labels = tmp_path / "one.csv"
    labels.write_text("path,label\nimg_00001.png,circle\n")
    assert cli("label", multi_project, "--csv", labels)[0] == 0
    metrics = cli_json("round", multi_project)[0]
    assert metrics["human_tags"] == 3 and metrics["human_accuracy_crossfit"] is None
    assert all(item["reason"] == "least sure tag" for item in cli_json("queue", multi_project, "--k", "20"))
