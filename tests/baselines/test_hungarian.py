"""DM-NeRF's object-code loss: Hungarian matching, soft IoU and the per-image averaging, against hand
computations and brute force; the emptiness loss on a hand-made ray."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from nerfseg.baselines.common import IGNORE
from nerfseg.baselines.dm_nerf import (
    emptiness_loss,
    hungarian_loss,
    match_costs,
    object_loss,
    soft_iou,
)


def _logits(p: list[list[float]]) -> torch.Tensor:
    """Code probabilities (R, K) -> the logits whose sigmoid they are."""
    t = torch.tensor(p, dtype=torch.float64)
    return torch.log(t / (1.0 - t))


# 4 rays, 3 codes; GT masks "5" (rays 0, 1) and "9" (ray 2); ray 3 is background (-1)
P = [
    [0.1, 0.8, 0.3],
    [0.2, 0.7, 0.1],
    [0.9, 0.1, 0.2],
    [0.1, 0.2, 0.1],
]
LABELS = [5, 5, 9, -1]


def _hand_loss() -> float:
    """The loss of the hand case written out term by term: mask 5 -> code 1, mask 9 -> code 0, code 2 unmatched."""
    bce_5_1 = -(math.log(0.8) + math.log(0.7) + math.log(1 - 0.1) + math.log(1 - 0.2)) / 4
    bce_9_0 = -(math.log(1 - 0.1) + math.log(1 - 0.2) + math.log(0.9) + math.log(1 - 0.1)) / 4
    siou_5_1 = (0.8 + 0.7) / ((0.8 + 0.7 + 0.1 + 0.2) + 2 - (0.8 + 0.7) + 1e-6)
    siou_9_0 = 0.9 / ((0.1 + 0.2 + 0.9 + 0.1) + 1 - 0.9 + 1e-6)
    unmatched_code2 = (0.3 + 0.1 + 0.2 + 0.1) / 4
    return (bce_5_1 + bce_9_0) / 2 + ((1 - siou_5_1) + (1 - siou_9_0)) / 2 + unmatched_code2


def test_hand_case_assignment_and_value() -> None:
    loss, masks, codes = hungarian_loss(_logits(P), torch.tensor(LABELS))
    assert dict(zip(masks.tolist(), codes.tolist())) == {5: 1, 9: 0}
    assert float(loss) == pytest.approx(_hand_loss(), rel=1e-9)


def test_permuting_gt_ids_or_codes_gives_the_same_loss() -> None:
    base, _, _ = hungarian_loss(_logits(P), torch.tensor(LABELS))
    swapped, masks, codes = hungarian_loss(_logits(P), torch.tensor([9, 9, 5, -1]))  # the two masks renamed
    assert float(swapped) == pytest.approx(float(base), rel=1e-12)
    assert dict(zip(masks.tolist(), codes.tolist())) == {9: 1, 5: 0}
    perm = [2, 0, 1]  # code channels reordered: the loss may not depend on which code is which
    permuted, masks, codes = hungarian_loss(_logits(P)[:, perm], torch.tensor(LABELS))
    assert float(permuted) == pytest.approx(float(base), rel=1e-12)
    assert dict(zip(masks.tolist(), codes.tolist())) == {5: 2, 9: 1}


def test_matching_is_the_brute_force_optimum(rng: np.random.Generator) -> None:
    for _ in range(20):
        r, k = 40, 4
        logits = torch.tensor(rng.normal(0, 2, (r, k)))
        labels = torch.tensor(rng.integers(-1, 3, r))  # masks 0, 1, 2 and background
        masks = torch.unique(labels[labels >= 0])
        gt = (labels[:, None] == masks[None]).double()
        bce, siou = match_costs(logits, gt)
        cost = (bce + 1 - siou).numpy()
        best = min(sum(cost[m, c] for m, c in enumerate(perm)) for perm in itertools.permutations(range(k), len(masks)))
        _, got_masks, got_codes = hungarian_loss(logits, labels)
        rows = [int(torch.nonzero(masks == m)) for m in got_masks]
        assert sum(cost[m, c] for m, c in zip(rows, got_codes)) == pytest.approx(best, rel=1e-12)


def test_match_costs_equal_the_elementwise_definition(rng: np.random.Generator) -> None:
    logits = torch.tensor(rng.normal(0, 3, (30, 5)))
    gt = torch.tensor(rng.integers(0, 2, (30, 2))).double()
    bce, siou = match_costs(logits, gt)
    p = torch.sigmoid(logits)
    for m in range(2):
        for c in range(5):
            g, o = gt[:, m], p[:, c]
            want_bce = float(torch.nn.functional.binary_cross_entropy(o, g))
            want_siou = float((o * g).sum() / (o.sum() + g.sum() - (o * g).sum() + 1e-6))
            assert float(bce[m, c]) == pytest.approx(want_bce, rel=1e-9)
            assert float(siou[m, c]) == pytest.approx(want_siou, rel=1e-9)


def test_soft_iou_edge_cases() -> None:
    zeros = torch.zeros(4, 1, dtype=torch.float64)
    ones = torch.ones(4, 1, dtype=torch.float64)
    half = torch.tensor([[1.0], [1.0], [0.0], [0.0]], dtype=torch.float64)
    assert float(soft_iou(zeros, zeros)) == 0.0  # nothing predicted, empty mask: 0, not NaN
    assert float(soft_iou(ones, ones)) == pytest.approx(1.0, abs=1e-6)  # perfect
    assert float(soft_iou(1.0 - half, half)) == 0.0  # disjoint
    assert float(soft_iou(ones, half)) == pytest.approx(0.5, abs=1e-6)  # prediction twice the mask
    assert float(soft_iou(0.5 * half, half)) == pytest.approx(0.5, abs=1e-6)  # half-confident on the mask
    assert soft_iou(torch.rand(7, 3), torch.zeros(7, 0)).shape == (0, 3)


def test_no_masks_and_more_masks_than_codes() -> None:
    logits = _logits(P)
    loss, masks, _ = hungarian_loss(logits, torch.tensor([-1, -1, -1, -1]))
    assert masks.size == 0 and float(loss) == pytest.approx(float(torch.sigmoid(logits).mean()), rel=1e-12)
    many = torch.tensor([0, 1, 2, 3])  # 4 masks, 3 codes: every code matched, no unmatched term
    loss, masks, codes = hungarian_loss(logits, many)
    assert len(codes) == 3 and sorted(codes.tolist()) == [0, 1, 2] and math.isfinite(float(loss))


def test_object_loss_matches_each_image_separately_and_skips_void() -> None:
    logits = torch.cat([_logits(P), _logits(P)[:, [1, 0, 2]]])
    # frame 0 calls the chair "5", frame 1 calls it "2": ids need not agree across views
    labels = torch.tensor(LABELS + [2, 2, 7, -1])
    frames = torch.tensor([0, 0, 0, 0, 3, 3, 3, 3])
    per_image = [hungarian_loss(logits[:4], labels[:4])[0], hungarian_loss(logits[4:], labels[4:])[0]]
    assert float(object_loss(logits, labels, frames)) == pytest.approx(float(sum(per_image) / 2), rel=1e-12)
    # void rays (IGNORE) change nothing, wherever they are
    noisy = torch.cat([logits, torch.randn(3, 3, dtype=torch.float64)])
    noisy_labels = torch.cat([labels, torch.full((3,), IGNORE)])
    noisy_frames = torch.cat([frames, torch.tensor([0, 3, 5])])
    assert float(object_loss(noisy, noisy_labels, noisy_frames)) == pytest.approx(float(object_loss(logits, labels, frames)), rel=1e-12)


def test_emptiness_loss_hand_case() -> None:
    # one ray looking along -z (|dir| = 1), surface at depth 1; samples in front, on and behind it
    logits = torch.tensor([[0.3, -0.2], [0.5, 0.4], [1.0, -1.0]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.5, 0.98, 1.5], dtype=torch.float64)
    ray_idx = torch.zeros(3, dtype=torch.long)
    depth, opacity, length = torch.tensor([1.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    loss = emptiness_loss(logits, t, ray_idx, depth, opacity, length, tolerance=0.05, sigma=0.05)

    def g(delta: float) -> float:
        return math.exp(-(delta**2) / (2 * 0.05**2)) / (0.4 * math.sqrt(2 * math.pi)) + 1e-8

    def bce(x: float, target: float) -> float:
        p = 1 / (1 + math.exp(-x))
        return -(target * math.log(p) + (1 - target) * math.log(1 - p))

    front = (bce(0.3, 0.0) + bce(-0.2, 1.0)) * (1 - g(0.5)) / 2  # all codes -> [0, 1], normalised by K+1 = 2
    surface = bce(0.4, 0.0) * g(0.02)  # the empty code -> 0
    assert float(loss.detach()) == pytest.approx(front + surface, rel=1e-9)
    loss.backward()
    assert torch.all(logits.grad[2] == 0)  # behind the surface: unconstrained
    assert logits.grad[1, 0] == 0  # on the surface only the empty code is pushed
    # a ray that hits nothing (opacity < 0.5) is left alone
    assert float(emptiness_loss(logits, t, ray_idx, depth * 0.3, opacity * 0.3, length).detach()) == 0.0
