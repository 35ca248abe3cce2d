"""Protocols: report format, composition of the metrics, merge/state, errors."""

from __future__ import annotations

import json
import pickle
from typing import Any

import numpy as np
import pytest

from nerfseg.evaluation.metrics.compat import PanopticLiftingScene, resize_nearest
from nerfseg.evaluation.metrics.frame import frame_stats
from nerfseg.evaluation.metrics.panoptic import PanopticQuality
from nerfseg.evaluation.metrics.scene_panoptic import ScenePanopticQuality
from nerfseg.evaluation.protocols import CATEGORIES, SUMMARY_KEYS, accumulator_from_state, get_protocol, list_protocols
from nerfseg.evaluation.types import GT3D, FrameGT, FramePred, Pred3D
from nerfseg import spec
from nerfseg.errors import InputError
from tests.evaluation.test_metrics_panoptic import assert_same

BG = spec.GT_BACKGROUND_SEGMENT_ID


def make_scenes(
    seed: int = 0, n_scenes: int = 2, n_frames: int = 3, h: int = 24, w: int = 32, noise: bool = True
) -> list[tuple[str, str, FrameGT, FramePred]]:
    """Frames of tiny scenes in the benchmark's own conventions: GT background = one stuff segment
    (id 2^16, class 0), objects = instance ids with classes 1..10, some void; predictions with consistent
    ids, a class swap, a missed object, a spurious segment and void noise (unless ``noise`` is False)."""
    rng = np.random.default_rng(seed)
    out = []
    for s in range(n_scenes):
        sid = f"scene{s:02d}"
        classes = {i: int(rng.integers(1, 11)) for i in range(1, 7)}
        for f in range(n_frames):
            gt = np.full((h, w), BG, dtype=np.uint32)
            for i in rng.choice(list(classes), 4, replace=False):
                y, x = rng.integers(0, h - 6), rng.integers(0, w - 6)
                gt[y : y + rng.integers(4, 10), x : x + rng.integers(4, 12)] = i
            gt[: rng.integers(0, 3)] = 0
            segs = {int(i): {"category_id": 0 if i == BG else classes[int(i)], "iscrowd": 0} for i in np.unique(gt) if i}
            pred = gt.copy()
            psegs = {k: {"category_id": v["category_id"]} for k, v in segs.items()}
            if noise:
                objs = [k for k in segs if k != BG]
                pred[gt == objs[0]] = BG  # missed
                psegs.pop(objs[0])
                if len(objs) > 1:
                    psegs[objs[1]]["category_id"] = psegs[objs[1]]["category_id"] % 10 + 1  # class swap
                pred[rng.random(pred.shape) < 0.03] = 0
                pred[h - 3 :, w - 4 :] = 77  # spurious
                psegs[77] = {"category_id": 5}
                psegs = {k: v for k, v in psegs.items() if (pred == k).any()}
            out.append((sid, f"{f:04d}", FrameGT(gt, segs, frozenset(classes)), FramePred(pred, psegs)))
    return out


def run(protocol: str, frames, three_d: dict | None = None):
    acc = get_protocol(protocol).new_accumulator()
    for sid, name, gt, pred in frames:
        acc.update_frame(sid, name, gt, pred)
    for sid, (g3, p3) in (three_d or {}).items():
        acc.update_scene_3d(sid, g3, p3)
    return acc


def _floats(obj: Any):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _floats(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _floats(v)
    elif isinstance(obj, float):
        yield obj


def test_registry():
    assert list_protocols() == ["instance-nerf", "nerfseg-v1", "panoptic-lifting"]
    assert get_protocol().name == spec.DEFAULT_PROTOCOL == "nerfseg-v1"
    with pytest.raises(InputError, match="unknown protocol 'coco'.*nerfseg-v1"):
        get_protocol("coco")


@pytest.mark.parametrize("protocol", ["nerfseg-v1", "instance-nerf", "panoptic-lifting"])
def test_report_format(protocol):
    report = run(protocol, make_scenes()).compute()
    assert report["protocol"] == protocol and report["protocol_version"] == "1" and report["spec_version"] == spec.SPEC_VERSION
    assert set(report["summary"]) == set(SUMMARY_KEYS)
    assert set(report["per_class"]) == set(spec.CLASS_NAMES)
    for row in report["per_class"].values():
        assert {"iou", "pq", "sq", "rq", "tp", "fp", "fn", "iou_sum"} <= set(row)
    assert set(report["per_scene"]) == {"scene00", "scene01"}
    for row in report["per_scene"].values():
        assert {"miou", "pq_things", "pq_scene", "pq_scene_things", "binary_acc", "num_frames"} <= set(row)
        assert row["num_frames"] == 3
    assert report["counts"] == {"num_scenes": 2, "num_frames": 6}
    json.dumps(report, allow_nan=False)  # plain JSON: no NaN, no numpy types
    for key in ("voxel_miou", "ap25", "ap50"):
        assert report["summary"][key] is None
    assert report["summary"]["miou"] is not None and report["summary"]["pq"] is not None
    rates = [v for k, v in report["summary"].items() if v is not None]
    assert all(0.0 <= v <= 1.0 for v in rates)


def test_perfect_prediction_scores_one_everywhere():
    report = run("nerfseg-v1", make_scenes(noise=False)).compute()
    s = report["summary"]
    for key in (
        "miou",
        "miou_dataset",
        "pq",
        "sq",
        "rq",
        "pq_things",
        "pq_stuff",
        "pq_scene",
        "pq_scene_things",
        "binary_acc",
        "binary_miou",
    ):
        assert s[key] == 1.0, key
    pl = run("panoptic-lifting", make_scenes(noise=False)).compute()["summary"]
    assert pl["pq"] == pl["pq_scene"] == pl["miou"] == 1.0
    inerf = run("instance-nerf", make_scenes(noise=False)).compute()
    # objects of the scene that are not in a view are Instance-NeRF FNs even for a perfect prediction
    assert inerf["summary"]["miou"] == 1.0 and inerf["summary"]["sq"] == 1.0 and inerf["summary"]["pq"] < 1.0
    assert inerf["details"]["pq_totals"]["fp"] == 0


def test_nerfseg_v1_composes_the_metrics():
    frames = make_scenes(seed=4)
    report = run("nerfseg-v1", frames).compute()
    pq = PanopticQuality(CATEGORIES)
    spq = ScenePanopticQuality(CATEGORIES)
    for sid, _, gt, pred in frames:
        pq.update(gt.panoptic, gt.segments, pred.panoptic, pred.segments)
        spq.update(sid, gt.panoptic, gt.segments, pred.panoptic, pred.segments)
    ref, ref_scene = pq.compute(), spq.compute()
    assert report["summary"]["pq"] == ref["things"]["pq"] == report["summary"]["pq_things"]
    assert report["summary"]["pq_stuff"] == ref["stuff"]["pq"]
    assert report["details"]["pq_all"]["pq"] == pytest.approx(ref["all"]["pq"])
    assert report["summary"]["pq_scene"] == ref_scene["all"]["pq"]
    assert report["summary"]["pq_scene_things"] == ref_scene["things"]["pq"]
    for c, name in enumerate(spec.CLASS_NAMES):
        for k in ("tp", "fp", "fn"):
            assert report["per_class"][name][k] == ref["per_class"][c][k]


def test_merge_and_state_equal_one_pass():
    frames = make_scenes(seed=2, n_scenes=3)
    for protocol in list_protocols():
        full = run(protocol, frames)
        a = run(protocol, frames[0::2])
        b = run(protocol, frames[1::2])
        b = accumulator_from_state(pickle.loads(pickle.dumps(b.state_dict())))
        assert_same(a.merge(b).compute(), full.compute())
        with pytest.raises(ValueError, match="both"):
            run(protocol, frames[:2]).merge(run(protocol, frames[1:3]))
    with pytest.raises(TypeError):
        run("nerfseg-v1", frames[:1]).merge(run("instance-nerf", frames[1:2]))


def test_frames_are_counted_once_and_bad_frames_record_nothing():
    frames = make_scenes()
    acc = get_protocol("nerfseg-v1").new_accumulator()
    sid, name, gt, pred = frames[0]
    acc.update_frame(sid, name, gt, pred)
    with pytest.raises(InputError, match="twice"):
        acc.update_frame(sid, name, gt, pred)
    before = acc.compute()
    bad = FramePred(pred.panoptic, {k: v for k, v in list(pred.segments.items())[1:]})
    with pytest.raises(InputError, match=f"{sid}/0001.*PNG but not in its JSON"):
        acc.update_frame(sid, "0001", frames[1][2], bad)
    assert acc.compute() == before


def test_instance_nerf_counts_invisible_scene_instances():
    frames = make_scenes(seed=6, noise=False)
    fewer = [(s, n, FrameGT(g.panoptic, g.segments, frozenset()), p) for s, n, g, p in frames]
    with_all = run("instance-nerf", frames).compute()["details"]["pq_totals"]
    visible_only = run("instance-nerf", fewer).compute()["details"]["pq_totals"]
    assert visible_only["fn"] == 0 and with_all["fn"] > 0
    assert with_all["tp"] == visible_only["tp"]


def test_panoptic_lifting_resizes_to_512():
    frames = make_scenes(seed=8, n_scenes=1, h=48, w=64)
    report = run("panoptic-lifting", frames).compute()
    ref = PanopticLiftingScene(CATEGORIES)
    for sid, _, gt, pred in frames:
        g, p = resize_nearest(gt.panoptic), resize_nearest(pred.panoptic)
        assert g.shape == (512, 512)
        ref.update_stats(sid, frame_stats(g, gt.segments, p, pred.segments, strict=False))
    r = ref.compute()
    assert report["summary"]["pq"] == r["pq"] and report["summary"]["miou"] == r["miou"]
    assert report["summary"]["pq_things"] is None and report["summary"]["binary_acc"] is None


def test_3d_metrics_when_given():
    gt = np.zeros((8, 8, 4), dtype=np.uint16)
    gt[:4] = 1
    gt[4:6] = 2
    g3 = GT3D(gt, {1: 3, 2: 7})
    p3 = Pred3D(classes=[3, 7], scores=[0.9, 0.8], instance=gt.copy(), ids=[1, 2])
    report = run("nerfseg-v1", make_scenes(n_scenes=1), {"scene00": (g3, p3)}).compute()
    assert report["summary"]["voxel_miou"] == 1.0 and report["summary"]["ap25"] == 1.0 and report["summary"]["ap50"] == 1.0
    assert report["per_class"]["chair"]["ap50"] == 1.0 and report["per_class"]["sofa"]["ap50"] is None
    assert report["per_scene"]["scene00"]["voxel_miou"] == 1.0
    with pytest.raises(InputError, match="no 3D"):
        get_protocol("panoptic-lifting").new_accumulator().update_scene_3d("s", g3, p3)
