"""DM-NeRF baseline: config, prior instance targets, detached object field, batches, panoptic output,
training on a tiny scene and a submission that evaluates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nerfseg.baselines.common import IGNORE, NEGATIVE, open_trainer, prior_instance_targets
from nerfseg.baselines.dm_nerf import HEAD, NO_OBJECT, DMNeRF, FewImageTrainer
from nerfseg.evaluation.api import evaluate_submission
from nerfseg.evaluation.submission import validate_submission
from nerfseg import spec
from nerfseg.errors import InputError
from nerfseg.methods import SceneData, run_method
from nerfseg.radiance.render import render_rays
from tests.baselines.conftest import TINY

SMALL = dict(max_objects=6, head_hidden=16, vote_views=2, vote_downscale=2, images_per_batch=2, device="cpu")


def _method(**kw) -> DMNeRF:
    return DMNeRF(DMNeRF.make_config("mini", **{**TINY, **SMALL, **kw}))


def _trainer(method: DMNeRF, scene: SceneData, work: Path) -> FewImageTrainer:
    targets, _ = prior_instance_targets(scene, scene.frame_names("train"))
    return open_trainer(scene, method.config, work, method.setup, {"instance": targets}, resume=False, trainer_cls=FewImageTrainer)  # type: ignore[return-value]


def test_config_presets_and_overrides() -> None:
    mini, paper = DMNeRF.make_config("mini"), DMNeRF.make_config("paper")
    assert mini.max_objects == 24 and mini.radiance.preset == "mini"
    assert paper.radiance.steps == 500_000 and paper.radiance.batch_rays == 3072 and paper.images_per_batch == 1
    assert DMNeRF.make_config("mini", steps=5, max_objects=3).radiance.steps == 5
    with pytest.raises(InputError, match="unknown setting"):
        DMNeRF.make_config("mini", max_object=3)
    with pytest.raises(InputError, match="max_objects"):
        DMNeRF(DMNeRF.make_config("mini", max_objects=300))


def test_prior_instance_targets(scene: SceneData) -> None:
    names = scene.frame_names("train")[:3]
    targets, counts = prior_instance_targets(scene, names)
    for i, name in enumerate(names):
        ids, segments = scene.prior_frame(name)
        things = sorted(k for k, s in segments.items() if s["category_id"] != spec.BACKGROUND)
        assert counts[i] == len(things)
        for j, k in enumerate(things):
            assert np.all(targets[i][ids == k] == j)
        stuff = [k for k, s in segments.items() if s["category_id"] == spec.BACKGROUND]
        assert np.all(targets[i][np.isin(ids, stuff)] == NEGATIVE)
        assert np.all(targets[i][~np.isin(ids, list(segments))] == IGNORE)
    half, _ = prior_instance_targets(scene, names, factor=2)
    assert half.shape == (3, targets.shape[1] // 2, targets.shape[2] // 2) and np.array_equal(half, targets[:, 1::2, 1::2])


def test_object_field_is_detached_and_batches_come_from_few_images(scene: SceneData, tmp_path: Path) -> None:
    method = _method()
    trainer = _trainer(method, scene, tmp_path)
    trainer.train_step()
    batch = trainer.sample_batch()
    assert len(torch.unique(batch.frame)) <= 2 and len(batch) == TINY["batch_rays"]
    heads = dict(trainer.heads.items())
    detach = {n for n, h in trainer.head_specs.items() if h.detach_weights}
    assert detach == {HEAD}
    out = render_rays(trainer.field, batch.origins, batch.dirs, trainer.settings, trainer.occupancy, heads, detach, None, torch.rand(len(batch)), return_samples=True)
    s = out["samples"]
    assert s[f"head:{HEAD}"].shape[1] == SMALL["max_objects"] + 1
    composite = torch.zeros(len(batch), SMALL["max_objects"] + 1).index_add_(0, s["ray_indices"], s["weights"][:, None] * s[f"head:{HEAD}"])
    assert torch.allclose(out[HEAD], composite, atol=1e-5)
    trainer.optimizer.zero_grad()
    loss = method.loss(out, batch)
    loss.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in trainer.field.parameters())  # geometry untouched
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.heads[HEAD].parameters())
    # the sampler is seeded by the trainer's generator: the same state gives the same batch
    state = trainer.generator.get_state()
    a = trainer.sample_batch()
    trainer.generator.set_state(state)
    assert torch.equal(a.pixel, trainer.sample_batch().pixel)


def test_training_lowers_the_object_loss(scene: SceneData, tmp_path: Path) -> None:
    method = _method(steps=1000, empty_weight=0.0)  # long schedule: no lr decay within the test
    trainer = _trainer(method, scene, tmp_path)
    batch = trainer.sample_batch()
    first = trainer.train_step(batch)
    for _ in range(15):  # the codes only move once Adam has warmed up
        last = trainer.train_step(batch)
    assert last["loss_objects"] < 0.8 * first["loss_objects"]


def test_panoptic_ids_are_codes_and_background_is_one_stuff_segment() -> None:
    method = _method(max_objects=4)
    code = np.array([[0, 0, NO_OBJECT], [2, 3, 1]], dtype=np.uint8)
    prob = np.array([[0.9, 0.7, 0.2], [0.6, 0.8, 0.9]], dtype=np.float32)
    classes = np.array([3, -1, 7, 1])  # code 1 has no class (e.g. it lit up on a wall)
    ids, segs = method.panoptic(code, prob, classes)
    assert np.array_equal(ids, [[1, 1, 5], [3, 4, 5]])
    by_id = {s["id"]: s for s in segs}
    assert {i: s["category_id"] for i, s in by_id.items()} == {1: 3, 3: 7, 4: 1, 5: spec.BACKGROUND}
    assert by_id[1]["score"] == pytest.approx(0.8) and "score" not in by_id[5]
    rendered = np.full((1, 3, 5), -5.0)
    rendered[0, 0, 2] = 3.0  # code 2 on, above 0.5
    rendered[0, 1, 1] = -0.1  # the best code is below 0.5: background
    rendered[0, 2, 4] = 9.0  # only the empty code is on: background
    got, p = method.codes(rendered)
    assert got.tolist() == [[2, NO_OBJECT, NO_OBJECT]] and p[0, 0] == pytest.approx(1 / (1 + np.exp(-3.0)))


@pytest.mark.slow
def test_run_method_writes_a_valid_submission(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    sub = run_method("dm-nerf", bench, out, split="train", overrides={**TINY, **SMALL}, log=lambda *_: None)
    result = validate_submission(sub, bench, split="train")
    assert result.ok, result.problems
    report = evaluate_submission(bench, sub, split="train")
    assert report["summary"]["pq"] is not None and report["summary"]["pq_scene"] is not None
    log = json.loads((out / "train_log.jsonl").read_text().splitlines()[0])
    assert log["steps"] == TINY["steps"] and np.isfinite(log["test_psnr"]) and np.isfinite(log["final_object_loss"])
    assert "final_empty_loss" in log and log["train_seconds"] > 0
    assert list(log["seconds"]) == ["train", "vote", "render_test"]  # the fit's stages, in order


def test_shared_field_trains_only_the_head_and_carries_its_gt_flag(bench: Path, tmp_path: Path) -> None:
    """``shared_field=true``: DM-NeRF's codes learn on the scene's frozen ``nerfseg grids`` field (issue 12: one
    field per scene for a whole table); the field is not changed, and its GT depth flags the run."""
    import shutil

    from nerfseg import runs
    from nerfseg.instance_nerf.grids import build_grids, grid_settings, shared_radiance_checkpoint

    root = tmp_path / "bench"
    shutil.copytree(bench, root)
    settings = {**TINY, **SMALL, "shared_field": True}
    with pytest.raises(InputError, match=r"radiance/.*checkpoint\.pt.*run `nerfseg grids"):
        run_method("dm-nerf", root, tmp_path / "none", split="train", overrides=settings, log=lambda *_: None)
    grid_tiny = {k: v for k, v in TINY.items() if k != "render_chunk"}
    build_grids(root, grid_settings("mini", resolution=12, device="cpu", eval_views=0, depth_weight=0.2, **grid_tiny), log=lambda *_: None)
    out = tmp_path / "run"
    sub = run_method("dm-nerf", root, out, split="train", overrides=settings, log=lambda *_: None)
    sid = spec.scenes_in_split(root, "train")[0]
    shared = torch.load(shared_radiance_checkpoint(root / "scenes" / sid), map_location="cpu", weights_only=False)["field"]
    trained = torch.load(out / "scenes" / sid / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert shared.keys() == trained["field"].keys()
    assert all(torch.equal(shared[k], trained["field"][k]) for k in shared)  # frozen: the field is the shared one
    log = json.loads((out / "train_log.jsonl").read_text().splitlines()[0])
    assert log["steps"] == TINY["steps"] and np.isfinite(log["final_object_loss"])
    meta = json.loads((sub / spec.META_JSON).read_text())
    assert meta["uses_gt_masks"] is True and any("depth_weight" in s for s in meta["gt_sources"])
    marker = runs.read_marker(out / "scenes" / sid / runs.DONE_MARKER)
    assert marker is not None and marker["inputs"]["method_inputs"]["shared_radiance"]
    assert validate_submission(sub, root, split="train").ok
