"""Training on a tiny synthetic scene: loss drops, checkpoints round-trip, resume is exact, heads work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nerfseg.errors import InputError
from nerfseg.radiance.config import RadianceConfig, preset
from nerfseg.radiance.data import load_depth_targets
from nerfseg.radiance.trainer import RadianceTrainer


def tiny_config(**changes: object) -> RadianceConfig:
    return preset("mini").replace(
        num_levels=4,
        log2_table_size=12,
        base_resolution=4,
        max_resolution=32,
        geo_hidden=16,
        color_hidden=16,
        march_resolution=64,
        occ_resolution=16,
        occ_warmup_steps=8,
        occ_update_every=4,
        batch_rays=256,
        log_every=10,
        render_chunk=2048,
    ).replace(**{"steps": 60, **changes})


def test_presets_and_config_roundtrip() -> None:
    for name in ("mini", "paper"):
        cfg = preset(name)
        assert cfg.preset == name
        assert RadianceConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert preset("paper").num_levels == 16 and preset("paper").log2_table_size == 19
    with pytest.raises(ValueError):
        preset("huge")


def test_training_reduces_loss(tiny_scene: Path, tmp_path: Path) -> None:
    trainer = RadianceTrainer(tiny_scene, tiny_config(), out_dir=tmp_path / "run", progress=False)
    mses: list[float] = []
    trainer.train(60, callbacks=[lambda tr, step, logs: mses.append(logs["mse"])])
    assert trainer.step == 60 and len(mses) == 60
    assert np.mean(mses[-10:]) < 0.6 * np.mean(mses[:5])
    assert trainer.occupancy.updates > 0
    ev = trainer.evaluate("test")
    assert ev["num_views"] == 2 and np.isfinite(ev["psnr"]) and 0.0 <= ev["opacity"] <= 1.0
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["radiance"]["batch_rays"] == 256 and cfg["train_views"] == 14
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert log[0]["step"] == 1 and log[-1]["step"] == 60 and {"loss", "psnr", "time"} <= set(log[-1])
    assert (tmp_path / "run" / "checkpoint.pt").exists()


def test_resume_repeats_the_next_step_exactly(tiny_scene: Path, tmp_path: Path) -> None:
    cfg = tiny_config(steps=40)
    first = RadianceTrainer(tiny_scene, cfg, out_dir=tmp_path / "a", progress=False)
    first.train(13)  # past an occupancy update and the warm-up
    path = first.save_checkpoint()
    expect = [first.train_step()["loss"] for _ in range(4)]  # includes the update at step 16
    second = RadianceTrainer.resume(path, progress=False)
    assert second.step == 13
    got = [second.train_step()["loss"] for _ in range(4)]
    assert got == pytest.approx(expect, rel=1e-6, abs=1e-9)
    # model-only loading reproduces renders
    third = RadianceTrainer(tiny_scene, cfg, progress=False)
    third.load_checkpoint(path, model_only=True)
    c2w = third.test_rays.c2w[0]
    a = third.render_view(c2w)
    b = RadianceTrainer.resume(path, progress=False).render_view(c2w)
    np.testing.assert_allclose(a["rgb"], b["rgb"], atol=1e-6)
    assert a["rgb"].shape == (30, 40, 3) and a["depth"].shape == (30, 40)
    with pytest.raises(InputError):
        third.load_checkpoint(tmp_path / "missing.pt")


class _Head(nn.Module):
    def __init__(self, geo_dim: int, classes: int, detach: bool) -> None:
        super().__init__()
        self.lin = nn.Linear(geo_dim, classes)
        self.detach = detach

    def forward(self, geo: torch.Tensor, xyz: torch.Tensor) -> torch.Tensor:
        return self.lin(geo.detach() if self.detach else geo)


def _label_loss(out: dict, batch) -> torch.Tensor:
    return nn.functional.cross_entropy(out["sem"], batch.extras["label"].long())


def test_heads_train_render_and_freeze(tiny_scene: Path, tmp_path: Path) -> None:
    probe = RadianceTrainer(tiny_scene, tiny_config(), progress=False)
    bank = probe.rays
    labels = (np.arange(bank.width)[None, None, :] * 3 // bank.width).repeat(bank.height, 1).repeat(bank.num_frames, 0)
    trainer = RadianceTrainer(tiny_scene, tiny_config(), out_dir=tmp_path / "h", extra={"label": labels}, progress=False)
    trainer.add_head("sem", _Head(trainer.field.geo_feat_dim, 3, detach=True), _label_loss, weight=0.5, detach_weights=True)
    logs = trainer.train(10)
    assert "loss_sem" in logs
    view = trainer.render_view(trainer.test_rays.c2w[0], heads=["sem"])
    assert view["sem"].shape == (30, 40, 3)
    # stage 2 (Instance-NeRF): the field is frozen, only the head moves
    trainer.freeze_radiance()
    field_before = [p.detach().clone() for p in trainer.field.parameters()]
    head_before = [p.detach().clone() for p in trainer.heads["sem"].parameters()]
    trainer.train(3)
    assert all(torch.equal(a, b) for a, b in zip(field_before, trainer.field.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(head_before, trainer.heads["sem"].parameters()))
    path = trainer.save_checkpoint()
    # resuming a run with heads: setup re-registers them before the state loads
    resumed = RadianceTrainer.resume(
        path,
        extra={"label": labels},
        setup=lambda tr: tr.add_head("sem", _Head(tr.field.geo_feat_dim, 3, detach=True), _label_loss, weight=0.5, detach_weights=True),
        progress=False,
    )
    assert resumed.radiance_frozen and resumed.step == 13
    for a, b in zip(trainer.heads["sem"].parameters(), resumed.heads["sem"].parameters()):
        assert torch.equal(a, b)
    with pytest.raises(InputError, match="sem"):
        RadianceTrainer.resume(path, progress=False)


def test_background_choice_is_validated_and_warmup_background_applies(tiny_scene: Path) -> None:
    with pytest.raises(ValueError, match="unknown background 'grey'"):
        RadianceTrainer(tiny_scene, tiny_config(background="grey"), progress=False)
    with pytest.raises(ValueError, match="unknown warmup_background 'pink'"):
        RadianceTrainer(tiny_scene, tiny_config(warmup_background="pink"), progress=False)
    trainer = RadianceTrainer(tiny_scene, tiny_config(background="black", warmup_background="white"), progress=False)
    assert torch.equal(trainer._background(4, training=True), torch.ones(3))  # step 0 < occ_warmup_steps
    assert torch.equal(trainer._background(4, training=False), torch.zeros(3))  # evaluation: the real background
    trainer.step = trainer.config.occ_warmup_steps
    assert torch.equal(trainer._background(4, training=True), torch.zeros(3))


def test_depth_supervision_pulls_rendered_depth_to_the_maps(tiny_scene: Path) -> None:
    """depth_weight > 0 adds an L1 term on the train views' depth maps: the same steps end with rendered
    depth much closer to the maps than colour alone, and a missing map is a clear error."""
    errors = {}
    for weight in (0.0, 0.5):
        trainer = RadianceTrainer(tiny_scene, tiny_config(depth_weight=weight), progress=False)
        trainer.train(60)
        target = load_depth_targets(tiny_scene, trainer.rays.frame_names[:3], trainer.rays.height, trainer.rays.width)
        rendered = np.stack([trainer.render_view(trainer.rays.c2w[i], trainer.rays.intr, heads=[])["depth"] for i in range(3)])
        errors[weight] = float(np.abs(rendered - target)[target > 0].mean())
    assert errors[0.5] < 0.7 * errors[0.0], errors
    broken = tiny_scene.parent / "no_depth"
    if not broken.exists():
        shutil.copytree(tiny_scene, broken)
        (broken / "depth" / f"{trainer.rays.frame_names[0]}.png").unlink()
    with pytest.raises(InputError, match="depth map missing"):
        RadianceTrainer(broken, tiny_config(depth_weight=0.5), progress=False)


def test_compile_wraps_the_mlp_forwards_and_keeps_checkpoint_keys(tiny_scene: Path) -> None:
    """``compile: true`` really hands the MLPs to torch.compile (nn.Module.compile() captured nothing on
    CPU), without renaming the parameters a checkpoint stores. Nothing is called, so nothing compiles here."""
    plain = RadianceTrainer(tiny_scene, tiny_config(), progress=False)
    compiled = RadianceTrainer(tiny_scene, tiny_config(compile=True), progress=False)
    for name in ("geo_mlp", "color_mlp"):
        forward = getattr(compiled.field, name).forward
        assert hasattr(forward, "_torchdynamo_orig_callable"), f"{name}.forward is not a torch.compile wrapper"
        assert not hasattr(getattr(plain.field, name).forward, "_torchdynamo_orig_callable")
    assert list(compiled.field.state_dict()) == list(plain.field.state_dict())
