"""keep_unmatched_segments: prior segments no detection matched become extra, view-consistent 3D instances."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nerfseg.instance_nerf.matching import VoxelCloud, project_cloud
from nerfseg.instance_nerf.method import make_config
from nerfseg.instance_nerf.pipeline import backproject_pixels, gt3d_detections, keep_detections, lift_unmatched_segments, match_train_views
from nerfseg import spec
from nerfseg.cameras import Intrinsics
from nerfseg.gt3d import read_gt3d
from nerfseg.io import read_png
from nerfseg.methods import SceneData
from tests.demo_bench import build_one_room_benchmark


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> SceneData:
    root = tmp_path_factory.mktemp("unmatched")
    bench = build_one_room_benchmark(root, width=64, height=48, focal=40.0, num_views=16, grid_resolution=32, priors=("gt",))
    return SceneData(spec.scene_dir(bench, spec.scenes_in_split(bench, "train")[0]), "gt")


def _views(scene: SceneData):
    """A stand-in for the radiance trainer's ray bank (train views at full resolution) and the GT depths."""
    info = scene.info
    frames = info.frames_in("train")
    intr = Intrinsics(info.width, info.height, info.fl_x, info.fl_y, info.cx, info.cy)
    bank = SimpleNamespace(frame_names=[f.name for f in frames], c2w=torch.tensor([f.transform_matrix for f in frames], dtype=torch.float32),
                           intr=intr, height=info.height, width=info.width, num_frames=len(frames))
    depths = np.stack([read_png(scene.path / spec.DEPTH_DIR / f"{f.name}.png", expect="gray16").astype(np.float64) / spec.DEPTH_SCALE for f in frames])
    return SimpleNamespace(rays=bank, config=SimpleNamespace(downscale=1)), depths


def test_backprojection_inverts_projection() -> None:
    intr = Intrinsics(40, 30, 35.0, 36.0, 20.5, 14.0)
    c2w = np.eye(4)
    c2w[:3, 3] = [0.3, -0.2, 2.0]
    pts = backproject_pixels(c2w, intr, np.array([3.0, 17.0]), np.array([8.0, 31.0]), np.array([1.5, 2.5]))
    grid = np.zeros((1, 1, 1), dtype=np.int32)
    for p, (v, u) in zip(pts, [(3, 8), (17, 31)]):
        grid[0, 0, 0] = 1
        label = project_cloud(VoxelCloud(grid, p - 1e-3, p + 1e-3), c2w, intr, splat="point")[0]
        assert label[v, u] == 1


def test_a_missed_object_comes_back_from_the_prior(scene: SceneData) -> None:
    gt = read_gt3d(scene.path / spec.GT3D_H5)
    shape = gt.instance.shape
    det = gt3d_detections(scene.path / spec.GT3D_H5, shape, gt.bbox_min, gt.bbox_max)
    full = keep_detections(det, gt.bbox_min, gt.bbox_max, 0.5)
    trainer, depths = _views(scene)
    tol = 2.0 * float(np.mean((gt.bbox_max - gt.bbox_min) / np.asarray(shape)))
    labels_full = match_train_views(trainer, scene, full, depths, tol)
    # the "detector" misses the instance with the most matched pixels
    counts = np.bincount(labels_full[labels_full > 0].ravel(), minlength=len(full) + 1)
    missed = int(np.argmax(counts)) - 1
    keep = np.array([k for k in range(len(full)) if k != missed])
    kept = type(full)(full.boxes[keep], full.labels[keep], full.scores[keep], full.masks[keep], full.bbox_min, full.bbox_max)
    labels = match_train_views(trainer, scene, kept, depths, tol)
    assert (labels_full == missed + 1).sum() > 100 and not (labels == len(kept) + 1).any()

    out, added = lift_unmatched_segments(trainer, scene, kept, labels, depths)
    assert added >= 1 and len(out) == len(kept) + added
    np.testing.assert_array_equal(out.masks[: len(kept)], kept.masks)  # detections untouched, extras after them
    # the best extra is the missed object: right class, its voxels on the missed instance's surface (the lifted
    # points lie on the surface, so within one voxel of the solid GT mask)
    near = full.masks[missed].copy()
    for axis in range(3):
        for step in (-1, 1):
            near |= np.roll(full.masks[missed], step, axis=axis)
    overlap = [(out.masks[len(kept) + j] & near).sum() / out.masks[len(kept) + j].sum() for j in range(added)]
    j = int(np.argmax(overlap))
    assert overlap[j] > 0.8 and out.labels[len(kept) + j] == full.labels[missed]
    assert out.scores[len(kept):].max() <= kept.scores.min()
    # matched again, the missed object's pixels carry ONE id in every view (consistent across views)
    again = match_train_views(trainer, scene, out, depths, tol)
    ids_there = again[labels_full == missed + 1]
    assert np.mean(ids_there == len(kept) + j + 1) > 0.8
    # off by default (the paper drops unmatched segments)
    assert make_config("mini").keep_unmatched_segments is False
    assert make_config("mini", keep_unmatched_segments="true").keep_unmatched_segments is True
    assert make_config("mini").unlabel_background_under_instances is False
    assert make_config("mini", unlabel_background_under_instances="true").unlabel_background_under_instances is True


def test_unlabel_background_under_instances_reaches_the_scene_matching(scene: SceneData) -> None:
    """The switch threaded through match_train_views: only background labels change, each to -1, and only on
    pixels a kept instance covers (here the dilated silhouettes of the GT instances under the GT prior)."""
    gt = read_gt3d(scene.path / spec.GT3D_H5)
    kept = keep_detections(gt3d_detections(scene.path / spec.GT3D_H5, gt.instance.shape, gt.bbox_min, gt.bbox_max), gt.bbox_min, gt.bbox_max, 0.5)
    trainer, depths = _views(scene)
    tol = 2.0 * float(np.mean((gt.bbox_max - gt.bbox_min) / np.asarray(gt.instance.shape)))
    paper = match_train_views(trainer, scene, kept, depths, tol)
    switched = match_train_views(trainer, scene, kept, depths, tol, unlabel_background_under_instances=True)
    changed = paper != switched
    assert changed.any() and np.all(paper[changed] == 0) and np.all(switched[changed] == -1)
    assert (switched == 0).sum() > 0.5 * (paper == 0).sum()  # the walls and floor stay background
