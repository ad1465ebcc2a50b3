"""The map's pure functions: PCA layout, the sample a large map draws, the density layer, box and lasso hits."""

import numpy as np
import pytest

from engine.learning.map_layout import (MIN_UMAP_IMAGES, density_grid, map_sample, pca_components, pca_layout,
                                        nearest_rows, place_by_landmarks, points_in_box, points_in_polygon, umap_layout)


def clusters(count: int, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim)) * 5
    which = rng.integers(0, 3, count)
    return (centres[which] + rng.normal(size=(count, dim))).astype(np.float32), which


def test_pca_layout_follows_the_direction_of_most_variance():
    rng = np.random.default_rng(1)
    vectors = np.zeros((500, 8), np.float32)
    vectors[:, 3] = rng.normal(size=500) * 10  # most variance
    vectors[:, 5] = rng.normal(size=500) * 3  # second most
    vectors += rng.normal(size=vectors.shape).astype(np.float32) * 0.01
    layout = pca_layout(vectors)
    assert layout.shape == (500, 2) and layout.dtype == np.float32
    assert abs(np.corrcoef(layout[:, 0], vectors[:, 3])[0, 1]) > 0.999
    assert abs(np.corrcoef(layout[:, 1], vectors[:, 5])[0, 1]) > 0.999
    np.testing.assert_allclose(layout.mean(axis=0), 0, atol=1e-3)


def test_pca_layout_is_the_same_for_the_same_vectors_and_chunking_does_not_change_it():
    vectors, _ = clusters(300)
    first = pca_layout(vectors)
    np.testing.assert_array_equal(first, pca_layout(vectors.copy()))
    np.testing.assert_allclose(pca_components(vectors, 5)[:, :2], first, rtol=1e-4, atol=1e-4)


def test_pca_layout_keeps_clusters_apart():
    vectors, which = clusters(600)
    layout = pca_layout(vectors)
    centres = np.array([layout[which == k].mean(axis=0) for k in range(3)])
    spread = max(layout[which == k].std(axis=0).max() for k in range(3))
    gaps = [np.linalg.norm(centres[a] - centres[b]) for a in range(3) for b in range(a + 1, 3)]
    assert min(gaps) > 2 * spread


def test_pca_layout_handles_one_image_and_refuses_bad_input():
    assert pca_layout(np.ones((1, 4), np.float32)).shape == (1, 2)
    with pytest.raises(ValueError, match="non-empty"):
        pca_layout(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="NaN"):
        pca_layout(np.full((3, 4), np.nan))


def test_map_sample_keeps_everything_that_fits_and_the_kept_rows_when_sampling():
    np.testing.assert_array_equal(map_sample(10, 100), np.arange(10))
    keep = np.array([3, 999, 500])
    rows = map_sample(1000, 100, keep=keep, seed=2)
    assert len(rows) == 100 and len(np.unique(rows)) == 100 and np.all(np.diff(rows) > 0)
    assert set(keep) <= set(rows.tolist())
    np.testing.assert_array_equal(rows, map_sample(1000, 100, keep=keep, seed=2))
    assert len(map_sample(1000, 2, keep=keep)) == 2  # more to keep than fits: a sample of them
    with pytest.raises(ValueError):
        map_sample(10, 5, keep=np.array([10]))


def test_density_grid_counts_every_point_once():
    rng = np.random.default_rng(3)
    xy = rng.normal(size=(5000, 2))
    counts, x_centres, y_centres = density_grid(xy, 40)
    assert counts.shape == (40, 40) and counts.sum() == 5000
    assert x_centres[0] > xy[:, 0].min() and x_centres[-1] < xy[:, 0].max()
    assert counts[20, 20] > counts[0, 0]  # indexed [y, x]: the middle of a normal cloud is densest


def test_box_and_lasso_select_what_lies_inside():
    xy = np.array([[0.5, 0.5], [2.0, 0.5], [0.5, 2.0], [1.0, 1.0], [-1.0, 0.0]])
    np.testing.assert_array_equal(points_in_box(xy, (1.0, 0.0), (0.0, 1.0)), [True, False, False, True, False])
    triangle = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    np.testing.assert_array_equal(points_in_polygon(xy, triangle), [True, True, True, True, False])
    square_with_notch = np.array([[0, 0], [2, 0], [2, 2], [1, 1.2], [0, 2]], float)
    np.testing.assert_array_equal(points_in_polygon(np.array([[1.0, 1.5], [1.0, 0.5]]), square_with_notch),
                                  [False, True])
    with pytest.raises(ValueError):
        points_in_polygon(xy, triangle[:2])


@pytest.mark.slow
def test_umap_layout_keeps_clusters_apart_and_places_the_images_it_did_not_fit():
    vectors, which = clusters(300, seed=4)
    layout = umap_layout(vectors, landmarks=150)
    assert layout.shape == (300, 2) and np.isfinite(layout).all()
    centres = np.array([np.median(layout[which == k], axis=0) for k in range(3)])
    for k in range(3):
        own = np.linalg.norm(layout[which == k] - centres[k], axis=1)
        nearest_other = min(np.linalg.norm(centres[k] - centres[j]) for j in range(3) if j != k)
        assert np.median(own) < nearest_other / 2
    with pytest.raises(ValueError, match="at least"):
        umap_layout(vectors[:MIN_UMAP_IMAGES - 1])


def test_an_image_is_placed_among_its_nearest_landmarks():
    landmarks = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]], np.float32)
    landmark_xy = np.array([[1.0, 1.0], [5.0, 1.0], [1.0, 5.0], [5.0, 5.0]], np.float32)
    points = np.array([[0.0, 0.0], [0.1, 0.0], [4.0, 0.0], [5.0, 0.0]], np.float32)
    placed = place_by_landmarks(points, landmarks, landmark_xy, neighbors=2)
    np.testing.assert_allclose(placed[:2], [[1.0, 1.0], [1.0, 1.0]], atol=1e-3)  # on or next to a landmark: its place
    assert 1.0 < placed[2][0] < 1.5 and placed[2][1] == pytest.approx(1.0)  # nearer one: pulled a little to the other
    np.testing.assert_allclose(placed[3], [3.0, 1.0], atol=1e-4)  # halfway between two: halfway between their places
    with pytest.raises(ValueError, match="landmark_xy"):
        place_by_landmarks(points, landmarks, landmark_xy[:3])


def test_nearest_rows_are_exact_and_nearest_first():
    rng = np.random.default_rng(5)
    points, candidates = rng.normal(size=(50, 6)).astype(np.float32), rng.normal(size=(200, 6)).astype(np.float32)
    rows, distances = nearest_rows(points, candidates, 4)
    exact = np.linalg.norm(points[:, None] - candidates[None], axis=2)
    np.testing.assert_array_equal(rows, np.argsort(exact, axis=1)[:, :4])
    np.testing.assert_allclose(distances, np.sort(exact, axis=1)[:, :4], rtol=1e-4, atol=1e-4)
