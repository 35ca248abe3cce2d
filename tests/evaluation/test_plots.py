"""The evaluation pictures say what the metric decided: overlay colours follow the PQ matching, the
legend lists the classes present, the per-class plot tells "absent" from "scored 0", and ``show`` draws
test views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nerfseg.evaluation.gt import load_gt_scene
from nerfseg.evaluation.metrics.frame import frame_stats
from nerfseg.evaluation.metrics.panoptic import CategoryTable, frame_pq_counts
from nerfseg.evaluation.plots import (
    BACKGROUND_COLOUR,
    FN_COLOUR,
    FP_COLOUR,
    TP_COLOUR,
    UNMATCHED_COLOUR,
    class_colour,
    frame_overlay,
    legend_entries,
    overlay_figure,
    parse_views,
    per_class_figure,
    pick_views,
    plot_per_class,
    segment_colour,
)
from nerfseg.evaluation.protocols import CATEGORIES
from nerfseg import spec
from nerfseg.cli import cli
from nerfseg.io import read_png

BG = spec.GT_BACKGROUND_SEGMENT_ID
CHAIR, BED, SOFA = spec.CLASS_INDEX_BY_NAME["chair"], spec.CLASS_INDEX_BY_NAME["bed"], spec.CLASS_INDEX_BY_NAME["sofa"]


def _frame(pred_bg_id: int = 300) -> tuple[np.ndarray, dict, np.ndarray, dict]:
    """40x60 view: GT background, a chair (id 5) and a bed (id 7), a void strip; the prediction finds the
    chair exactly (id 100), misses the bed and adds a bed where there is none (id 200)."""
    gt = np.full((40, 60), BG, dtype=np.uint32)
    gt[:3] = 0  # void
    gt[10:20, 5:15] = 5
    gt[25:35, 40:55] = 7
    gt_segments = {BG: {"category_id": 0, "iscrowd": 0}, 5: {"category_id": CHAIR, "iscrowd": 0}, 7: {"category_id": BED, "iscrowd": 0}}
    pred = np.full((40, 60), pred_bg_id, dtype=np.uint32)
    pred[10:20, 5:15] = 100
    pred[5:15, 30:40] = 200
    pred_segments = {pred_bg_id: {"category_id": 0}, 100: {"category_id": CHAIR}, 200: {"category_id": BED}}
    for segs in (gt_segments,):
        for k, v in segs.items():
            v["area"] = int((gt == k).sum())
    return gt, gt_segments, pred, pred_segments


def _all(img: np.ndarray, mask: np.ndarray, colour: tuple[float, float, float]) -> bool:
    return bool(np.allclose(img[mask], np.array(colour)))


def test_matched_prediction_takes_its_gt_colour_and_unmatched_is_striped_red() -> None:
    gt, gt_segs, pred, pred_segs = _frame()
    ov = frame_overlay(gt, gt_segs, pred, pred_segs)
    chair = gt == 5
    assert _all(ov.gt, chair, segment_colour(5, CHAIR)) and _all(ov.pred, chair, segment_colour(5, CHAIR))
    fp = pred == 200
    red = np.all(np.isclose(ov.pred, UNMATCHED_COLOUR), axis=-1)
    own = np.all(np.isclose(ov.pred, class_colour(BED)), axis=-1)
    assert (red | own)[fp].all() and red[fp].sum() > fp.sum() // 3 and own[fp].sum() > fp.sum() // 3  # stripes
    assert not red[~fp].any()  # nothing else is red
    assert _all(ov.pred, (pred == 300) & (gt == BG), BACKGROUND_COLOUR)
    # TP/FP/FN panel: the chair is TP, the invented bed FP, the missed bed FN; background's outcome in words
    assert _all(ov.outcome, chair, TP_COLOUR) and _all(ov.outcome, fp, FP_COLOUR) and _all(ov.outcome, gt == 7, FN_COLOUR)
    assert (ov.tp, ov.fp, ov.fn, ov.background) == (1, 1, 1, "TP")


def test_colours_do_not_depend_on_prediction_ids() -> None:
    """Background keeps its colour whatever id a method gives it (it used to change from frame to frame)."""
    a = frame_overlay(*_frame(pred_bg_id=300))
    b = frame_overlay(*_frame(pred_bg_id=987654))
    assert np.array_equal(a.pred, b.pred) and np.array_equal(a.gt, b.gt)


def test_iou_at_half_is_unmatched_as_in_the_evaluator() -> None:
    gt, gt_segs, pred, pred_segs = _frame()
    pred[10:20, 5:15] = 300
    pred[10:20, 10:20] = 100  # half the chair plus as much outside: IoU 1/3
    ov = frame_overlay(gt, gt_segs, pred, pred_segs)
    assert ov.tp == 0 and ov.fp == 2
    assert not np.all(np.isclose(ov.pred[pred == 100], segment_colour(5, CHAIR)), axis=-1).any()


def test_overlay_counts_agree_with_the_metric(tiny_benchmark: Path) -> None:
    """On every test view, shifted and partly relabelled, the picture's TP/FP/FN are the PQ metric's."""
    cats = CategoryTable(CATEGORIES)
    things = np.array([CATEGORIES[c] for c in sorted(CATEGORIES)])
    rng = np.random.default_rng(0)
    totals = np.zeros(3, dtype=int)
    for sid in spec.scenes_in_split(tiny_benchmark, "test"):
        gt = load_gt_scene(tiny_benchmark, sid, "test")
        for name in gt.frame_names:
            gt_ids, gt_segs = gt.frame(name)
            for shift in (0, 2, 5):
                pred_ids = np.roll(gt_ids, shift, axis=1)
                pred_segs = {k: {"category_id": int(rng.integers(1, spec.NUM_CLASSES)) if rng.random() < 0.3 else v["category_id"]}
                             for k, v in gt_segs.items()}
                tp, fp, fn, _ = frame_pq_counts(frame_stats(gt_ids, gt_segs, pred_ids, pred_segs), cats)
                ov = frame_overlay(gt_ids, gt_segs, pred_ids, pred_segs)
                assert (ov.tp, ov.fp, ov.fn) == (tp[things].sum(), fp[things].sum(), fn[things].sum())
                totals += (ov.tp, ov.fp, ov.fn)
    assert (totals > 0).all()  # every outcome occurred, so the comparison tested each


def test_legend_lists_the_classes_present() -> None:
    gt, gt_segs, pred, pred_segs = _frame()
    ov = frame_overlay(gt, gt_segs, pred, pred_segs)
    assert ov.classes == [0, BED, CHAIR]
    fig = overlay_figure(ov, np.zeros(gt.shape + (3,), np.uint8), "RGB")
    texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert {"background", "chair", "bed", "TP", "FP", "FN (missed GT)"} <= set(texts) and "sofa" not in texts
    assert [e[0] for e in legend_entries([CHAIR])][:2] == ["chair", "void"]


def test_per_class_plot_marks_absent_classes() -> None:
    report = {"method": "m", "protocol": "nerfseg-v1", "per_class": {name: {"iou": None, "pq": None, "tp": 0, "fp": 0, "fn": 0} for name in spec.CLASS_NAMES}}
    report["per_class"]["chair"] = {"iou": 0.0, "pq": 0.0, "tp": 0, "fp": 0, "fn": 2}  # in the GT, scored 0
    report["per_class"]["bed"] = {"iou": 0.5, "pq": 0.4, "tp": 1, "fp": 0, "fn": 0}
    fig = per_class_figure(report)
    ax = fig.axes[0]
    texts = [(round(t.get_position()[0], 1), t.get_text()) for t in ax.texts]
    x_chair, x_sofa = spec.CLASS_NAMES.index("chair"), spec.CLASS_NAMES.index("sofa")
    assert (x_chair - 0.2, "0") in texts and (x_sofa - 0.2, "n/a") in texts and (x_chair - 0.2, "n/a") not in texts
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks[x_sofa] == "sofa\n(no GT)" and ticks[x_chair] == "chair"


def test_per_class_png_is_written(tmp_path: Path) -> None:
    plot_per_class({"per_class": {}}, tmp_path / "p.png")
    assert read_png(tmp_path / "p.png", expect="rgb").shape[0] > 100


def test_views_option_parsing() -> None:
    assert parse_views("all") is None and parse_views("3") == 3 and parse_views("0011,s/0019") == ["0011", "s/0019"]
    names = [f"{i:04d}" for i in range(10)]
    assert pick_views("s", names, 1) == ["0005"] and pick_views("s", names, 99) == names
    assert pick_views("s", names, ["0003", "t/0004", "s/0006"]) == ["0003", "0006"]
    with pytest.raises(ValueError):
        parse_views(",")


def test_eval_plots_every_test_view_or_the_chosen_ones(tiny_benchmark: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["eval", "--method", "gt", "--data", str(tiny_benchmark), "--no-per-class", "--workers", "1"]
    result = runner.invoke(cli, [*base, "--plots", str(tmp_path / "all")])
    assert result.exit_code == 0, result.output
    scenes = spec.scenes_in_split(tiny_benchmark, "test")
    expected = {f"overlay_{sid}_{n}.png" for sid in scenes for n in load_gt_scene(tiny_benchmark, sid).frame_names}
    assert {p.name for p in (tmp_path / "all").glob("overlay_*.png")} == expected
    result = runner.invoke(cli, [*base, "--plots", str(tmp_path / "one"), "--views", f"{scenes[0]}/0003"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "one").glob("overlay_*.png")] == [f"overlay_{scenes[0]}_0003.png"]
    png = read_png(tmp_path / "one" / f"overlay_{scenes[0]}_0003.png", expect="rgb")
    assert (np.abs(png.astype(int) - np.round(np.array(BACKGROUND_COLOUR) * 255)).sum(-1) <= 3).sum() > 100
    result = runner.invoke(cli, [*base, "--plots", str(tmp_path / "bad"), "--views", "0042"])
    assert result.exit_code != 0 and "no test view named 0042" in result.output
    assert "| Method |" not in result.output  # refused before the evaluation ran


def test_show_draws_test_views(tiny_benchmark: Path, tmp_path: Path) -> None:
    sid = spec.scenes_in_split(tiny_benchmark, "test")[0]
    scene = tiny_benchmark / spec.SCENES_DIR / sid
    test_views = [f.name for f in spec.load_scene_info(scene).frames if f.split == "test"]
    result = CliRunner().invoke(cli, ["show", str(scene), "--out", str(tmp_path / "s.png"), "--split", "test", "--views", "5"])
    assert result.exit_code == 0, result.output
    assert f"(views {', '.join(test_views)})" in result.output
    assert read_png(tmp_path / "s.png", expect="rgb").shape[1] > 500
