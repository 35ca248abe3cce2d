"""NeRF-RCNN geometric ops against hand-computed values: RoIAlign (crop-and-resize), mask crop/paste,
level assignment, box IoU, the box coder and NMS."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nerfseg.instance_nerf.rcnn.box_ops import (
    BoxCoder,
    batched_nms_3d,
    box_iou_3d,
    box_iou_3d_aligned,
    clip_boxes,
    nms_3d,
    remove_small_boxes,
)
from nerfseg.instance_nerf.rcnn.roi_align import (
    assign_levels,
    crop_and_resize_binary,
    multilevel_roi_align,
    paste_masks_3d,
    roi_align_3d,
)


def T(x, dtype=torch.float32):
    return torch.tensor(x, dtype=dtype)


# ------------------------------------------------------------------------------------------------ RoIAlign
def _ramp(shape, coef, offset):
    ix, iy, iz = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    return coef[0] * ix + coef[1] * iy + coef[2] * iz + offset


@pytest.mark.parametrize("stride", [1, 4])
def test_roi_align_linear_ramp_is_exact(stride):
    """Trilinear sampling reproduces a linear function exactly; samples outside the grid are 0."""
    shape = (6, 5, 7)
    feats = np.stack(
        [
            np.stack([_ramp(shape, (1.0, 2.0, 3.0), 0.5), _ramp(shape, (-1.0, 0.5, 0.25), 10.0)]),
            np.stack([_ramp(shape, (0.0, 1.0, 0.0), 2.0), _ramp(shape, (3.0, 0.0, -1.0), 0.0)]),
        ]
    ).astype(np.float32)  # (B=2, C=2, X, Y, Z)
    boxes = np.array([[2.0, 3.0, 1.0, 14.0, 10.0, 22.0], [-8.0, 0.0, 4.0, 10.0, 30.0, 9.0]], dtype=np.float32) * (stride / 4)
    batch = np.array([1, 0])
    n = 4
    out = roi_align_3d(T(feats), T(boxes), torch.tensor(batch), n, 1.0 / stride).numpy()
    assert out.shape == (2, 2, n, n, n)
    coefs = {0: [((1.0, 2.0, 3.0), 0.5), ((-1.0, 0.5, 0.25), 10.0)], 1: [((0.0, 1.0, 0.0), 2.0), ((3.0, 0.0, -1.0), 0.0)]}
    for k in range(2):
        t = np.arange(n) / (n - 1)
        idx = [(boxes[k, a] + (boxes[k, a + 3] - boxes[k, a]) * t) / stride - 0.5 for a in range(3)]
        gx, gy, gz = np.meshgrid(*idx, indexing="ij")
        inside = (gx >= 0) & (gx <= shape[0] - 1) & (gy >= 0) & (gy <= shape[1] - 1) & (gz >= 0) & (gz <= shape[2] - 1)
        for c, (co, off) in enumerate(coefs[int(batch[k])]):
            expect = np.where(inside, co[0] * gx + co[1] * gy + co[2] * gz + off, 0.0)
            np.testing.assert_allclose(out[k, c], expect, atol=1e-4)
    assert (out[1] == 0).any() and (out[1] != 0).any()  # the second box sticks out of the grid


def test_roi_align_hand_case_nonlinear():
    """A 2x2x2 grid with one corner off the linear pattern: hand-computed trilinear samples."""
    v = np.array([[[0, 1], [2, 3]], [[4, 5], [6, 12]]], dtype=np.float32)
    feats = T(v[None, None])
    # samples at coordinates 0.5, 1.0, 1.5 -> indices 0, 0.5, 1 on every axis
    out = roi_align_3d(feats, T([[0.5, 0.5, 0.5, 1.5, 1.5, 1.5]]), torch.tensor([0]), 3, 1.0)[0, 0].numpy()
    assert out[0, 0, 0] == pytest.approx(0.0)
    assert out[2, 2, 2] == pytest.approx(12.0)
    assert out[1, 1, 1] == pytest.approx((0 + 1 + 2 + 3 + 4 + 5 + 6 + 12) / 8)  # centre: mean of the 8 corners
    assert out[1, 2, 0] == pytest.approx((2 + 6) / 2)  # index (0.5, 1, 0)
    assert out[2, 1, 2] == pytest.approx((5 + 12) / 2)  # index (1, 0.5, 1)
    assert out[1, 2, 2] == pytest.approx((3 + 12) / 2)
    # a sample at index -0.25 (coordinate 0.25) is outside [0, size-1]: 0, not a blend with padding
    out2 = roi_align_3d(feats, T([[0.25, 0.5, 0.5, 1.5, 1.5, 1.5]]), torch.tensor([0]), 2, 1.0)[0, 0].numpy()
    assert out2[0, 0, 0] == 0.0 and out2[0, 1, 1] == 0.0
    assert out2[1, 1, 1] == pytest.approx(12.0)
    # crop size 1 samples the box centre
    out3 = roi_align_3d(feats, T([[0.5, 0.5, 0.5, 1.5, 1.5, 1.5]]), torch.tensor([0]), 1, 1.0)[0, 0, 0, 0, 0]
    assert float(out3) == pytest.approx(33 / 8)


def test_roi_align_gradient_flows():
    feats = torch.rand(1, 3, 4, 4, 4, requires_grad=True)
    out = roi_align_3d(feats, T([[0.5, 0.5, 0.5, 3.5, 3.5, 3.5]]), torch.tensor([0]), 5, 1.0)
    out.sum().backward()
    assert feats.grad is not None and float(feats.grad.abs().sum()) > 0


def test_assign_levels_hand_values():
    edges = [8.0, 39.0, 40.0, 80.0, 160.0, 320.0, 1000.0]
    boxes = T([[0, 0, 0, e, e, e] for e in edges])
    lv = assign_levels(boxes, num_levels=4, canonical_size=160.0).tolist()
    # floor(4 + log2(e / 160)) clamped to 2..5, as 0-based index into P2..P5
    assert lv == [0, 0, 0, 1, 2, 3, 3]


def test_multilevel_roi_align_reads_assigned_level():
    feats = [torch.full((1, 1, 64 // s, 64 // s, 64 // s), float(s)) for s in (4, 8, 16, 32)]
    boxes = T([[10, 10, 10, 20, 20, 20], [0, 0, 0, 64, 64, 64]])
    out = multilevel_roi_align(feats, (4, 8, 16, 32), boxes, torch.tensor([0, 0]), 3, canonical_size=64.0)
    assert float(out[0].max()) == 4.0  # edge 10 -> level floor(4 + log2(10/64)) = 1 -> clamped to P2 (stride 4)
    assert float(out[1].max()) == 16.0  # edge 64 -> P4


def test_crop_and_resize_binary_matches_roi_align():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, size=(9, 7, 8))
    lo = rng.uniform(-2, 5, size=(6, 3))
    boxes = np.concatenate([lo, lo + rng.uniform(0.5, 6, size=(6, 3))], axis=1).astype(np.float32)
    ids = rng.integers(1, 4, size=6)
    got = crop_and_resize_binary(torch.tensor(labels), T(boxes), torch.tensor(ids), 5).numpy()
    for k in range(6):
        mask = (labels == ids[k]).astype(np.float32)
        ref = roi_align_3d(T(mask[None, None]), T(boxes[k : k + 1]), torch.tensor([0]), 5, 1.0)[0, 0].numpy()
        np.testing.assert_allclose(got[k], ref, atol=1e-5)


def test_paste_masks_hand_case_and_round_trip():
    shape = (10, 8, 6)
    boxes = T([[2.0, 1.0, 0.0, 7.0, 5.0, 3.0], [-3.0, 4.2, 2.6, 4.0, 20.0, 5.4]])
    ones = torch.ones(2, 6, 6, 6)
    pasted = paste_masks_3d(ones, boxes, shape).numpy()
    assert pasted.shape == (2, *shape)
    expect0 = np.zeros(shape, bool)
    expect0[2:7, 1:5, 0:3] = True
    np.testing.assert_array_equal(pasted[0], expect0)
    expect1 = np.zeros(shape, bool)
    expect1[0:4, 4:8, 3:5] = True  # voxel centres (v + 0.5) inside [x1, x2], clipped to the grid
    np.testing.assert_array_equal(pasted[1], expect1)
    # crop a box-shaped mask with its own box and paste it back: the same voxels
    inst = np.zeros(shape, np.int64)
    inst[3:9, 2:6, 1:5] = 7
    box = T([[3.0, 2.0, 1.0, 9.0, 6.0, 5.0]])
    crop = crop_and_resize_binary(torch.tensor(inst), box, torch.tensor([7]), 20)
    back = paste_masks_3d(crop, box, shape)[0].numpy()
    np.testing.assert_array_equal(back, inst == 7)
    # a mask that is empty in the box's upper x half stays empty there
    half = torch.ones(1, 4, 4, 4)
    half[0, 2:] = 0
    h = paste_masks_3d(half, T([[0.0, 0.0, 0.0, 8.0, 8.0, 6.0]]), shape)[0].numpy()
    assert h[:4].all() and not h[4:].any()


# ------------------------------------------------------------------------------------------------ boxes
def test_box_iou_hand_cases():
    a = T([[0, 0, 0, 1, 1, 1], [0, 0, 0, 2, 2, 2]])
    b = T([[0, 0, 0, 1, 1, 1], [0.5, 0, 0, 1.5, 1, 1], [1, 0, 0, 2, 1, 1], [5, 5, 5, 6, 6, 6]])
    iou = box_iou_3d(a, b).numpy()
    np.testing.assert_allclose(iou[0], [1.0, 1 / 3, 0.0, 0.0], atol=1e-6)  # same, half shift, touching, apart
    np.testing.assert_allclose(iou[1], [1 / 8, 1 / 8, 1 / 8, 0.0], atol=1e-6)  # unit cubes inside a 2-cube
    np.testing.assert_allclose(box_iou_3d_aligned(a, b[:2]).numpy(), [1.0, 1 / 8], atol=1e-6)
    # anisotropic: (0..4, 0..2, 0..1) vs (2..6, 1..3, 0..1): inter 2*1*1 = 2, union 8 + 8 - 2
    assert float(box_iou_3d(T([[0, 0, 0, 4, 2, 1]]), T([[2, 1, 0, 6, 3, 1]]))) == pytest.approx(2 / 14)
    # degenerate boxes give 0, not NaN
    assert float(box_iou_3d(T([[1, 1, 1, 1, 1, 1]]), T([[1, 1, 1, 1, 1, 1]]))) == 0.0


def test_box_coder_round_trip_and_hand_values():
    coder = BoxCoder()
    rng = np.random.default_rng(0)
    lo = rng.uniform(0, 50, size=(100, 3))
    ref = np.concatenate([lo, lo + rng.uniform(1, 30, size=(100, 3))], axis=1)
    lo2 = lo + rng.uniform(-5, 5, size=(100, 3))
    tgt = np.concatenate([lo2, lo2 + rng.uniform(1, 30, size=(100, 3))], axis=1)
    d = coder.encode(T(ref), T(tgt))
    np.testing.assert_allclose(coder.decode(d, T(ref)).numpy(), tgt, atol=1e-3)
    # hand: reference (0..2, 0..4, 0..8) -> target shifted by +1 in x, twice as tall in z
    d1 = coder.encode(T([[0, 0, 0, 2, 4, 8]]), T([[1, 0, -4, 3, 4, 12]]))[0].numpy()
    np.testing.assert_allclose(d1, [10 * 0.5, 0, 0, 0, 0, 5 * math.log(2)], atol=1e-5)
    assert coder.encode(T([[1, 2, 3, 4, 5, 6]]), T([[1, 2, 3, 4, 5, 6]])).abs().max() == 0
    # per-class decoding: (N, 6k) deltas -> (N, 6k) boxes, huge log-sizes are clipped
    many = coder.decode(torch.cat([torch.zeros(1, 6), torch.full((1, 6), 1e3)], dim=1), T([[0, 0, 0, 1, 1, 1]]))
    assert many.shape == (1, 12) and torch.isfinite(many).all()
    np.testing.assert_allclose(many[0, :6].numpy(), [0, 0, 0, 1, 1, 1], atol=1e-6)


def test_clip_and_remove_small():
    b = clip_boxes(T([[-1, 2, -3, 5, 12, 4], [3, 3, 3, 2, 2, 2]]), (4, 10, 3)).numpy()
    np.testing.assert_allclose(b[0], [0, 2, 0, 4, 10, 3])
    assert remove_small_boxes(T([[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 0.001, 1], [0, 0, 0, 2, 2, 2]]), 0.5).tolist() == [0, 2]


def test_nms_keeps_and_suppresses():
    boxes = T(
        [
            [0, 0, 0, 2, 2, 2],  # A 0.9
            [0.5, 0, 0, 2.5, 2, 2],  # B 0.8: IoU(A) = 1.5/2.5 = 0.6 -> suppressed
            [10, 10, 10, 12, 12, 12],  # C 0.7: apart -> kept
            [1.7, 0, 0, 3.7, 2, 2],  # D 0.6: IoU(A) = 0.3/3.7 ~ 0.08 -> kept (B is gone, so B cannot suppress it)
            [10.2, 10, 10, 12.2, 12, 12],  # E 0.95: suppresses C (IoU 0.82)
        ]
    )
    scores = T([0.9, 0.8, 0.7, 0.6, 0.95])
    assert nms_3d(boxes, scores, 0.3).tolist() == [4, 0, 3]
    assert nms_3d(boxes, scores, 0.3, max_keep=2).tolist() == [4, 0]
    assert nms_3d(boxes, scores, 0.9).tolist() == [4, 0, 1, 2, 3]  # nothing overlaps more than 0.9
    # IoU exactly at the threshold is kept (suppress only when greater)
    assert nms_3d(T([[0, 0, 0, 4, 1, 1], [0, 0, 0, 2, 1, 1]]), T([0.9, 0.8]), 0.5).tolist() == [0, 1]
    assert nms_3d(T([[0, 0, 0, 4, 1, 1], [0, 0, 0, 2, 1, 1]]), T([0.9, 0.8]), 0.49).tolist() == [0]
    assert nms_3d(torch.zeros(0, 6), torch.zeros(0), 0.5).numel() == 0
    # per class: A and B in different classes no longer suppress each other
    groups = torch.tensor([1, 2, 1, 1, 1])
    assert batched_nms_3d(boxes, scores, groups, 0.3).tolist() == [4, 0, 1, 3]


def test_nms_matrix_and_stepwise_variants_agree(monkeypatch):
    from nerfseg.instance_nerf.rcnn import box_ops

    rng = np.random.default_rng(0)
    for trial in range(12):
        n = int(rng.integers(1, 300))
        lo = rng.uniform(0, 30, (n, 3))
        boxes = T(np.concatenate([lo, lo + rng.uniform(0.5, 10, (n, 3))], axis=1))
        scores = T(rng.uniform(0, 1, n))
        if trial % 3 == 0:
            scores = torch.round(scores * 5) / 5  # many ties
        thr = float(rng.uniform(0.05, 0.7))
        max_keep = None if trial % 2 else int(rng.integers(1, 50))
        matrix = nms_3d(boxes, scores, thr, max_keep).tolist()
        monkeypatch.setattr(box_ops, "MATRIX_NMS_MAX", 0)
        stepwise = nms_3d(boxes, scores, thr, max_keep).tolist()
        monkeypatch.undo()
        assert matrix == stepwise
        kept = boxes[matrix]
        iou = box_iou_3d(kept, kept).fill_diagonal_(0)
        assert float(iou.max()) <= thr  # no two kept boxes overlap more than the threshold


def test_mini_backbone_keeps_small_objects_several_cells_wide():
    """mini: the finest FPN level has stride 2, so a 6-voxel chair of a 64-voxel grid spans 3 cells (1.5 at
    stride 4); old checkpoints without the key load with the reference's stride 4; stride 1 and 4 stems work."""
    from nerfseg.instance_nerf.rcnn.config import RCNNConfig, preset_config
    from nerfseg.instance_nerf.rcnn.model import NeRFRCNN
    from nerfseg.errors import InputError

    mini = preset_config("mini")
    assert mini.base_stride == 2 and 6 / mini.base_stride >= 3
    assert RCNNConfig.from_dict({k: v for k, v in mini.to_dict().items() if k != "base_stride"}).base_stride == 4
    assert preset_config("paper").base_stride == 4
    x = torch.zeros((1, 4, 32, 32, 32))
    for stem in ("strided", "conv7"):
        for base in (1, 2, 4):
            cfg = mini.replace(stem=stem, base_stride=base)
            model = NeRFRCNN(cfg)
            feats = model.backbone(x)
            assert model.strides == (base, 2 * base, 4 * base, 8 * base)
            assert [tuple(f.shape[2:]) for f in feats] == [(32 // s,) * 3 for s in model.strides]
    with pytest.raises(InputError, match="base_stride"):
        mini.replace(base_stride=3)
