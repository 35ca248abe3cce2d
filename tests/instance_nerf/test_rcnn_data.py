"""NeRF-RCNN data: grid/GT loading and resampling, errors that name the file, augmentation consistency,
the deterministic training stream."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nerfseg.instance_nerf.rcnn.data import (
    TrainStream,
    augment_sample,
    flip_sample,
    load_feature_grid,
    load_scene_sample,
    resample_labels_nearest,
    rot90_sample,
    working_shape,
)
from nerfseg.instance_nerf.rcnn.synthetic import make_scene, write_synthetic_benchmark
from nerfseg.errors import InputError


def _mask_box(instance: np.ndarray, i: int) -> np.ndarray:
    """Voxel-unit AABB of the voxels labelled ``i``: [min index, max index + 1] per axis."""
    idx = np.argwhere(instance == i)
    return np.concatenate([idx.min(0), idx.max(0) + 1]).astype(np.float32)


def _check_consistent(s) -> None:
    for b, i in zip(s.boxes, s.ids):
        np.testing.assert_allclose(_mask_box(s.instance, i), b, atol=1e-5)
    # the grid moved with the labels: object voxels are opaque and coloured, the instance grid says so
    assert (s.grid[..., 3][s.instance > 0] > 0.85).all()
    assert s.grid.shape[:3] == s.instance.shape


def test_augmentation_keeps_boxes_masks_and_grid_consistent():
    base = make_scene((20, 14, 9), boxes=np.array([[1, 2, 1, 6, 5, 4], [10, 3, 2, 19, 13, 8], [7, 8, 1, 9, 13, 3]]), classes=[1, 4, 9])
    _check_consistent(base)
    for s in (flip_sample(base, 0), flip_sample(base, 1), rot90_sample(base), rot90_sample(rot90_sample(base))):
        _check_consistent(s)
    r = rot90_sample(base)
    assert r.grid.shape[:3] == (14, 20, 9)
    # hand check of the rotation: new (x, y) = (Y - y, x); box 0 (1..6, 2..5) -> (14-5..14-2, 1..6)
    np.testing.assert_allclose(r.boxes[0], [9, 1, 1, 12, 6, 4])
    # four quarter turns are the identity
    s4 = base
    for _ in range(4):
        s4 = rot90_sample(s4)
    np.testing.assert_array_equal(s4.grid, base.grid)
    np.testing.assert_allclose(s4.boxes, base.boxes)
    seen = set()
    for seed in range(64):
        s = augment_sample(base, np.random.default_rng(seed), 0.5, 0.5)
        _check_consistent(s)
        seen.add((s.grid.shape, tuple(np.round(s.boxes[0], 3))))
        np.testing.assert_array_equal(s.labels, base.labels)
    assert len(seen) == 8  # all 8 symmetries of the floor square are reached


def test_resample_labels_nearest_at_voxel_centres():
    lab = np.arange(4 * 2 * 3).reshape(4, 2, 3)
    up = resample_labels_nearest(lab, (8, 4, 6))
    np.testing.assert_array_equal(up, lab.repeat(2, 0).repeat(2, 1).repeat(2, 2))
    down = resample_labels_nearest(up, (4, 2, 3))
    np.testing.assert_array_equal(down, lab)
    # 3 -> 2 voxels: target centres 0.25, 0.75 of the axis -> source voxels 0 and 2
    np.testing.assert_array_equal(resample_labels_nearest(np.array([[[5]], [[6]], [[7]]]), (2, 1, 1)).ravel(), [5, 7])
    assert working_shape((160, 120, 64), 80) == (80, 60, 32)
    assert working_shape((50, 40, 30), None) == (50, 40, 30)


def test_feature_grid_errors_name_file_and_problem(tmp_path):
    p = tmp_path / "s.npz"
    np.savez(p, other=np.zeros(3))
    with pytest.raises(InputError, match=r"s\.npz \[rgbsigma\]: missing"):
        load_feature_grid(p)
    np.savez(p, rgbsigma=np.zeros((4, 4, 4, 3), np.float32))
    with pytest.raises(InputError, match=r"expected shape \(X, Y, Z, 4\)"):
        load_feature_grid(p)
    raw = np.zeros((4, 4, 4, 4), np.float32)
    raw[..., 3] = -10000.0  # instant-ngp's raw log-density where empty
    np.savez(p, rgbsigma=raw)
    with pytest.raises(InputError, match="not raw density"):
        load_feature_grid(p)
    with pytest.raises(InputError, match="not found"):
        load_feature_grid(tmp_path / "missing.npz")
    ok = np.random.default_rng(0).uniform(0, 1, (3, 4, 5, 4)).astype(np.float32)
    np.savez(p, rgbsigma=ok)
    np.testing.assert_array_equal(load_feature_grid(p), ok)
    np.savez(p, rgbsigma=(ok * 255).astype(np.uint8))
    assert load_feature_grid(p).max() <= 1.0


def test_load_scene_sample_resamples_grid_and_boxes(tmp_path):
    ids = write_synthetic_benchmark(tmp_path, {"train": 1, "val": 1}, shape=(48, 40, 24), seed=3)
    full = load_scene_sample(tmp_path, ids["train"][0], None)
    half = load_scene_sample(tmp_path, ids["train"][0], 24)
    assert full.grid.shape == (48, 40, 24, 4) and half.grid.shape == (24, 20, 12, 4)
    assert half.instance.shape == (24, 20, 12)
    np.testing.assert_allclose(half.boxes, full.boxes / 2, atol=1e-4)
    _check_consistent(full)
    np.testing.assert_array_equal(full.ids, half.ids)
    assert set(full.labels.tolist()) <= set(range(1, 11))
    # a grid over a different box than the GT is refused
    fpath = tmp_path / "features" / f"{ids['val'][0]}.npz"
    with np.load(fpath) as z:
        grid = z["rgbsigma"]
    np.savez(fpath, rgbsigma=grid, bbox_min=np.zeros(3), bbox_max=np.ones(3))
    with pytest.raises(InputError, match="bbox_min"):
        load_scene_sample(tmp_path, ids["val"][0], None)


def test_train_stream_is_deterministic_and_resumable(tmp_path):
    ids = write_synthetic_benchmark(tmp_path, {"train": 3}, shape=(16, 12, 8), size_range=(3, 5), seed=1)
    a = TrainStream(tmp_path, ids["train"], 12, None, seed=5)
    b = TrainStream(tmp_path, ids["train"], 12, None, seed=5, start=7, cache=False)
    assert len(a) == 12 and len(b) == 5
    for k in range(7, 12):
        sa, sb = a[k], b[k - 7]
        assert sa.scene_id == sb.scene_id
        np.testing.assert_array_equal(sa.grid, sb.grid)
        np.testing.assert_array_equal(sa.boxes, sb.boxes)
    # every epoch visits every scene once
    assert sorted(a.scene_of(k) for k in range(3)) == sorted(ids["train"])
    assert sorted(a.scene_of(k) for k in range(3, 6)) == sorted(ids["train"])
    with pytest.raises(InputError, match="no training scenes"):
        TrainStream(tmp_path, [], 1, None)
