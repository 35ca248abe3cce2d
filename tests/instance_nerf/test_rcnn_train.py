"""NeRF-RCNN end to end: the detector learns synthetic boxes; train_rcnn writes its run folder, resumes
exactly, validates with the evaluator's 3D AP; load_rcnn / predict_scene; the click command."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner

from nerfseg.evaluation.metrics.voxel3d import Voxel3D
from nerfseg.evaluation.types import GT3D, Pred3D
from nerfseg.instance_nerf.rcnn.cli import train_rcnn as train_rcnn_command
from nerfseg.instance_nerf.rcnn.config import RCNNConfig, preset_config
from nerfseg.instance_nerf.rcnn.model import NeRFRCNN, predict_scene
from nerfseg.instance_nerf.rcnn.synthetic import make_scene, write_synthetic_benchmark
from nerfseg.instance_nerf.rcnn import train as rcnn_train
from nerfseg.instance_nerf.rcnn.train import MASK_THRESHOLD_CANDIDATES, calibrate_mask_threshold, load_rcnn, one_cycle, sample_to_inputs, train_rcnn
from nerfseg.errors import InputError

SMALL = {"input_resolution": None, "roi_canonical_size": 32.0, "rpn_size_ranges": (-1.0, 3.2, 6.4, 12.8, 1e8)}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_detector_learns_synthetic_boxes():
    """Overfit one 32^3 grid with two objects: each is found with its class and a mask of IoU > 0.5."""
    torch.manual_seed(0)
    s = make_scene((32, 32, 32), rng=np.random.default_rng(1), num_objects=2, size_range=(8, 14))
    assert len(s.boxes) == 2
    cfg = preset_config("mini", **SMALL)
    model = NeRFRCNN(cfg)
    steps = 50
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, one_cycle(0.2, steps))
    grids, shapes, targets = sample_to_inputs([s, s], torch.device("cpu"))
    first = None
    for _ in range(steps):
        losses = model(grids, shapes, targets)
        loss = sum(losses.values())
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
    assert float(loss.detach()) < 0.5 * first
    det = predict_scene(model, s.grid)
    assert det.masks.shape[1:] == s.instance.shape and det.masks.dtype == bool
    assert (np.diff(det.scores) <= 0).all()
    for g, (gid, label) in enumerate(zip(s.ids, s.labels)):
        gt = s.instance == gid
        ious = np.array([_iou(m, gt) for m in det.masks])
        best = int(np.argmax(ious))
        assert ious[best] > 0.5, ious
        assert det.labels[best] == label
        assert best < 2  # the two objects are the two most confident detections
    acc = Voxel3D()
    acc.update("s", GT3D(instance=s.instance, classes=dict(zip(s.ids.tolist(), s.labels.tolist()))),
               Pred3D(classes=det.labels, scores=det.scores, masks=det.masks))
    assert acc.compute()["ap50"] == pytest.approx(1.0)


def test_scene_without_objects_trains_and_predicts():
    torch.manual_seed(0)
    model = NeRFRCNN(preset_config("mini", **SMALL))
    s = make_scene((24, 20, 16), boxes=np.zeros((0, 6)), classes=[])
    grids, shapes, targets = sample_to_inputs([s, s], torch.device("cpu"))
    losses = model(grids, shapes, targets)
    assert set(losses) == {"rpn_cls", "rpn_iou", "rpn_ctr", "roi_cls", "roi_box", "roi_mask"}
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    det = predict_scene(model, s.grid)
    assert det.masks.shape == (len(det), 24, 20, 16)


def test_predict_scene_resamples_to_working_resolution():
    torch.manual_seed(0)
    model = NeRFRCNN(preset_config("mini", input_resolution=16, roi_canonical_size=16.0))
    s = make_scene((32, 24, 20), rng=np.random.default_rng(0), num_objects=1)
    det = predict_scene(model, s.grid)
    assert det.masks.shape == (len(det), 32, 24, 20)
    assert det.boxes.shape == (len(det), 6) and len(det) > 0
    assert (det.boxes[:, 3:] <= np.array([32, 24, 20]) + 1e-4).all()
    assert det.labels.min() >= 1 and det.labels.max() <= 10
    assert len(det) <= model.config.detections_per_scene


def test_train_rcnn_run_folder_resume_and_cli(tmp_path):
    root = tmp_path / "data"
    write_synthetic_benchmark(root, {"train": 2, "val": 1}, shape=(32, 24, 16), size_range=(5, 9), seed=2)
    over = {**SMALL, "iterations": 4, "val_every": 2, "checkpoint_every": 2, "log_every": 1}

    a = train_rcnn(root, tmp_path / "a", "mini", "cpu", resume=False, overrides=over, progress=False)
    assert a["iterations"] == 4 and a["finished"] and a["val_scenes"] == 1
    assert a["ap25"] is not None and 0.0 <= a["ap25"] <= 1.0
    run = tmp_path / "a"
    for name in ("config.json", "log.jsonl", "checkpoint_last.pt", "checkpoint_best.pt", "summary.json"):
        assert (run / name).exists(), name
    cfg = RCNNConfig.from_dict(json.loads((run / "config.json").read_text()))
    assert cfg == preset_config("mini", **over)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log if r["type"] == "train"] == [1, 2, 3, 4]
    assert [r["iteration"] for r in log if r["type"] == "val"] == [2, 4]
    assert all(np.isfinite(r["loss"]) for r in log if r["type"] == "train")

    # interrupted after 2 steps, then resumed: the same weights as the uninterrupted run
    b1 = train_rcnn(root, tmp_path / "b", "mini", "cpu", resume=True, overrides=over, progress=False, stop_at=2)
    assert b1["iterations"] == 2 and not b1["finished"]
    b2 = train_rcnn(root, tmp_path / "b", "mini", "cpu", resume=True, overrides=over, progress=False)
    assert b2["resumed_from"] == 2 and b2["iterations"] == 4
    wa = torch.load(run / "checkpoint_last.pt", weights_only=True)["model"]
    wb = torch.load(tmp_path / "b" / "checkpoint_last.pt", weights_only=True)["model"]
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6)
    assert b2["ap25"] == pytest.approx(a["ap25"])

    # logging / checkpoint cadence may change on resume, what is learned may not
    b3 = train_rcnn(root, tmp_path / "b", "mini", "cpu", resume=True, overrides={**over, "log_every": 3, "val_every": 0}, progress=False)
    assert b3["resumed_from"] == 4 and b3["ap25"] == pytest.approx(a["ap25"])
    with pytest.raises(InputError, match="different config"):
        train_rcnn(root, tmp_path / "b", "mini", "cpu", resume=True, overrides={**over, "lr": 5e-4}, progress=False)

    model = load_rcnn(run / "checkpoint_best.pt")
    # the best checkpoint carries the config but for the mask threshold chosen on val (calibrate_mask_threshold)
    assert a["mask_threshold"] in MASK_THRESHOLD_CANDIDATES and model.config.mask_threshold == a["mask_threshold"]
    assert model.config.replace(mask_threshold=cfg.mask_threshold) == cfg and not model.training
    assert [r["chosen"] for r in log if r["type"] == "mask_threshold"] == [a["mask_threshold"]]
    with np.load(root / "features" / "synth_0002.npz") as z:
        grid = z["rgbsigma"]
    det = predict_scene(model, grid)
    assert det.masks.shape[1:] == grid.shape[:3]
    with pytest.raises(InputError, match="not found"):
        load_rcnn(tmp_path / "nope.pt")

    res = CliRunner().invoke(train_rcnn_command, ["--data", str(root), "--out", str(tmp_path / "c"), "--iterations", "1", "--no-progress", "--no-resume"])
    assert res.exit_code == 0, res.output
    assert "AP25" in res.output and "AP50" in res.output


def test_mask_threshold_is_chosen_on_val_and_stored_once(tmp_path, monkeypatch):
    """The candidate with the highest val AP25 wins, 0.5 keeps ties; the choice lands in the checkpoint (what
    load_rcnn gives Instance-NeRF) and a calibrated checkpoint is not calibrated again. Off: 0.5 stays."""
    root = tmp_path / "data"
    write_synthetic_benchmark(root, {"train": 1, "val": 1}, shape=(24, 20, 12), num_objects=2, size_range=(4, 8), seed=5)
    over = {**SMALL, "iterations": 1, "val_every": 0, "checkpoint_every": 1}
    off = train_rcnn(root, tmp_path / "off", "mini", "cpu", resume=False, progress=False, overrides={**over, "calibrate_mask_threshold": False})
    assert off["mask_threshold"] is None and load_rcnn(tmp_path / "off" / "checkpoint_best.pt").config.mask_threshold == 0.5

    seen: list[float] = []

    def fake_eval(model, data_root, scene_ids, device=None):  # AP25 peaks at 0.3, AP50 flat
        seen.append(model.config.mask_threshold)
        return {"ap25": 0.5 - abs(model.config.mask_threshold - 0.3), "ap50": 0.1, "voxel_miou": 0.0, "seconds": 0.0}

    monkeypatch.setattr(rcnn_train, "evaluate_rcnn", fake_eval)
    ckpt = tmp_path / "off" / "checkpoint_best.pt"
    rec = calibrate_mask_threshold(ckpt, root, ["synth_0001"])
    assert rec["chosen"] == 0.3 and seen == list(MASK_THRESHOLD_CANDIDATES)
    assert rec["ap25"][MASK_THRESHOLD_CANDIDATES.index(0.3)] == pytest.approx(0.5)
    assert load_rcnn(ckpt).config.mask_threshold == 0.3
    seen.clear()
    assert calibrate_mask_threshold(ckpt, root, ["synth_0001"]) == rec and not seen  # stored once

    # a tie with the reference's 0.5 keeps 0.5
    monkeypatch.setattr(rcnn_train, "evaluate_rcnn", lambda *a, **k: {"ap25": 0.2, "ap50": 0.1, "voxel_miou": 0.0, "seconds": 0.0})
    on = train_rcnn(root, tmp_path / "on", "mini", "cpu", resume=False, progress=False, overrides=over)
    assert on["mask_threshold"] == 0.5 and on["mask_threshold_calibration"]["ap25"] == [0.2] * len(MASK_THRESHOLD_CANDIDATES)
    with pytest.raises(InputError, match="val scenes"):
        calibrate_mask_threshold(tmp_path / "on" / "checkpoint_last.pt", root, [])


def test_train_scenes_limits_the_training_rooms(tmp_path):
    """`train_scenes=N` trains on the first N train scenes (rooms vs AP) and refuses more than the split has."""
    root = tmp_path / "data"
    write_synthetic_benchmark(root, {"train": 3, "val": 1}, shape=(32, 24, 16), size_range=(5, 9), seed=3)
    over = {**SMALL, "iterations": 1, "val_every": 0, "checkpoint_every": 1, "train_scenes": 2}
    summary = train_rcnn(root, tmp_path / "a", "mini", "cpu", resume=False, overrides=over, progress=False)
    assert summary["train_scenes"] == 2
    with pytest.raises(InputError, match="only 3 scenes"):
        train_rcnn(root, tmp_path / "b", "mini", "cpu", resume=False, overrides={**over, "train_scenes": 4}, progress=False)


def test_rcnn_recall_benchmark_reports_why_and_draws(tmp_path):
    """benchmarks/rcnn_recall.py on a tiny trained checkpoint: recall lines, the per-class reasons, plots, JSON."""
    import subprocess
    import sys
    from pathlib import Path

    root = tmp_path / "data"
    write_synthetic_benchmark(root, {"train": 1, "test": 1}, shape=(24, 20, 12), num_objects=2, size_range=(4, 8), seed=4)
    summary = train_rcnn(root, tmp_path / "run", "mini", "cpu", resume=False, progress=False,
                         overrides={"iterations": 1, "input_resolution": 32, "val_every": 0, "checkpoint_every": 1})
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, str(repo / "benchmarks" / "rcnn_recall.py"), "--checkpoint", summary["checkpoint"],
                          "--data", str(root), "--split", "test", "--plots", str(tmp_path / "plots"), "--json", str(tmp_path / "r.json")],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    assert "score > 0.5: recall" in out and "per class at score > 0.5" in out
    res = json.loads((tmp_path / "r.json").read_text())
    (sid,) = res["scenes"]
    assert len(res["scenes"][sid]["gt"]) == res["instances"] == 2
    assert (tmp_path / "plots" / f"{sid}.png").stat().st_size > 1000
