"""COCO mask AP in `nerfseg eval`: GT scores 100, a hand-computed case, and equality with a direct COCOeval run."""

from __future__ import annotations

import contextlib
import io as stdio
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("pycocotools")
from pycocotools import mask as mask_utils  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

from nerfseg.evaluation.api import evaluate_submission  # noqa: E402
from nerfseg.evaluation.gt import load_gt_scene  # noqa: E402
from nerfseg.evaluation.metrics.mask_ap import STAT_KEYS, MaskAP, evaluate_coco_segm  # noqa: E402
from nerfseg.evaluation.protocols import accumulator_from_state, get_protocol  # noqa: E402
from nerfseg.evaluation.types import FrameGT, FramePred  # noqa: E402
from nerfseg import io, spec  # noqa: E402
from nerfseg.cli import cli  # noqa: E402

BG = spec.GT_BACKGROUND_SEGMENT_ID


def test_gt_as_predictions_gives_mask_ap_100(tiny_benchmark: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = CliRunner().invoke(cli, ["eval", "--method", "gt", "--data", str(tiny_benchmark), "--json", str(out), "--no-per-class"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("| ")]
    header, row = ([c.strip() for c in line.strip("| ").split("|")] for line in lines[:2])
    assert row[header.index("Mask AP")] == "100.0"
    report = json.loads(out.read_text())
    section = report["mask_ap"]
    assert report["summary"]["mask_ap"] == section["ap"] == pytest.approx(1.0)
    assert section["ap50"] == section["ap75"] == section["ar100"] == pytest.approx(1.0)
    assert section["backend"] == "pycocotools" and section["iou_type"] == "segm"
    assert section["num_images"] == report["counts"]["num_frames"] == 4
    assert section["num_dt"] == section["num_gt"] > 0
    for name, row in section["per_class"].items():
        assert (row["ap"] == pytest.approx(1.0)) if row["num_gt"] else row["ap"] is None, name
        assert report["per_class"][name]["mask_ap"] == row["ap"]
    assert report["per_class"]["background"].get("mask_ap") is None
    assert all(row["mask_ap"] == pytest.approx(1.0) for row in report["per_scene"].values())


def _square(h: int, w: int, y0: int, x0: int, size: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0 : y0 + size, x0 : x0 + size] = True
    return m


def test_two_overlapping_detections_hand_computed() -> None:
    """One GT chair of 10x10 px; two predicted chairs both overlap it: A (score 0.9) covers 28 of its pixels
    (IoU 0.28), B (score 0.8) the other 72 (IoU 0.72). By hand, per COCO's rules:

    * thresholds 0.50..0.70 (5 of 10): A is a false positive, then B a true positive: precision 1/2 at
      recall 1, and the interpolated precision is 1/2 at every one of the 101 recall points: AP_t = 0.5;
    * thresholds 0.75..0.95: no true positive, AP_t = 0;
    * AP = 5 x 0.5 / 10 = 0.25, AP50 = 0.5, AP75 = 0; the GT (100 px) is 'small', no medium/large GT.

    A lamp GT with no prediction makes the lamp's AP 0 and halves the mean over classes."""
    h, w = 20, 30
    chair, lamp = 3, 9
    gt = np.full((h, w), BG, np.uint32)
    gt[_square(h, w, 2, 2, 10)] = 7
    gt[_square(h, w, 14, 20, 4)] = 8
    gt_segments = {7: {"category_id": chair, "iscrowd": 0}, 8: {"category_id": lamp, "iscrowd": 0}, BG: {"category_id": 0, "iscrowd": 0}}
    pred = np.zeros((h, w), np.uint32)
    pred[2:12, 2:12] = 22  # B: 72 px of the GT chair (rows 2..11, columns 2..8 and two more pixels)
    a_pixels = np.zeros((h, w), bool)
    a_pixels[2:12, 9:12] = True  # 30 px ...
    a_pixels[2, 9] = a_pixels[3, 9] = False  # ... 28 px: A
    pred[a_pixels] = 11
    pred_segments = {11: {"category_id": chair, "score": 0.9}, 22: {"category_id": chair, "score": 0.8}}
    assert (pred == 11).sum() == 28 and (pred == 22).sum() == 72

    acc = get_protocol("nerfseg-v1").new_accumulator()
    acc.update_frame("s", "0000", FrameGT(gt, gt_segments), FramePred(pred, pred_segments))
    section = acc.compute()["mask_ap"]
    chair_row, lamp_row = section["per_class"]["chair"], section["per_class"]["lamp"]
    assert chair_row["ap"] == pytest.approx(0.25, abs=1e-12) and chair_row["ap50"] == pytest.approx(0.5, abs=1e-12)
    assert lamp_row["ap"] == 0.0 and section["per_class"]["bed"]["ap"] is None
    assert section["ap"] == pytest.approx((0.25 + 0.0) / 2, abs=1e-12)
    assert section["ap50"] == pytest.approx(0.25, abs=1e-12) and section["ap75"] == 0.0
    assert section["ap_small"] == section["ap"] and section["ap_medium"] is None and section["ap_large"] is None

    # COCOeval itself, on masks encoded here one by one
    def rle(m: np.ndarray) -> dict:
        r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        return {"size": r["size"], "counts": r["counts"].decode("ascii")}

    gt_data = {
        "images": [{"id": 1, "height": h, "width": w}],
        "categories": [{"id": c, "name": spec.CLASS_NAMES[c]} for c in spec.THING_CLASSES],
        "annotations": [
            {"id": i + 1, "image_id": 1, "category_id": c, "segmentation": rle(gt == k), "area": int((gt == k).sum()), "bbox": [0, 0, 1, 1], "iscrowd": 0}
            for i, (k, c) in enumerate(((7, chair), (8, lamp)))
        ],
    }
    dts = [{"image_id": 1, "category_id": chair, "segmentation": rle(pred == k), "score": s} for k, s in ((11, 0.9), (22, 0.8))]
    stats = _pycocotools_stats(gt_data, dts)
    assert np.allclose([-1.0 if section[k] is None else section[k] for k in STAT_KEYS], stats, atol=1e-12, rtol=0)


def _pycocotools_stats(gt_data: dict, dts: list[dict]) -> np.ndarray:
    """COCOeval(segm).summarize() stats, the reference."""
    with contextlib.redirect_stdout(stdio.StringIO()):
        coco = COCO()
        coco.dataset = gt_data
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dts), "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats, dtype=np.float64)


def _perturb(sub: Path, data_root: Path, seed: int = 7) -> None:
    """Turn a GT submission into a plausible method's: grown/shrunk masks, dropped and spurious segments,
    class swaps, random scores (some absent: 1.0, ties resolved by segment order)."""
    rng = np.random.default_rng(seed)
    for json_path in sorted(sub.glob("*/panoptic.json")):
        data = json.loads(json_path.read_text())
        for ann in data["annotations"]:
            png = json_path.parent / spec.PANOPTIC_DIR / ann["file_name"]
            ids = io.read_panoptic_png(png).astype(np.uint32)
            cats = {s["id"]: s["category_id"] for s in ann["segments_info"]}
            for seg_id in list(cats):
                if cats[seg_id] == 0:
                    continue
                mask = ids == seg_id
                r = rng.random()
                if r < 0.15:  # dropped: its pixels become background
                    ids[mask] = next(k for k, c in cats.items() if c == 0)
                elif r < 0.5:  # shifted by a pixel or two (over whatever is there)
                    dy, dx = (int(v) for v in rng.integers(-2, 3, size=2))
                    ids[np.roll(np.roll(mask, dy, 0), dx, 1)] = seg_id
                if rng.random() < 0.2:
                    cats[seg_id] = int(rng.integers(1, spec.NUM_CLASSES))
            y, x = (int(v) for v in rng.integers(0, min(ids.shape) - 4, size=2))
            spurious = 1000 + int(rng.integers(0, 1000))
            ids[y : y + 4, x : x + 5] = spurious
            cats[spurious] = int(rng.integers(1, spec.NUM_CLASSES))
            present = set(np.unique(ids).tolist()) - {0}
            infos = []
            for seg_id in sorted(present):
                info = {"id": seg_id, "category_id": cats[seg_id]}
                if rng.random() < 0.8:
                    info["score"] = round(float(rng.random()), 3)  # rounding makes some ties
                infos.append(info)
            ann["segments_info"] = infos
            io.write_panoptic_png(png, ids)
        json_path.write_text(json.dumps(data))


def _reference_coco(data_root: Path, sub: Path, scenes: list[str] | None = None) -> tuple[dict, list[dict]]:
    """GT and results built here from the files, with pycocotools.mask.encode of each binary mask, images in
    (scene, frame) order and each view's segments by ascending id (the documented order for tied scores)."""
    images, anns, dts = [], [], []
    for sid in sorted(scenes or spec.scenes_in_split(data_root, "test")):
        gt_scene = load_gt_scene(data_root, sid, "test")
        pred_json = json.loads((sub / sid / spec.PANOPTIC_JSON).read_text())
        pred_infos = {Path(a["file_name"]).stem: a["segments_info"] for a in pred_json["annotations"]}
        for name in sorted(gt_scene.frame_names):
            ids, segments = gt_scene.frame(name)
            image_id = len(images) + 1
            images.append({"id": image_id, "height": ids.shape[0], "width": ids.shape[1]})
            for k in sorted(segments):
                if segments[k]["category_id"] == 0:
                    continue
                m = np.asfortranarray((ids == k).astype(np.uint8))
                r = mask_utils.encode(m)
                anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": segments[k]["category_id"], "segmentation": r, "area": int(m.sum()), "bbox": list(mask_utils.toBbox(r)), "iscrowd": 0})
            pred = io.read_panoptic_png(sub / sid / spec.PANOPTIC_DIR / f"{name}.png")
            for info in sorted(pred_infos[name], key=lambda s: s["id"]):
                if info["category_id"] == 0:
                    continue
                r = mask_utils.encode(np.asfortranarray((pred == info["id"]).astype(np.uint8)))
                dts.append({"image_id": image_id, "category_id": info["category_id"], "segmentation": r, "score": info.get("score", 1.0)})
    cats = [{"id": c, "name": spec.CLASS_NAMES[c]} for c in spec.THING_CLASSES]
    return {"images": images, "annotations": anns, "categories": cats}, dts


def test_mask_ap_matches_cocoeval_on_a_perturbed_submission(tiny_benchmark: Path, gt_submission: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = Path(shutil.copytree(gt_submission, tmp_path / "perturbed"))
    _perturb(sub, tiny_benchmark)
    one = evaluate_submission(tiny_benchmark, sub, workers=1)
    two = evaluate_submission(tiny_benchmark, sub, workers=2)
    assert one["mask_ap"] == two["mask_ap"]  # merged worker states give the same numbers
    ours = np.array([-1.0 if one["mask_ap"][k] is None else one["mask_ap"][k] for k in STAT_KEYS])
    gt_data, dts = _reference_coco(tiny_benchmark, sub)
    ref = _pycocotools_stats(gt_data, dts)
    assert 0.05 < ref[0] < 0.95  # a real, imperfect submission
    np.testing.assert_allclose(ours, ref, atol=1e-9, rtol=0)
    assert one["summary"]["mask_ap"] == pytest.approx(ref[0], abs=1e-9)
    for sid, row in one["mask_ap"]["per_scene"].items():  # each scene's views on their own
        alone = _pycocotools_stats(*_reference_coco(tiny_benchmark, sub, [sid]))
        assert row["ap"] == pytest.approx(alone[0], abs=1e-9) and row["ap50"] == pytest.approx(alone[1], abs=1e-9)
        assert one["per_scene"][sid]["mask_ap"] == row["ap"]
    assert len(one["mask_ap"]["per_scene"]) == 2

    pytest.importorskip("hotcoco")
    monkeypatch.setenv("NERFSEG_MASK_AP_BACKEND", "hotcoco")
    fast = evaluate_submission(tiny_benchmark, sub, workers=1)["mask_ap"]
    assert fast["backend"] == "hotcoco"
    np.testing.assert_allclose([-1.0 if fast[k] is None else fast[k] for k in STAT_KEYS], ref, atol=1e-9, rtol=0)
    for name, row in one["mask_ap"]["per_class"].items():
        for key in ("ap", "ap50"):
            assert (row[key] is None) == (fast["per_class"][name][key] is None)
            if row[key] is not None:
                assert fast["per_class"][name][key] == pytest.approx(row[key], abs=1e-9)


def test_state_round_trip_and_semantic_only(tiny_benchmark: Path, submission_copy: Path) -> None:
    acc = get_protocol("nerfseg-v1").new_accumulator()
    other = get_protocol("nerfseg-v1").new_accumulator()
    for k, sid in enumerate(spec.scenes_in_split(tiny_benchmark, "test")):
        gt = load_gt_scene(tiny_benchmark, sid, "test")
        for name in gt.frame_names:
            ids, segments = gt.frame(name)
            (acc if k == 0 else other).update_frame(sid, name, gt.frame_gt(name), FramePred(ids, {i: {"category_id": s["category_id"]} for i, s in segments.items()}))
    state = other.state_dict()
    assert json.loads(json.dumps(state["metrics"]["mask_ap"])) == state["metrics"]["mask_ap"]  # plain data
    rebuilt = accumulator_from_state(pickle.loads(pickle.dumps(state)))
    merged = acc.merge(rebuilt).compute()
    assert merged["mask_ap"]["ap"] == pytest.approx(1.0) and merged["mask_ap"]["num_images"] == 4
    with pytest.raises(ValueError, match="both"):
        MaskAP().merge(rebuilt.mask_ap).merge(rebuilt.mask_ap)

    meta_path = submission_copy / "meta.json"
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "semantic_only": True}))
    report = evaluate_submission(tiny_benchmark, submission_copy)
    assert report["summary"]["mask_ap"] is None
    assert all(report["mask_ap"][k] is None for k in STAT_KEYS)
    assert all(row["ap"] is None for row in report["mask_ap"]["per_class"].values())
    assert all(row["ap"] is None for row in report["mask_ap"]["per_scene"].values())
    assert all(row["mask_ap"] is None for row in report["per_scene"].values())


def test_empty_cases() -> None:
    """No GT instance anywhere: AP undefined (None), not 0; GT but no prediction: AP 0."""
    empty = MaskAP()
    assert empty.compute()["ap"] is None
    gt = np.full((6, 8), BG, np.uint32)
    gt[1:4, 1:4] = 5
    acc = MaskAP()
    acc.update("s", "0000", gt, {5: {"category_id": 2}, BG: {"category_id": 0}}, np.full((6, 8), 9, np.uint32), {9: {"category_id": 0}})
    out = acc.compute()
    assert out["ap"] == 0.0 and out["num_dt"] == 0 and out["per_class"][2]["ap"] == 0.0
    gt_data, results = acc.coco()
    assert evaluate_coco_segm(gt_data, results)["stats"][0] == 0.0
