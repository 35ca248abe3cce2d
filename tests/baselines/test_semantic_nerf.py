"""Semantic-NeRF baseline: config, head compositing, loss, training on a tiny scene, submission, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nerfseg.baselines.common import open_trainer, prior_semantic_targets
from nerfseg.baselines.semantic_nerf import HEAD, SemanticNeRF, semantic_loss, semantic_panoptic
from nerfseg.evaluation.api import evaluate_submission
from nerfseg.evaluation.submission import validate_submission
from nerfseg import spec
from nerfseg.errors import InputError
from nerfseg.methods import SceneData, run_method
from nerfseg.radiance.data import RayBatch
from nerfseg.radiance.render import render_rays
from nerfseg.runs import FIT_SUMMARY, config_json
from tests.baselines.conftest import TINY


def _method(**kw) -> SemanticNeRF:
    return SemanticNeRF(SemanticNeRF.make_config("mini", **{**TINY, "summary_views": 2, "device": "cpu", **kw}))


def test_config_presets_and_overrides() -> None:
    mini, paper = SemanticNeRF.make_config("mini"), SemanticNeRF.make_config("paper")
    assert mini.semantic_weight == paper.semantic_weight == 4e-2
    assert mini.radiance.preset == "mini" and paper.radiance.steps == 200_000 and paper.radiance.batch_rays == 1024
    cfg = SemanticNeRF.make_config("mini", steps=17, head_hidden=8, **{"radiance.lr": 0.5})
    assert cfg.radiance.steps == 17 and cfg.head_hidden == 8 and cfg.radiance.lr == 0.5
    assert json.loads(json.dumps(config_json(cfg)))["radiance"]["steps"] == 17
    with pytest.raises(InputError, match="unknown setting 'stepz'"):
        SemanticNeRF.make_config("mini", stepz=3)
    with pytest.raises(InputError, match="unknown preset"):
        SemanticNeRF.make_config("huge")


def test_semantic_panoptic_one_segment_per_class() -> None:
    classes = np.array([[0, 0, 3], [3, 10, 0]])
    ids, segs = semantic_panoptic(classes)
    assert ids.dtype == np.uint32 and np.array_equal(ids, classes + 1)
    assert sorted((s["id"], s["category_id"]) for s in segs) == [(1, 0), (4, 3), (11, 10)]


def test_loss_ignores_void() -> None:
    logits = torch.randn(6, spec.NUM_CLASSES, requires_grad=True)
    target = torch.tensor([-1, 2, -1, 0, 5, -1])
    batch = RayBatch(torch.zeros(6, 3), torch.zeros(6, 3), None, torch.zeros(6, dtype=torch.long), torch.zeros(6, 2, dtype=torch.long), {"semantic": target})
    want = torch.nn.functional.cross_entropy(logits[[1, 3, 4]], target[[1, 3, 4]])
    assert float(semantic_loss({HEAD: logits}, batch).detach()) == pytest.approx(float(want.detach()))
    void = RayBatch(batch.origins, batch.dirs, None, batch.frame, batch.pixel, {"semantic": torch.full((6,), -1)})
    loss = semantic_loss({HEAD: logits}, void)
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.all(logits.grad == 0)


def test_head_uses_the_colour_weights_and_trains_the_geometry(scene: SceneData, tmp_path: Path) -> None:
    method = _method()
    targets = prior_semantic_targets(scene, scene.frame_names("train"))
    trainer = open_trainer(scene, method.config, tmp_path, method.setup, {"semantic": targets}, resume=False)
    for _ in range(3):
        trainer.train_step()
    batch = trainer.sample_batch()
    heads = dict(trainer.heads.items())
    detach = {n for n, h in trainer.head_specs.items() if h.detach_weights}
    out = render_rays(trainer.field, batch.origins, batch.dirs, trainer.settings, trainer.occupancy, heads, detach, None, None, return_samples=True)
    s = out["samples"]
    w = s["weights"]
    composite = lambda v: torch.zeros(len(batch), v.shape[1], dtype=v.dtype).index_add_(0, s["ray_indices"], w[:, None] * v)
    assert torch.allclose(out[HEAD], composite(s[f"head:{HEAD}"]), atol=1e-5)
    assert torch.allclose(out["rgb"], composite(s["rgb"]), atol=1e-5)  # the same weights as colour
    assert out[HEAD].shape == (len(batch), spec.NUM_CLASSES)
    # not detached: the semantic loss reaches the shared grid and the density weights
    trainer.optimizer.zero_grad()
    semantic_loss(out, batch).backward()
    assert trainer.field.encoding.parameters().__next__().grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.field.geo_mlp.parameters())


def test_training_lowers_the_loss(scene: SceneData, tmp_path: Path) -> None:
    method = _method(semantic_weight=1.0, steps=1000)  # long schedule: no lr decay within the test
    targets = prior_semantic_targets(scene, scene.frame_names("train"))
    trainer = open_trainer(scene, method.config, tmp_path, method.setup, {"semantic": targets}, resume=False)
    batch = trainer.sample_batch()  # one fixed batch: its loss must fall
    first = trainer.train_step(batch)
    for _ in range(10):
        last = trainer.train_step(batch)
    assert last["loss_semantic"] < 0.75 * first["loss_semantic"]
    assert last["mse"] < first["mse"]


@pytest.mark.slow
def test_run_method_writes_a_valid_submission_and_resumes(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    overrides = {**TINY, "summary_views": 2, "device": "cpu"}
    sub = run_method("semantic-nerf", bench, out, split="train", overrides=overrides, log=lambda *_: None)
    result = validate_submission(sub, bench, split="train")
    assert result.ok, result.problems
    meta = json.loads((sub / spec.META_JSON).read_text())
    assert meta["semantic_only"] is True and meta["method"] == "semantic-nerf"
    report = evaluate_submission(bench, sub, split="train")
    assert report["summary"]["miou"] is not None and report["summary"]["pq"] is None  # semantic only
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[0]["steps"] == TINY["steps"] and np.isfinite(log[0]["test_psnr"]) and 0 <= log[0]["train_miou_vs_prior"] <= 1
    assert np.isfinite(log[0]["final_loss"]) and log[0]["train_seconds"] > 0
    assert list(log[0]["seconds"]) == ["train", "render_test", "train_miou"]  # the fit's stages, in order

    # resume: a finished fit is not redone; predict without the cached renders gives the same maps
    sid = spec.scenes_in_split(bench, "train")[0]
    work = out / "scenes" / sid
    method = SemanticNeRF(SemanticNeRF.make_config("mini", **overrides))
    scene = SceneData(spec.scene_dir(bench, sid), "sim-m2f")
    stamp = (work / "checkpoint.pt").stat().st_mtime_ns
    again = method.fit(scene, work, resume=True)
    assert again == json.loads((work / FIT_SUMMARY).read_text()) and (work / "checkpoint.pt").stat().st_mtime_ns == stamp
    cached = {p.name: p.ids for p in method.predict(scene, work)}
    (work / FIT_SUMMARY).unlink()
    fresh = {p.name: p.ids for p in method.predict(scene, work)}
    assert cached.keys() == fresh.keys() and all(np.array_equal(cached[k], fresh[k]) for k in cached)


def test_partial_run_resumes_from_its_checkpoint(scene: SceneData, tmp_path: Path) -> None:
    method = _method()
    targets = {"semantic": prior_semantic_targets(scene, scene.frame_names("train"))}
    trainer = open_trainer(scene, method.config, tmp_path, method.setup, targets, resume=True)
    trainer.train(steps=3)  # "killed" after 3 of 8 steps; train() checkpoints at its end
    resumed = open_trainer(scene, method.config, tmp_path, method.setup, targets, resume=True)
    assert resumed.step == 3
    other = _method(head_hidden=9)  # another config never continues this checkpoint
    assert open_trainer(scene, other.config, tmp_path, other.setup, targets, resume=True).step == 0
