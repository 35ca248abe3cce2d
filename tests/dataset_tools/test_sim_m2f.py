"""Tests of the view-consistent sim-m2f (nerfseg/dataset_tools/sim_m2f.py) and the cross-view consistency report
(nerfseg/dataset_tools/prior_stats.py): correlation 0 = the independent model's draws, correlation 1 = one class per
object in every view, nearby views agree more than distant ones, spurious sites stay put in 3D, boundaries
snap to image edges, and the report is deterministic for a seed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from nerfseg.dataset_tools.priors import SimM2FParams, simulate_sim_m2f, write_priors
from nerfseg.dataset_tools.sim_m2f import ObjectLatents, SpuriousSites, ViewContext, correlated_uniform
from nerfseg import spec
from nerfseg.cameras import Intrinsics, look_at
from nerfseg.gt3d import GT3D, make_instance_table, write_gt3d
from nerfseg.io import write_json_atomic
from tests.dataset_tools.test_priors import BED, CHAIR, DESK, TABLE, make_tiny_scene

CONF = {"desk": {"table": 0.5}}


def _desks(n: int = 12, h: int = 48, w: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """n separate desks (ids 1..n) in one image: 4 px gaps, so they never touch or merge."""
    inst = np.zeros((h, w), np.uint16)
    sem = np.zeros((h, w), np.uint8)
    cols = 4
    for k in range(n):
        r, c = divmod(k, cols)
        ys, xs = slice(2 + 15 * r, 13 + 15 * r), slice(2 + 16 * c, 14 + 16 * c)
        inst[ys, xs] = k + 1
        sem[ys, xs] = DESK
    return inst, sem


def _ring_view(latents: ObjectLatents, n_obj: int, azimuth_deg: float) -> ViewContext:
    """A camera on a circle around the origin; every object sits at the origin (only directions matter)."""
    a = math.radians(azimuth_deg)
    c2w = look_at(np.array([3 * math.cos(a), 3 * math.sin(a), 1.0]), np.zeros(3))
    return ViewContext(latents, centres={k: np.zeros(3) for k in range(1, n_obj + 1)}, c2w=c2w)


def _labels(ids: np.ndarray, segs: list[dict], inst: np.ndarray, n_obj: int) -> list[int]:
    cat = {s["id"]: s["category_id"] for s in segs}
    return [cat[int(np.bincount(ids[inst == k].astype(np.int64)).argmax())] for k in range(1, n_obj + 1)]


def test_copula_is_identity_at_zero_and_uniform_otherwise() -> None:
    u = np.random.default_rng(0).random(20000)
    assert correlated_uniform(u, np.ones_like(u), 0.0) is u  # zero correlation: the view's own draws, unchanged
    lat = np.random.default_rng(1).standard_normal(u.size)
    v = correlated_uniform(u, lat, 0.7)
    assert abs(v.mean() - 0.5) < 0.01 and abs((v < 0.2).mean() - 0.2) < 0.01  # still U(0, 1) marginally


def test_consistency_zero_reproduces_the_independent_draws() -> None:
    inst, sem = _desks()
    params = SimM2FParams.disabled(confusion=CONF, miss_base=0.3, split_prob=0.4, consistency=0.0)
    latents = ObjectLatents(0, 123, 4, params.view_corr_deg, params.view_invariance)
    for k in range(5):
        a = simulate_sim_m2f(inst, sem, params, np.random.default_rng(k))
        b = simulate_sim_m2f(inst, sem, params, np.random.default_rng(k), view=_ring_view(latents, 12, 30.0 * k))
        assert np.array_equal(a[0], b[0]) and a[1] == b[1]


def _agreement(params: SimM2FParams, azimuths: list[float], n_scenes: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Labels (scenes, views, objects) of 12 desks seen from ``azimuths``, and a mask of 'seen as desk or table'."""
    inst, sem = _desks()
    out = np.zeros((n_scenes, len(azimuths), 12), np.int64)
    for s in range(n_scenes):
        latents = ObjectLatents(0, 1000 + s, 4, params.view_corr_deg, params.view_invariance)
        for v, az in enumerate(azimuths):
            ids, segs = simulate_sim_m2f(inst, sem, params, np.random.default_rng(10_000 * s + v), view=_ring_view(latents, 12, az))
            out[s, v] = _labels(ids, segs, inst, 12)
    return out


def test_consistency_one_gives_one_class_per_object_in_every_view() -> None:
    params = SimM2FParams.disabled(confusion=CONF, consistency=1.0, view_invariance=1.0)
    labels = _agreement(params, [0, 40, 90, 170, 250, 320], n_scenes=4)
    assert np.all(labels == labels[:, :1, :])  # same class in every view
    assert 0.3 < (labels == TABLE).mean() < 0.7  # and still the table's 50 % confusion across objects
    indep = _agreement(params.replace(consistency=0.0), [0, 40, 90, 170, 250, 320], n_scenes=4)
    same = (indep[:, :, None, :] == indep[:, None, :, :]).mean()  # all view pairs, diagonal included
    assert 0.45 < same < 0.7  # independent: 1/6 diagonal + 5/6 * (0.5^2 + 0.5^2)


def test_nearby_views_agree_more_than_distant_ones() -> None:
    params = SimM2FParams.disabled(confusion=CONF, consistency=1.0, view_invariance=0.0, view_corr_deg=30.0)
    labels = _agreement(params, [0.0, 4.0, 120.0, 180.0, 240.0], n_scenes=10)
    near = (labels[:, 0] == labels[:, 1]).mean()
    far = np.mean([(labels[:, 0] == labels[:, j]).mean() for j in (2, 3, 4)])
    assert near > 0.9 and far < 0.75 and near - far > 0.2


def test_misses_persist_per_object() -> None:
    inst, sem = _desks()
    params = SimM2FParams.disabled(miss_base=0.5, consistency=1.0, view_invariance=1.0)
    latents = ObjectLatents(3, 7, 4, params.view_corr_deg, params.view_invariance)
    found = []
    for v in range(6):
        ids, segs = simulate_sim_m2f(inst, sem, params, np.random.default_rng(v), view=_ring_view(latents, 12, 60.0 * v))
        bg = {s["id"] for s in segs if s["category_id"] == spec.BACKGROUND}
        found.append([not (set(np.unique(ids[inst == k]).tolist()) <= bg | {0}) for k in range(1, 13)])
    found = np.array(found)
    assert np.all(found == found[:1]) and 0 < found[0].sum() < 12  # the same objects are missed in every view


def test_spurious_sites_stay_at_their_3d_location() -> None:
    """A floor seen from straight above by cameras sliding along x: the site's segment is the same floor disk."""
    h, w, f = 60, 80, 40.0
    intr = Intrinsics(w, h, f, f, w / 2, h / 2)
    inst, sem = np.zeros((h, w), np.uint16), np.zeros((h, w), np.uint8)
    site = np.array([0.3, 0.1, 0.0])
    params = SimM2FParams.disabled(spurious_sites=1.0, spurious_site_detect=1.0, spurious_radius_min_m=0.4, spurious_radius_max_m=0.4)
    latents = ObjectLatents(0, 5, 4, params.view_corr_deg, params.view_invariance)
    sites = SpuriousSites(site[None], np.array([0.4]), np.array([spec.CLASS_INDEX_BY_NAME["lamp"]]))
    centres = []
    for x in (-0.5, 0.0, 0.6):
        c2w = np.eye(4)
        c2w[:3, 3] = [x, 0.0, 2.0]  # identity rotation: the OpenGL camera looks along -z, down at the floor
        view = ViewContext(latents, c2w=c2w, intr=intr, depth=np.full((h, w), 2.0, np.float32), sites=sites)
        ids, segs = simulate_sim_m2f(inst, sem, params, np.random.default_rng(0), view=view)
        lamp = [s for s in segs if s["category_id"] == spec.CLASS_INDEX_BY_NAME["lamp"]]
        assert len(lamp) == 1
        ys, xs = np.nonzero(ids == lamp[0]["id"])
        pts = view.points()[ys, xs]
        centres.append(pts.mean(axis=0))
        assert np.all(np.linalg.norm(pts - site, axis=1) < 0.4 + 1e-6)
        assert abs(len(ys) - math.pi * (0.4 * f / 2.0) ** 2) < 0.15 * math.pi * (0.4 * f / 2.0) ** 2
    assert np.ptp(np.array(centres), axis=0).max() < 0.05  # the same place on the floor in every view


def test_boundaries_snap_to_image_edges() -> None:
    h, w = 120, 160
    inst, sem = np.zeros((h, w), np.uint16), np.zeros((h, w), np.uint8)
    inst[30:90, 40:120] = 1
    sem[30:90, 40:120] = TABLE
    rgb = np.full((h, w, 3), 60, np.uint8)
    rgb[30:90, 40:120] = 200  # the object is brighter than the wall: a clean edge on its outline
    latents = ObjectLatents(0, 1, 4, 45.0, 0.5)
    noisy = SimM2FParams.disabled(boundary_amplitude_px=3.0, boundary_sigma_px=6.0, reference_height=h)
    snapped = noisy.replace(snap_band_px=8.0)
    ious: dict[bool, list[float]] = {True: [], False: []}
    gt = inst == 1
    inner, outer = ndimage.binary_erosion(gt), ndimage.binary_dilation(gt)
    for k in range(4):
        for snap, p in ((False, noisy), (True, snapped)):
            ids, segs = simulate_sim_m2f(inst, sem, p, np.random.default_rng(k), view=ViewContext(latents, rgb=rgb))
            sid = next(s["id"] for s in segs if s["category_id"] == TABLE)
            pred = ids == sid
            ious[snap].append((pred & gt).sum() / (pred | gt).sum())
            if snap:  # the edge lies between two pixels with equal gradient: the outline is exact to one pixel
                assert pred[inner].all() and not pred[~outer].any()
    assert np.mean(ious[True]) > np.mean(ious[False])
    assert np.std(ious[False]) > 0.005 and np.std(ious[True]) < 0.002  # wobbly free-form vs. edge-following


# ---------------------------------------------------------------------------------------------
# The consistency report on written priors and the CLI


def _with_geometry(sdir: Path, n_frames: int) -> None:
    """Give the tiny scene a gt3d.h5 instance table and cameras on a circle (the report needs both)."""
    rows = [
        {"id": i, "class_index": c, "aabb": [x - 0.2, y - 0.2, 0.0, x + 0.2, y + 0.2, 0.5]}
        for i, c, x, y in ((1, BED, 0.5, 0.0), (2, CHAIR, -0.5, 0.3), (3, TABLE, 0.0, -0.5), (5, DESK, 0.2, 0.4))
    ]
    grid = np.zeros((2, 2, 2), np.uint16)
    write_gt3d(sdir / spec.GT3D_H5, GT3D(grid, grid.astype(np.uint8), np.zeros(3), np.ones(3), "solid", make_instance_table(rows)))
    tf = json.loads((sdir / spec.TRANSFORMS_JSON).read_text())
    for i, fr in enumerate(tf["frames"]):
        a = 2 * math.pi * i / n_frames
        fr["transform_matrix"] = look_at(np.array([3 * math.cos(a), 3 * math.sin(a), 1.5]), np.zeros(3)).tolist()
    write_json_atomic(sdir / spec.TRANSFORMS_JSON, tf)


def _geo_benchmark(root: Path) -> list[Path]:
    scenes = [make_tiny_scene(root, scene_id=f"tiny_{i:04d}", n_frames=8) for i in range(2)]
    for s in scenes:
        _with_geometry(s, 8)
    write_json_atomic(root / spec.BENCHMARK_JSON, {"name": "tiny", "splits": {"train": ["tiny_0000"], "val": [], "test": ["tiny_0001"]}, "build_settings": {"seed": 5}, "files": {}})
    return scenes


def test_stats_report_is_deterministic_and_gt_is_fully_consistent(tmp_path: Path) -> None:
    pytest.importorskip("nerfseg.evaluation.protocols")
    from click.testing import CliRunner

    from nerfseg.dataset_tools.priors_cli import priors

    _geo_benchmark(tmp_path)
    run = CliRunner()
    outs = []
    for k, (prior, seed) in enumerate((("sim-m2f", 3), ("sim-m2f", 3), ("sim-m2f-indep", 3), ("gt", 3))):
        out = tmp_path / f"stats{k}.json"
        res = run.invoke(priors, ["--data", str(tmp_path), "--prior", prior, "--seed", str(seed), "--no-quality", "--stats", "--stats-out", str(out)])
        assert res.exit_code == 0, res.output
        assert "P(same class)" in res.output
        outs.append(json.loads(out.read_text()))
    assert outs[0] == outs[1]  # same seed, same report
    assert outs[0]["prior"] == "sim-m2f" and outs[0]["seed"] == 3 and outs[0]["scenes"] == ["tiny_0000", "tiny_0001"]
    assert [b["angle_lo_deg"] for b in outs[0]["bins"]] == [0.0, 15.0, 30.0, 60.0, 90.0]
    gt = outs[3]
    assert gt["overall"]["p_same_class"] == 1.0 and gt["overall"]["p_same_detection"] == 1.0 and gt["overall"]["kappa"] is None
    assert gt["overall"]["pairs"] > 0 and gt["num_objects"] == 8
    bench = json.loads((tmp_path / spec.BENCHMARK_JSON).read_text())
    assert bench["prior_params"]["sim-m2f-indep"]["params"]["consistency"] == 0.0  # the old prior, recorded as before
    assert bench["prior_params"]["sim-m2f"]["params"]["consistency"] == SimM2FParams().consistency


def test_written_prior_at_full_correlation_keeps_each_class(tmp_path: Path) -> None:
    from nerfseg.dataset_tools.prior_stats import consistency_stats

    scenes = _geo_benchmark(tmp_path)
    full = SimM2FParams.disabled(confusion={"desk": {"table": 0.5}, "chair": {"sofa": 0.5}, "bed": {"sofa": 0.5}}, consistency=1.0, view_invariance=1.0)
    for s in scenes:
        write_priors(s, "sim-m2f", params=full, seed=1)
    rep = consistency_stats(scenes, "sim-m2f", min_pixels=20)
    assert rep["overall"]["p_same_class"] == 1.0 and rep["overall"]["pairs_both_detected"] > 50
    for s in scenes:
        write_priors(s, "sim-m2f", params=full.replace(consistency=0.0), seed=1)
    rep0 = consistency_stats(scenes, "sim-m2f", min_pixels=20)
    assert rep0["overall"]["p_same_class"] < 0.9
    assert abs(rep0["overall"]["kappa"]) < 0.3  # independent draws: agreement at chance level


def test_fusion_vote_removes_errors_that_other_views_do_not_share(tmp_path: Path) -> None:
    """Six views from one camera over a flat floor: the vote at a test pixel is the train views' label there."""
    from nerfseg.dataset_tools.prior_stats import fusion_gain
    from nerfseg.io import read_png, write_png

    sdir = make_tiny_scene(tmp_path, n_frames=6)
    inst0 = read_png(sdir / spec.INSTANCE_DIR / "0000.png", expect="gray16")
    sem0 = read_png(sdir / spec.SEMANTIC_DIR / "0000.png", expect="gray8")
    tf = json.loads((sdir / spec.TRANSFORMS_JSON).read_text())
    for fr in tf["frames"]:
        name = Path(fr["file_path"]).stem
        write_png(sdir / spec.INSTANCE_DIR / f"{name}.png", inst0)
        write_png(sdir / spec.SEMANTIC_DIR / f"{name}.png", sem0)
        write_png(sdir / spec.DEPTH_DIR / f"{name}.png", np.full(inst0.shape, 2000, np.uint16))  # 2 m everywhere
        fr["transform_matrix"] = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 2.0], [0, 0, 0, 1]]
    write_json_atomic(sdir / spec.TRANSFORMS_JSON, tf)
    tests = {f.name for f in spec.load_scene_info(sdir).frames if f.split == "test"}

    def test_views_wrong(_scene: Path, frame: str) -> np.ndarray:
        lab = sem0.astype(np.int64)
        return np.where(lab == BED, TABLE, lab) if frame in tests else lab  # the test views alone call the bed a table

    rep = fusion_gain([sdir], test_views_wrong, train_stride=1)
    row = rep["per_scene"][sdir.name]
    assert row["fused_miou"] == 1.0 and row["prior_miou"] < 0.8 and row["gain"] == pytest.approx(1.0 - row["prior_miou"], abs=1e-6)

    def all_views_wrong(_scene: Path, frame: str) -> np.ndarray:
        lab = sem0.astype(np.int64)
        return np.where(lab == BED, TABLE, lab)  # the same mistake everywhere: nothing to vote away

    rep = fusion_gain([sdir], all_views_wrong, train_stride=1)
    assert rep["mean"]["gain"] == 0.0 and rep["mean"]["prior_miou"] < 0.8

    # the in-memory screen simulates exactly the prior: with every noise stage off it is the GT, nothing to gain
    from nerfseg.dataset_tools.prior_stats import simulated_fusion_gain

    sim = simulated_fusion_gain([sdir], SimM2FParams.disabled(), seeds=(0, 1), train_stride=1)
    assert [r["seed"] for r in sim["per_seed"]] == [0, 1]
    assert sim["mean"] == {"prior_miou": 1.0, "fused_miou": 1.0, "gain": 0.0}
