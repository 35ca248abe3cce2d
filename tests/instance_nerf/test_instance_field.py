"""The instance field: the depth-aware smoothness term on hand cases, the CE ignoring unlabelled pixels, and
the head composited with the frozen radiance weights (training it never moves the radiance field)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nerfseg.instance_nerf.field import (
    HEAD,
    TARGET,
    InstanceField,
    InstanceFieldConfig,
    InstanceLoss,
    smoothness_loss,
)
from nerfseg.instance_nerf.pipeline import render_train_views, stage2_targets, upsample_render
from nerfseg.radiance.config import preset as radiance_preset
from nerfseg.radiance.data import RayBatch
from nerfseg.radiance.render import render_rays
from nerfseg.radiance.trainer import RadianceTrainer
from tests.radiance.synthetic import make_scene

TINY_FIELD = InstanceFieldConfig(num_levels=3, log2_table_size=10, base_resolution=4, max_resolution=16, hidden=16, layers=2)


def test_smoothness_two_pixels_by_hand() -> None:
    # one 1x2 patch, two channels: (0,0) | (1,3) on one surface -> sum of squares 10 over 2 channels x 1 pair
    logits = torch.tensor([[[[0.0, 0.0], [1.0, 3.0]]]])  # (P=1, rows=1, cols=2, L=2)
    depth = torch.tensor([[[2.0, 2.0]]])
    assert float(smoothness_loss(logits, depth)) == pytest.approx(5.0)
    # identical neighbours cost nothing
    assert float(smoothness_loss(torch.ones(1, 2, 2, 3), torch.rand(1, 2, 2))) == 0.0


def test_smoothness_depth_edge_suppresses_the_penalty() -> None:
    # 1x3 patch a | b || c with a depth edge of 2 m between b and c
    logits = torch.tensor([[[[0.0, 0.0], [1.0, 0.0], [1.0, 3.0]]]])
    flat = torch.tensor([[[1.0, 1.0, 1.0]]])
    edge = torch.tensor([[[1.0, 1.0, 3.0]]])
    w = math.exp(-4.0)
    assert float(smoothness_loss(logits, flat)) == pytest.approx((1 + 9) / (2 * 2))
    assert float(smoothness_loss(logits, edge)) == pytest.approx((1 * 1 + 9 * w) / (2 * (1 + w)), rel=1e-5)
    assert float(smoothness_loss(logits, edge)) < 0.25 * float(smoothness_loss(logits, flat))
    # x and y terms add: the transposed patch gives the same value through the y term
    assert float(smoothness_loss(logits.transpose(1, 2), edge.transpose(1, 2))) == pytest.approx(float(smoothness_loss(logits, edge)))
    # depth_scale converts units: a 2 m edge in units of 0.1 m-scale barely counts
    assert float(smoothness_loss(logits, edge, depth_scale=0.01)) == pytest.approx(2.5, rel=1e-3)


def test_smoothness_gradient_reaches_logits_not_depth() -> None:
    logits = torch.randn(2, 4, 4, 3, requires_grad=True)
    depth = torch.rand(2, 4, 4, requires_grad=True)
    smoothness_loss(logits, depth).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    assert depth.grad is None


def test_loss_ignores_unlabelled_and_switches_regularization() -> None:
    p, k, n = 2, 4, 3
    logits = torch.randn(p * k * k, n)
    target = torch.randint(0, n, (p * k * k,))
    target[:5] = -1
    batch = RayBatch(torch.zeros(p * k * k, 3), torch.zeros(p * k * k, 3), None, torch.zeros(p * k * k, dtype=torch.long), torch.zeros(p * k * k, 2, dtype=torch.long), {TARGET: target}, (p, k, k))
    out = {HEAD: logits, "depth": torch.rand(p * k * k)}
    ce = torch.nn.functional.cross_entropy(logits[5:], target[5:])
    assert float(InstanceLoss(regularization=False)(out, batch)) == pytest.approx(float(ce))
    reg = smoothness_loss(logits.reshape(p, k, k, n), out["depth"].reshape(p, k, k))
    assert float(InstanceLoss(regularization=True, regularization_weight=1.0)(out, batch)) == pytest.approx(float(ce + reg), rel=1e-6)
    all_void = RayBatch(batch.origins, batch.dirs, None, batch.frame, batch.pixel, {TARGET: torch.full_like(target, -1)}, None)
    assert float(InstanceLoss(regularization=False)(out, all_void)) == 0.0


def test_stage2_leaves_unlabelled_pixels_out_of_the_loss() -> None:
    """Stage 2's targets are the refined masks where the matching labelled a pixel and -1 elsewhere; the loss
    on such targets does not depend on the logits of the unlabelled pixels (a refined 'background' there would)."""
    matched = np.array([[-1, 0, 2], [1, -1, -1]])
    refined = np.array([[0, 0, 1], [1, 2, 0]])  # the argmax render: every pixel has a label
    t = stage2_targets(refined, matched)
    np.testing.assert_array_equal(t, [[-1, 0, 1], [1, -1, -1]])
    np.testing.assert_array_equal(stage2_targets(t, matched), t)  # idempotent (a resumed run reapplies it)
    with pytest.raises(ValueError, match="differ in shape"):
        stage2_targets(refined, matched[:1])
    target = torch.from_numpy(t.reshape(-1))
    n = target.numel()
    batch = RayBatch(torch.zeros(n, 3), torch.zeros(n, 3), None, torch.zeros(n, dtype=torch.long), torch.zeros(n, 2, dtype=torch.long), {TARGET: target}, None)
    logits = torch.randn(n, 3, requires_grad=True)
    loss = InstanceLoss(regularization=False)({HEAD: logits, "depth": torch.rand(n)}, batch)
    loss.backward()
    unlabelled = torch.from_numpy(matched.reshape(-1) < 0)
    assert torch.all(logits.grad[unlabelled] == 0) and torch.any(logits.grad[~unlabelled] != 0)
    naive = RayBatch(batch.origins, batch.dirs, None, batch.frame, batch.pixel, {TARGET: torch.from_numpy(refined.reshape(-1))}, None)
    logits.grad = None
    InstanceLoss(regularization=False)({HEAD: logits, "depth": torch.rand(n)}, naive).backward()
    assert torch.any(logits.grad[unlabelled] != 0)  # what stage 2 did before: the unmatched pixels were targets


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_scene(tmp_path_factory.mktemp("inst_field") / "scene", num_views=6, width=24, height=16, seed=0)


def _trainer(scene: Path) -> RadianceTrainer:
    cfg = radiance_preset("mini").replace(
        steps=6, batch_rays=128, patch_size=8, num_levels=3, log2_table_size=10, base_resolution=4, max_resolution=16,
        march_resolution=24, occ_resolution=8, occ_warmup_steps=0, log_every=0, density_bias=1.0,
    )
    trainer = RadianceTrainer(scene, cfg, "cpu", None, progress=False)
    labels = torch.randint(-1, 3, (trainer.rays.num_frames, trainer.rays.height, trainer.rays.width), generator=torch.Generator().manual_seed(0))
    trainer.rays.add_extra(TARGET, labels)
    head = InstanceField(TINY_FIELD, trainer.field.box.aabb_normalised(), trainer.field.geo_feat_dim, 3)
    trainer.add_head(HEAD, head, loss=InstanceLoss(True), detach_weights=True)
    trainer.freeze_radiance(True)
    return trainer


def test_head_is_composited_with_the_frozen_weights(scene: Path) -> None:
    torch.manual_seed(0)
    trainer = _trainer(scene)
    before = {k: v.clone() for k, v in trainer.field.state_dict().items()}
    occ_before = trainer.occupancy.state_dict()
    head_before = [p.clone() for p in trainer.heads[HEAD].parameters()]
    trainer.train(steps=4)
    assert all(torch.equal(before[k], v) for k, v in trainer.field.state_dict().items()), "radiance field changed"
    assert all(torch.equal(occ_before[k], v) for k, v in trainer.occupancy.state_dict().items())
    assert any(not torch.equal(a, b) for a, b in zip(head_before, trainer.heads[HEAD].parameters())), "instance head did not train"

    # the rendered logits are sum_i w_i * logits_i with the colour weights
    batch = trainer.rays.sample(64, torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = render_rays(trainer.field, batch.origins, batch.dirs, trainer.settings, trainer.occupancy, {HEAD: trainer.heads[HEAD]}, return_samples=True)
    smp = out["samples"]
    manual = torch.zeros(64, 3).index_add_(0, smp["ray_indices"], smp["weights"][:, None] * smp[f"head:{HEAD}"])
    assert smp["ray_indices"].numel() > 0
    torch.testing.assert_close(out[HEAD], manual, rtol=1e-5, atol=1e-6)
    # and the logits are those of the head on the samples' own features and positions
    with torch.no_grad():
        _, geo = trainer.field.geometry(smp["xyz"])
        torch.testing.assert_close(trainer.heads[HEAD](geo, smp["xyz"]), smp[f"head:{HEAD}"])


def test_instance_field_shapes_and_validation() -> None:
    aabb = torch.tensor([[-1.0, -0.5, -0.3], [1.0, 0.5, 0.3]])
    f = InstanceField(TINY_FIELD, aabb, 15, 5)
    assert f(torch.zeros(7, 15), torch.zeros(7, 3)).shape == (7, 5)
    dense = InstanceField(InstanceFieldConfig(encoding="dense", dense_resolution=8, dense_features=2, dense_levels=2, hidden=8), aabb, 15, 2)
    assert dense(torch.zeros(3, 15), torch.zeros(3, 3)).shape == (3, 2)
    with pytest.raises(ValueError):
        InstanceField(TINY_FIELD, aabb, 15, 0)
    with pytest.raises(ValueError):
        smoothness_loss(torch.zeros(1, 2, 2, 3), torch.zeros(1, 2, 3))


def test_upsample_render_by_hand() -> None:
    """Depth and opacity are upsampled nearest (block copies, no mixed depths at edges); logits bilinearly."""
    depth = np.array([[1.0, 3.0], [5.0, 7.0]], dtype=np.float32)
    logits = np.stack([depth, -depth], axis=-1)
    out = upsample_render({"depth": depth, "opacity": depth / 10, HEAD: logits}, (4, 4))
    np.testing.assert_array_equal(out["depth"], np.kron(depth, np.ones((2, 2), dtype=np.float32)))
    np.testing.assert_array_equal(out["opacity"], np.kron(depth / 10, np.ones((2, 2), dtype=np.float32)))
    assert out[HEAD].shape == (4, 4, 2)
    # bilinear, align_corners=False: the first upsampled column sits a quarter pixel left of the second input column
    np.testing.assert_allclose(out[HEAD][0, :, 0], [1.0, 1.5, 2.5, 3.0], rtol=1e-6)
    np.testing.assert_allclose(out[HEAD][..., 1], -out[HEAD][..., 0], rtol=1e-6)


def test_downscaled_train_view_renders_match_full_resolution(scene: Path) -> None:
    torch.manual_seed(0)
    trainer = _trainer(scene)
    trainer.train(steps=2)
    bank = trainer.rays
    full = dict(render_train_views(trainer, [HEAD], indices=[0]))[0]
    half = dict(render_train_views(trainer, [HEAD], indices=[0], downscale=2))[0]
    assert half["depth"].shape == full["depth"].shape == (bank.height, bank.width)
    assert half[HEAD].shape == full[HEAD].shape
    # the half-resolution render is the camera with scaled intrinsics, upsampled
    direct = trainer.render_view(bank.c2w[0], bank.intr.scaled(0.5), heads=[HEAD])
    np.testing.assert_array_equal(half["depth"], upsample_render(direct, (bank.height, bank.width))["depth"])
    # and it sees the same scene: depth within a few centimetres on most pixels
    hit = (full["opacity"] > 0.5) & (half["opacity"] > 0.5)
    assert hit.mean() > 0.5
    assert np.median(np.abs(full["depth"][hit] - half["depth"][hit])) < 0.1
