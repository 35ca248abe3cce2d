"""Mask refinement: the guided-filter refiner, per-instance recomposition, CascadePSP's no-download contract."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from nerfseg.instance_nerf.refine import (
    CascadePSPRefiner,
    EdgeAwareRefiner,
    Refiner,
    guided_filter,
    refine_instance_map,
)
from nerfseg.errors import InputError

H, W = 120, 160


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def square_scene(seed: int, same_colour: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured image with a sharp-edged square (a different colour unless ``same_colour``) and its depth map
    (square at 2 m in front of a 3.5 m background)."""
    rng = np.random.default_rng(seed)
    square = np.zeros((H, W), dtype=bool)
    square[35:85, 50:115] = True
    img = rng.normal(110, 12, (H, W, 3))
    if not same_colour:
        img[square] = rng.normal([200, 80, 60], 12, (int(square.sum()), 3))
    depth = np.where(square, 2.0, 3.5) + rng.normal(0, 0.01, (H, W))
    return np.clip(img, 0, 255).astype(np.uint8), square, depth


def noisy(square: np.ndarray, seed: int) -> np.ndarray:
    """Errors of a projected voxel mask: 8-px blocks, a boundary shifted by a few pixels, 6% flipped pixels."""
    rng = np.random.default_rng(seed)
    coarse = ndimage.zoom(square[::8, ::8].astype(float), 8, order=0)[:H, :W] > 0.5
    shifted = np.roll(np.roll(square, 3, 0), -4, 1)
    mask = coarse | shifted if seed % 2 else coarse & ndimage.binary_dilation(shifted, iterations=2)
    return mask ^ (rng.random((H, W)) < 0.06)


@pytest.mark.parametrize("seed", [0, 1])
def test_edge_aware_refiner_pulls_a_noisy_mask_onto_the_square(seed: int) -> None:
    img, square, depth = square_scene(seed)
    mask = noisy(square, seed)
    before = iou(mask, square)
    for d in (depth, None):
        out = EdgeAwareRefiner().refine(img, mask, d)
        assert out.shape == (H, W) and out.dtype == np.float64 and out.min() >= 0 and out.max() <= 1
        after = iou(out > 0.5, square)
        assert after > before + 0.2 and after > 0.85, (before, after)
    # a larger finest radius removes the rest of this (strong) noise
    assert iou(EdgeAwareRefiner(radius=4).refine(img, mask, depth) > 0.5, square) > 0.97


def test_a_correct_mask_stays_correct() -> None:
    img, square, depth = square_scene(3)
    assert iou(EdgeAwareRefiner().refine(img, square, depth) > 0.5, square) > 0.99
    assert not EdgeAwareRefiner().refine(img, np.zeros((H, W), bool), depth).any()


def test_depth_edges_separate_an_object_of_the_background_colour() -> None:
    img, square, depth = square_scene(4, same_colour=True)
    shifted = np.roll(np.roll(square, 4, 0), -5, 1)
    with_depth = iou(EdgeAwareRefiner().refine(img, shifted, depth) > 0.5, square)
    rgb_only = iou(EdgeAwareRefiner().refine(img, shifted, None) > 0.5, square)
    assert with_depth > iou(shifted, square) + 0.1 and with_depth > rgb_only + 0.1


def test_guided_filter_keeps_what_the_guide_explains(rng: np.random.Generator) -> None:
    guide = rng.random((30, 40, 3))
    np.testing.assert_allclose(guided_filter(guide, np.full((30, 40), 0.7), 3, 1e-3), 0.7, atol=1e-9)
    linear = 0.2 + guide @ np.array([0.3, -0.1, 0.4])
    np.testing.assert_allclose(guided_filter(guide, linear, 3, 1e-8), linear, atol=1e-4)


def test_refine_all_agrees_with_refine() -> None:
    img, square, depth = square_scene(5)
    masks = [noisy(square, 5), np.roll(square, 3, 1)]
    refiner = EdgeAwareRefiner()
    for one, shared in zip([refiner.refine(img, m, depth) for m in masks], refiner.refine_all(img, masks, depth)):
        assert np.mean((one > 0.5) != (shared > 0.5)) < 1e-3


def test_bad_refiner_inputs() -> None:
    img, square, _ = square_scene(0)
    with pytest.raises(InputError, match="image"):
        EdgeAwareRefiner().refine(img[..., 0], square)
    with pytest.raises(InputError, match="mask"):
        EdgeAwareRefiner().refine(img, square[1:])
    with pytest.raises(InputError, match="depth"):
        EdgeAwareRefiner().refine(img, square, np.ones((3, 3)))
    with pytest.raises(InputError, match="radius"):
        EdgeAwareRefiner(radius=0)


# ---------------------------------------------------------------------------------------------
# recomposition


class Grow(Refiner):
    """A stand-in refiner: each mask grown by ``px`` pixels, as a soft mask of value ``level``."""

    def __init__(self, px: int = 3, level: float = 1.0):
        self.px, self.level = px, level
        self.seen: list[int] = []

    def refine(self, image: np.ndarray, mask: np.ndarray, depth: np.ndarray | None = None) -> np.ndarray:
        self.seen.append(int(mask.sum()))
        grown = ndimage.binary_dilation(mask, iterations=self.px) if self.px else mask  # iterations=0: until stable
        return grown * self.level


def test_recomposition_keeps_ids_background_and_puts_small_objects_on_top() -> None:
    labels = np.zeros((40, 50), dtype=np.int32)
    labels[5:35, 5:40] = 7  # large
    labels[15:20, 15:20] = 3  # small, inside the large one (e.g. a lamp in front of a wardrobe)
    labels[0, :] = -1  # an ignore label survives where no instance is refined onto it
    img = np.zeros((40, 50, 3), dtype=np.uint8)
    refiner = Grow(px=2)
    out = refine_instance_map(labels, img, None, refiner)
    assert out.dtype == np.int32
    assert refiner.seen == [30 * 35 - 25, 25]  # largest first
    grown_small = ndimage.binary_dilation(labels == 3, iterations=2)
    assert np.all(out[grown_small] == 3)  # the small object is on top, and grew over the large one
    assert np.all(out[(labels == 7) & ~grown_small] == 7)
    assert set(np.unique(out).tolist()) == {-1, 0, 3, 7}
    assert np.all(out[38:, :] == 0) and np.all(out[1:, 45:] == 0)  # far from any instance: background
    assert np.all(out[0, :] == -1)


def test_soft_masks_are_thresholded_at_one_half() -> None:
    labels = np.zeros((20, 20), dtype=np.int32)
    labels[5:10, 5:10] = 2
    img = np.zeros((20, 20, 3), dtype=np.uint8)
    assert np.array_equal(refine_instance_map(labels, img, None, Grow(px=0, level=0.6)), labels)
    assert not refine_instance_map(labels, img, None, Grow(px=0, level=0.4)).any()


def test_default_refiner_on_a_label_map() -> None:
    img, square, depth = square_scene(6)
    labels = np.where(noisy(square, 6), 4, 0).astype(np.int32)
    out = refine_instance_map(labels, img, depth)
    assert set(np.unique(out).tolist()) <= {0, 4}
    assert iou(out == 4, square) > iou(labels == 4, square) + 0.2
    with pytest.raises(InputError, match="label map"):
        refine_instance_map(labels.astype(float), img, depth)


# ---------------------------------------------------------------------------------------------
# CascadePSP: never downloads, clear errors


def test_cascadepsp_missing_weights_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "psp" / "model"
    with pytest.raises(InputError, match=str(missing)):
        CascadePSPRefiner(missing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="weights not found"):
        CascadePSPRefiner(tmp_path / "empty")


def test_cascadepsp_missing_package_names_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = tmp_path / "cascadepsp.pth"
    weights.write_bytes(b"not really weights")
    monkeypatch.setitem(sys.modules, "segmentation_refinement", None)  # import fails whether or not it is installed
    with pytest.raises(InputError, match="segmentation-refinement") as info:
        CascadePSPRefiner(weights)
    assert str(weights) in str(info.value)


def test_cascadepsp_is_told_not_to_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict] = []

    class FakeRefiner:
        def __init__(self, device: str = "cpu", model_folder: str | None = None, download_and_check_model: bool = True):
            model = Path(model_folder) / "model"
            calls.append({"device": device, "download": download_and_check_model, "bytes": model.read_bytes()})

        def refine(self, image: np.ndarray, mask: np.ndarray, fast: bool = False, L: int = 900) -> np.ndarray:
            assert mask.dtype == np.uint8 and set(np.unique(mask).tolist()) <= {0, 255}
            calls[-1].update(fast=fast, L=L)
            return mask  # the package returns uint8 0..255

    monkeypatch.setitem(sys.modules, "segmentation_refinement", types.SimpleNamespace(Refiner=FakeRefiner))
    weights = tmp_path / "psp_weights.bin"  # any file name: linked as <folder>/model for the package
    weights.write_bytes(b"W")
    refiner = CascadePSPRefiner(weights, L=700)
    soft = np.zeros((8, 8))
    soft[2:5, 2:5] = 0.8
    out = refiner.refine(np.zeros((8, 8, 3), np.uint8), soft)
    assert calls == [{"device": "cpu", "download": False, "bytes": b"W", "fast": False, "L": 700}]
    assert np.array_equal(out, (soft > 0.5).astype(float))
    folder = tmp_path / "psp"
    folder.mkdir()
    (folder / "model").write_bytes(b"F")
    CascadePSPRefiner(folder)
    assert calls[-1]["bytes"] == b"F" and calls[-1]["download"] is False
