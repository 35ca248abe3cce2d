"""Tests of the 2D priors (nerfseg/dataset_tools/priors.py): each noise stage measurably does what it says, the prior
is deterministic per (seed, scene, frame), and the written folder is valid COCO panoptic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from nerfseg.dataset_tools.priors import (
    ID_MAX,
    SimM2FParams,
    frame_rng,
    load_prior_json,
    permute_gt_panoptic,
    prior_parameters,
    read_prior_frame,
    simulate_sim_m2f,
    write_priors,
)
from nerfseg import spec
from nerfseg.errors import InputError
from nerfseg.io import (
    read_panoptic_png,
    read_png,
    segment_bbox,
    segments_info_from_ids,
    write_json_atomic,
    write_panoptic_png,
    write_png,
)

CHAIR, SOFA, BED, TABLE, DESK = (spec.CLASS_INDEX_BY_NAME[n] for n in ("chair", "sofa", "bed", "table", "desk"))


# ---------------------------------------------------------------------------------------------
# A tiny built scene on disk (SPEC 3 layout), without any renderer


def _frame_maps(i: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Instance, semantic and GT panoptic maps of view ``i``: four objects that drift across the views."""
    inst = np.zeros((h, w), np.uint16)
    sem = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    dx = 2 * i
    objects = [  # (id, class, mask)
        (1, BED, (yy >= 30) & (yy < 55) & (xx >= 5 + dx) & (xx < 40 + dx)),
        (2, CHAIR, (yy - 15) ** 2 + (xx - 60 + dx) ** 2 < 8**2),
        (3, TABLE, (yy >= 8) & (yy < 20) & (xx >= 8) & (xx < 28)),
        (5, DESK, (yy >= 35) & (yy < 50) & (xx >= 55) & (xx < 75)),
    ]
    for iid, cls, m in objects:
        inst[m] = iid
        sem[m] = cls
    pan = inst.astype(np.uint32)
    pan[inst == 0] = spec.GT_BACKGROUND_SEGMENT_ID
    pan[:3, :3] = 0  # a little void (rays that hit nothing)
    inst[:3, :3] = 0
    sem[:3, :3] = 0
    return inst, sem, pan


def make_tiny_scene(root: Path, scene_id: str = "tiny_0000", n_frames: int = 6, h: int = 60, w: int = 80) -> Path:
    """Write a minimal built scene: transforms.json, images/instance/semantic/panoptic PNGs, panoptic.json."""
    sdir = root / spec.SCENES_DIR / scene_id
    frames, annotations, images = [], [], []
    rng = np.random.default_rng(7)
    for i in range(n_frames):
        name = spec.frame_name(i)
        inst, sem, pan = _frame_maps(i, h, w)
        rgb = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        write_png(sdir / spec.IMAGES_DIR / f"{name}.png", rgb)
        write_png(sdir / spec.INSTANCE_DIR / f"{name}.png", inst)
        write_png(sdir / spec.SEMANTIC_DIR / f"{name}.png", sem)
        write_panoptic_png(sdir / spec.PANOPTIC_DIR / f"{name}.png", pan)
        cat = {int(s): (spec.BACKGROUND if s == spec.GT_BACKGROUND_SEGMENT_ID else int(np.bincount(sem[pan == s]).argmax())) for s in np.unique(pan) if s}
        annotations.append({"image_id": name, "file_name": f"{name}.png", "segments_info": segments_info_from_ids(pan, cat)})
        images.append({"id": name, "file_name": f"{name}.png", "width": w, "height": h})
        frames.append({"file_path": f"images/{name}.png", "transform_matrix": np.eye(4).tolist(), "split": "test" if i % 3 == 2 else "train"})
    transforms = {"scene_id": scene_id, "w": w, "h": h, "fl_x": 50.0, "fl_y": 50.0, "cx": w / 2, "cy": h / 2, "room_bbox": [[0, 0, 0], [1, 1, 1]], "frames": frames}
    write_json_atomic(sdir / spec.TRANSFORMS_JSON, transforms)
    write_json_atomic(sdir / spec.PANOPTIC_JSON, {"images": images, "annotations": annotations, "categories": spec.category_info()})
    return sdir


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    return make_tiny_scene(tmp_path)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# Writing, determinism, format


def test_write_is_deterministic_and_seed_dependent(scene: Path) -> None:
    rep = write_priors(scene, "sim-m2f", seed=3)
    first = _files(rep.path)
    write_priors(scene, "sim-m2f", seed=3)
    assert _files(rep.path) == first  # same seed -> same bytes (and re-running replaces the folder)
    write_priors(scene, "sim-m2f", seed=4)
    other = _files(rep.path)
    assert other.keys() == first.keys()
    assert any(other[k] != first[k] for k in first if k.endswith(".png"))
    assert rep.frames == 6 and rep.segments > 0 and rep.prior == "sim-m2f"
    # no temporary or old folders left next to the prior
    assert sorted(p.name for p in (scene / spec.PRIORS_DIR).iterdir()) == ["sim-m2f"]


def test_prior_is_seeded_by_scene_id_not_folder_name(tmp_path: Path) -> None:
    a = make_tiny_scene(tmp_path / "a", scene_id="room_a")
    b = make_tiny_scene(tmp_path / "b", scene_id="room_a")
    moved = b.parent / ".partial-room_a-123"
    b.rename(moved)  # the build writes a scene under a temporary folder name
    ra, rb = write_priors(a, "sim-m2f", seed=0), write_priors(moved, "sim-m2f", seed=0)
    assert _files(ra.path) == _files(rb.path)
    c = make_tiny_scene(tmp_path / "c", scene_id="room_c")
    rc = write_priors(c, "sim-m2f", seed=0)
    assert _files(rc.path) != _files(ra.path)


def test_frame_rng_is_order_free_and_distinct() -> None:
    x = frame_rng(0, "s", "0007").random(4)
    frame_rng(0, "s", "0001").random(100)  # other draws in between change nothing
    assert np.array_equal(frame_rng(0, "s", "0007").random(4), x)
    assert not np.array_equal(frame_rng(0, "t", "0007").random(4), x)
    assert not np.array_equal(frame_rng(1, "s", "0007").random(4), x)
    assert not np.array_equal(frame_rng(0, "s", "0008").random(4), x)


@pytest.mark.parametrize("prior", ["sim-m2f", "gt"])
def test_output_is_valid_coco_panoptic(scene: Path, prior: str) -> None:
    write_priors(scene, prior, seed=0)
    doc = load_prior_json(scene, prior)
    assert doc["prior"] == prior and doc["categories"] == spec.category_info()
    info = spec.load_scene_info(scene)
    assert [a["file_name"] for a in doc["annotations"]] == [f"{f.name}.png" for f in info.frames]  # train AND test views
    assert {a["image_id"] for a in doc["annotations"]} == {f.name for f in info.frames}
    for fr in info.frames:
        ids, segs = read_prior_frame(scene, prior, fr.name, doc)  # checks PNG ids == JSON ids, no id 0
        assert ids.dtype == np.uint32 and ids.shape == (info.height, info.width)
        assert segs, "every frame has at least the background segment"
        for s in segs:
            m = ids == s["id"]
            assert s["id"] != 0 and 0 < s["id"] <= ID_MAX
            assert s["area"] == int(m.sum())
            assert s["bbox"] == segment_bbox(m)
            assert s["iscrowd"] == 0 and 0 <= s["category_id"] < spec.NUM_CLASSES
            assert 0.5 <= s["score"] <= 1.0
        assert sum(1 for s in segs if s["category_id"] == spec.BACKGROUND) <= 1  # one stuff segment per view
        gt_void = read_panoptic_png(scene / spec.PANOPTIC_DIR / f"{fr.name}.png") == 0
        assert np.all(ids[gt_void] == 0)  # GT void stays void


def test_ids_differ_across_views(scene: Path) -> None:
    write_priors(scene, "gt", seed=0)
    doc = load_prior_json(scene, "gt")
    bed_ids = []
    for fr in spec.load_scene_info(scene).frames:
        ids, _ = read_prior_frame(scene, "gt", fr.name, doc)
        inst = read_png(scene / spec.INSTANCE_DIR / f"{fr.name}.png", expect="gray16")
        vals = np.unique(ids[inst == 1])
        assert vals.size == 1  # the gt prior keeps masks exact
        bed_ids.append(int(vals[0]))
    assert len(set(bed_ids)) == len(bed_ids)  # a new, unrelated id in every view
    assert 1 not in bed_ids


def test_gt_prior_is_gt_up_to_a_bijection(scene: Path) -> None:
    pan = read_panoptic_png(scene / spec.PANOPTIC_DIR / "0000.png")
    cats = {1: BED, 2: CHAIR, 3: TABLE, 5: DESK, spec.GT_BACKGROUND_SEGMENT_ID: 0}
    ids, segs = permute_gt_panoptic(pan, cats, np.random.default_rng(0))
    pairs = np.unique(np.stack([pan.ravel(), ids.ravel()]), axis=1)
    assert len(set(pairs[0])) == len(set(pairs[1])) == pairs.shape[1]  # one-to-one
    assert all((p == 0) == (q == 0) for p, q in pairs.T)
    by_id = {s["id"]: s["category_id"] for s in segs}
    for p, q in pairs.T:
        if p:
            assert by_id[int(q)] == cats[int(p)]


def test_failed_run_keeps_previous_prior(scene: Path) -> None:
    rep = write_priors(scene, "sim-m2f", seed=0)
    before = _files(rep.path)
    (scene / spec.SEMANTIC_DIR / "0004.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="0004.png"):
        write_priors(scene, "sim-m2f", seed=1)
    assert _files(rep.path) == before
    assert sorted(p.name for p in (scene / spec.PRIORS_DIR).iterdir()) == ["sim-m2f"]


def test_bad_inputs_name_the_file(scene: Path) -> None:
    write_png(scene / spec.INSTANCE_DIR / "0002.png", np.zeros((10, 10), np.uint16))
    with pytest.raises(InputError, match=r"0002\.png.*size"):
        write_priors(scene, "gt")
    with pytest.raises(InputError, match="unknown prior"):
        write_priors(scene, "nope")
    with pytest.raises(InputError, match="weights"):
        write_priors(scene, "mask2former")


def test_params_validation_and_record() -> None:
    with pytest.raises(ValueError, match="sums to"):
        SimM2FParams(confusion={"desk": {"table": 0.7, "chair": 0.6}})
    with pytest.raises(ValueError, match="unknown class"):
        SimM2FParams(confusion={"desk": {"tabel": 0.1}})
    with pytest.raises(ValueError, match="probability"):
        SimM2FParams(miss_base=1.5)
    with pytest.raises(InputError, match="unknown sim-m2f parameter"):
        SimM2FParams.from_dict({"miss_bsae": 0.1})
    p = SimM2FParams()
    assert SimM2FParams.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    rec = prior_parameters("sim-m2f", seed=2)
    assert rec["seed"] == 2 and rec["params"] == p.to_dict()


def test_params_overrides_are_typed_by_field() -> None:
    """--params goes through nerfseg.config.apply_overrides: values are converted or refused by the field's type,
    and the error names the file (a wrong type used to pass silently until a comparison failed, or never)."""
    p = SimM2FParams.from_dict({"min_area_px": 32.0, "miss_base": 0, "split_plane_3d": "false"}, "p.json")
    assert p.min_area_px == 32 and isinstance(p.min_area_px, int)
    assert p.miss_base == 0.0 and isinstance(p.miss_base, float) and p.split_plane_3d is False
    assert p == SimM2FParams(min_area_px=32, miss_base=0.0, split_plane_3d=False)
    with pytest.raises(InputError, match=r"p\.json.*miss_base expects float"):
        SimM2FParams.from_dict({"miss_base": "often"}, "p.json")
    with pytest.raises(InputError, match=r"p\.json.*score_std expects float"):
        SimM2FParams.from_dict({"score_std": True}, "p.json")  # a bool is no number
    with pytest.raises(InputError, match=r"p\.json.*probability"):
        SimM2FParams.from_dict({"miss_base": 2}, "p.json")  # __post_init__ validation still applies
    assert SimM2FParams.independent().replace(miss_base=0.1) == SimM2FParams.independent(miss_base=0.1)


def test_prior_modules_have_no_import_cycle() -> None:
    """priors.py and mask2former.py imported each other; the shared mask code now lives in prior_masks.py.
    Checks every import (top-level and inside functions) among the prior modules of nerfseg/dataset_tools."""
    import ast

    import nerfseg.dataset_tools as dt

    root = Path(dt.__file__).parent
    mods = {p.stem for p in root.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for name in mods:
        deps = set()
        for node in ast.walk(ast.parse((root / f"{name}.py").read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nerfseg.dataset_tools."):
                deps.add(node.module.split(".")[2])
            elif isinstance(node, ast.ImportFrom) and node.module == "nerfseg.dataset_tools":
                deps |= {a.name for a in node.names}
        graph[name] = deps & mods - {name}
    prior_mods = {"priors", "prior_params", "prior_masks", "prior_io", "prior_quality", "sim_m2f", "sim_m2f_view", "prior_stats", "mask2former", "priors_cli"}
    assert prior_mods <= mods

    def reaches(start: str, target: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for d in graph[todo.pop()]:
                if d == target:
                    return True
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        return False

    assert [m for m in sorted(prior_mods) if reaches(m, m)] == []


# ---------------------------------------------------------------------------------------------
# The noise stages, one at a time


def _canvas(h: int = 96, w: int = 128) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((h, w), np.uint16), np.zeros((h, w), np.uint8)


def _put(inst: np.ndarray, sem: np.ndarray, iid: int, cls: int, ys: slice, xs: slice) -> None:
    inst[ys, xs] = iid
    sem[ys, xs] = cls


def _segment_over(ids: np.ndarray, mask: np.ndarray) -> tuple[int, float]:
    """Best-overlapping predicted id of a GT mask and its IoU (0, 0.0 when nothing covers it)."""
    vals, counts = np.unique(ids[mask], return_counts=True)
    best, iou = 0, 0.0
    for v, c in zip(vals.tolist(), counts.tolist()):
        if v == 0:
            continue
        j = c / (mask.sum() + (ids == v).sum() - c)
        if j > iou:
            best, iou = v, j
    return best, iou


def _category(segs: list[dict], sid: int) -> int:
    return next(s["category_id"] for s in segs if s["id"] == sid)


def test_everything_disabled_reproduces_gt_masks() -> None:
    inst, sem = _canvas()
    _put(inst, sem, 4, CHAIR, slice(10, 40), slice(10, 40))
    _put(inst, sem, 9, BED, slice(50, 90), slice(40, 120))
    ids, segs = simulate_sim_m2f(inst, sem, SimM2FParams.disabled(), np.random.default_rng(0))
    pairs = np.unique(np.stack([inst.ravel(), ids.ravel()]), axis=1)
    assert pairs.shape[1] == 3 and len(set(pairs[1])) == 3  # three segments, one-to-one with GT
    assert {s["category_id"] for s in segs} == {0, CHAIR, BED}


def test_misses_hit_small_instances_more() -> None:
    inst, sem = _canvas()
    _put(inst, sem, 1, CHAIR, slice(10, 14), slice(10, 14))  # 16 px  = 0.13 % of the image
    _put(inst, sem, 2, CHAIR, slice(30, 80), slice(40, 110))  # 3500 px = 28 %
    params = SimM2FParams.disabled(miss_small=0.8, miss_small_area=0.01, missed_void_prob=0.5)
    n = 300
    missed = np.zeros(2)
    void_or_stuff = set()
    for k in range(n):
        ids, segs = simulate_sim_m2f(inst, sem, params, np.random.default_rng(k))
        for j, iid in enumerate((1, 2)):
            _, iou = _segment_over(ids, inst == iid)
            if iou < 0.5:
                missed[j] += 1
                vals = np.unique(ids[inst == iid])
                void_or_stuff.add("void" if vals.tolist() == [0] else ("stuff" if _category(segs, int(vals[0])) == 0 else "other"))
    rate = missed / n
    expected_small = 0.8 * np.exp(-16 / (96 * 128) / 0.01)
    assert abs(rate[0] - expected_small) < 0.1
    assert rate[1] < 0.05 < rate[0]
    assert void_or_stuff == {"void", "stuff"}  # a missed object becomes a hole or part of the background


def test_truncated_instances_are_missed_more() -> None:
    inst, sem = _canvas()
    _put(inst, sem, 1, TABLE, slice(0, 20), slice(30, 60))  # touches the top border
    _put(inst, sem, 2, TABLE, slice(50, 70), slice(30, 60))  # same size, inside
    params = SimM2FParams.disabled(miss_truncated=0.5)
    missed = np.zeros(2)
    for k in range(200):
        ids, _ = simulate_sim_m2f(inst, sem, params, np.random.default_rng(k))
        missed += [_segment_over(ids, inst == i)[1] < 0.5 for i in (1, 2)]
    assert missed[1] == 0
    assert 0.35 < missed[0] / 200 < 0.65


def test_confusion_follows_the_table() -> None:
    inst, sem = _canvas()
    _put(inst, sem, 1, DESK, slice(5, 30), slice(5, 40))
    _put(inst, sem, 2, CHAIR, slice(40, 70), slice(5, 40))
    _put(inst, sem, 3, BED, slice(40, 90), slice(60, 120))
    params = SimM2FParams.disabled(confusion={"desk": {"table": 0.5}, "chair": {"sofa": 0.2, "otherfurniture": 0.1}})
    seen: dict[int, list[int]] = {1: [], 2: [], 3: []}
    for k in range(300):
        ids, segs = simulate_sim_m2f(inst, sem, params, np.random.default_rng(k))
        for iid, classes in seen.items():
            sid, iou = _segment_over(ids, inst == iid)
            assert iou == 1.0
            classes.append(_category(segs, sid))
    desk, chair, bed = (np.array(seen[i]) for i in (1, 2, 3))
    assert set(desk.tolist()) == {DESK, TABLE} and abs((desk == TABLE).mean() - 0.5) < 0.1
    assert set(chair.tolist()) == {CHAIR, SOFA, spec.CLASS_INDEX_BY_NAME["otherfurniture"]}
    assert abs((chair == SOFA).mean() - 0.2) < 0.07
    assert set(bed.tolist()) == {BED}  # not in the table: never changes


def test_merges_touching_similar_instances_only() -> None:
    inst, sem = _canvas()
    _put(inst, sem, 1, CHAIR, slice(10, 40), slice(10, 40))
    _put(inst, sem, 2, CHAIR, slice(10, 40), slice(40, 70))  # touches chair 1
    _put(inst, sem, 3, CHAIR, slice(60, 90), slice(10, 40))  # a chair that touches nothing
    _put(inst, sem, 4, BED, slice(60, 90), slice(40, 110))  # touches chair 3, but a bed is not similar to a chair
    params = SimM2FParams.disabled(merge_prob_same=1.0, merge_prob_similar=1.0)
    ids, _ = simulate_sim_m2f(inst, sem, params, np.random.default_rng(0))
    s1, s2, s3, s4 = (np.unique(ids[inst == i]) for i in (1, 2, 3, 4))
    assert s1.size == s2.size == 1 and s1[0] == s2[0]  # the two touching chairs are one segment
    assert s3.size == s4.size == 1 and s3[0] != s4[0] and s3[0] != s1[0]  # chair next to a bed: not similar
    params = SimM2FParams.disabled(merge_prob_same=0.3)
    merged = sum(
        int(np.unique(ids[inst == 1])[0] == np.unique(ids[inst == 2])[0])
        for ids, _ in (simulate_sim_m2f(inst, sem, params, np.random.default_rng(k)) for k in range(200))
    )
    assert 0.2 < merged / 200 < 0.4


def test_spurious_blobs_lie_on_background() -> None:
    inst, sem = _canvas()
    _put(inst, sem, 1, BED, slice(20, 70), slice(20, 100))
    params = SimM2FParams.disabled(spurious_per_frame=3.0, spurious_area_min=0.005, spurious_area_max=0.02)
    counts = []
    for k in range(60):
        ids, segs = simulate_sim_m2f(inst, sem, params, np.random.default_rng(k))
        sid, iou = _segment_over(ids, inst == 1)
        assert iou == 1.0  # the object is untouched
        extra = [s for s in segs if s["id"] != sid and s["category_id"] != 0]
        for s in extra:
            assert np.all(inst[ids == s["id"]] == 0)
            assert s["category_id"] in {spec.CLASS_INDEX_BY_NAME[n] for n in params.spurious_classes}
        counts.append(len(extra))
    assert 2.0 < np.mean(counts) < 4.0  # Poisson(3), minus blobs under the minimum area


def test_split_parts_cover_the_instance() -> None:
    inst, sem = _canvas()
    _put(inst, sem, 1, SOFA, slice(20, 70), slice(20, 100))
    params = SimM2FParams.disabled(split_prob=1.0, split_same_class_prob=0.0, confusion={"sofa": {"chair": 0.1}})
    ids, segs = simulate_sim_m2f(inst, sem, params, np.random.default_rng(0))
    parts = np.unique(ids[inst == 1])
    assert parts.size == 2 and 0 not in parts
    areas = sorted(int((ids == p).sum()) for p in parts)
    assert 0.14 < areas[0] / (inst == 1).sum() < 0.46
    cats = sorted(_category(segs, int(p)) for p in parts)
    assert cats == sorted([SOFA, CHAIR])  # the part draws from the confusion row
    assert np.all(ids[inst == 0] == ids[0, 0])  # background untouched


def test_boundary_noise_moves_edges_not_interiors() -> None:
    inst, sem = _canvas(120, 160)
    _put(inst, sem, 1, TABLE, slice(20, 100), slice(30, 130))
    params = SimM2FParams.disabled(boundary_amplitude_px=3.0, boundary_sigma_px=4.0, reference_height=120)
    ious, changed = [], []
    dist_in = ndimage.distance_transform_edt(inst == 1)
    dist_out = ndimage.distance_transform_edt(inst != 1)
    for k in range(10):
        ids, _ = simulate_sim_m2f(inst, sem, params, np.random.default_rng(k))
        sid, iou = _segment_over(ids, inst == 1)
        ious.append(iou)
        pred = ids == sid
        flips = pred != (inst == 1)
        changed.append(flips.sum())
        assert not flips[(dist_in > 15) | (dist_out > 15)].any()  # far from the edge nothing changes
    assert 0.8 < np.mean(ious) < 0.99 and min(changed) > 50


def test_erosion_bias_shrinks_and_smoothing_removes_thin_parts() -> None:
    inst, sem = _canvas(120, 160)
    _put(inst, sem, 1, TABLE, slice(20, 60), slice(30, 130))
    _put(inst, sem, 1, TABLE, slice(60, 110), slice(40, 42))  # a 2-px leg of the same table
    params = SimM2FParams.disabled(thing_bias_px=-2.0, mask_smooth_px=2.0, reference_height=120)
    ids, _ = simulate_sim_m2f(inst, sem, params, np.random.default_rng(0))
    sid, _ = _segment_over(ids, inst == 1)
    pred = ids == sid
    assert pred.sum() < 0.95 * (inst == 1).sum()
    assert not pred[70:100, 40:42].any()  # the thin leg is gone
    assert pred[30:50, 50:110].all()  # the top's interior stays


def test_scores_rank_true_above_spurious() -> None:
    inst, sem = _canvas()
    _put(inst, sem, 1, BED, slice(20, 70), slice(20, 100))
    params = SimM2FParams.disabled(spurious_per_frame=2.0)
    true_s, fp_s = [], []
    for k in range(60):
        ids, segs = simulate_sim_m2f(inst, sem, params, np.random.default_rng(k))
        sid, _ = _segment_over(ids, inst == 1)
        for s in segs:
            assert params.score_threshold <= s["score"] <= 1.0
            if s["id"] == sid:
                true_s.append(s["score"])
            elif s["category_id"] != 0:
                fp_s.append(s["score"])
    assert np.mean(true_s) > np.mean(fp_s) + 0.1


def test_default_params_degrade_but_keep_most() -> None:
    """With the calibrated defaults the big objects mostly survive, small ones often do not."""
    inst, sem = _canvas(240, 320)
    _put(inst, sem, 1, BED, slice(100, 220), slice(40, 200))
    _put(inst, sem, 2, CHAIR, slice(30, 36), slice(250, 256))
    found = np.zeros(2)
    for k in range(40):
        ids, _ = simulate_sim_m2f(inst, sem, SimM2FParams(), np.random.default_rng(k))
        found += [_segment_over(ids, inst == i)[1] > 0.5 for i in (1, 2)]
    assert found[0] > found[1]
    assert found[0] >= 20


# ---------------------------------------------------------------------------------------------
# Quality report and the CLI


def _tiny_benchmark(root: Path) -> list[Path]:
    scenes = [make_tiny_scene(root, scene_id=f"tiny_{i:04d}", n_frames=6) for i in range(2)]
    write_json_atomic(root / spec.BENCHMARK_JSON, {"name": "tiny", "splits": {"train": ["tiny_0000"], "val": [], "test": ["tiny_0001"]}, "build_settings": {"seed": 5}, "files": {}})
    return scenes


def test_quality_of_gt_prior_is_perfect_per_frame_but_not_across_views(tmp_path: Path) -> None:
    pytest.importorskip("nerfseg.evaluation.protocols")
    from nerfseg.dataset_tools.priors import evaluate_prior_quality

    scenes = _tiny_benchmark(tmp_path)
    for s in scenes:
        write_priors(s, "gt")
        write_priors(s, "sim-m2f")
    gt = evaluate_prior_quality(scenes, "gt", verbose=False)
    o = gt["overall"]
    assert o["pq_things"] == 1.0 and o["pq_stuff"] == 1.0 and o["miou"] == 1.0
    assert o["pq_scene_things"] == 0.0  # per-view ids: no cross-view consistency
    assert gt["num_scenes"] == 2 and gt["num_frames"] == 4  # views 2 and 5 of each scene are test views
    sim = evaluate_prior_quality(scenes, "sim-m2f", verbose=False)
    assert sim["overall"]["pq_things"] < 1.0 and set(sim["per_scene"]) == {"tiny_0000", "tiny_0001"}
    # the in-memory calibration tool scores exactly what write_priors wrote for that seed
    from nerfseg.dataset_tools.priors import simulated_quality

    q = simulated_quality(scenes, seeds=(0, 1))
    assert q["num_frames"] == 4 and [r["seed"] for r in q["per_seed"]] == [0, 1]
    assert q["per_seed"][0]["pq_things"] == pytest.approx(sim["overall"]["pq_things"])
    assert q["per_seed"][0]["miou"] == pytest.approx(sim["overall"]["miou"])
    clean = simulated_quality(scenes, SimM2FParams.disabled(), seeds=(3,))
    assert clean["mean"]["pq_things"] == 1.0 and clean["mean"]["miou"] == 1.0


def test_priors_cli_writes_all_scenes_and_records(tmp_path: Path) -> None:
    pytest.importorskip("nerfseg.evaluation.protocols")
    from click.testing import CliRunner

    from nerfseg.dataset_tools.priors_cli import priors

    scenes = _tiny_benchmark(tmp_path)
    overrides = tmp_path / "p.json"
    overrides.write_text(json.dumps({"miss_base": 0.5}))
    result = CliRunner().invoke(priors, ["--data", str(tmp_path), "--prior", "sim-m2f", "--params", str(overrides)])
    assert result.exit_code == 0, result.output
    assert "mIoU" in result.output and "tiny_0001" in result.output
    bench = json.loads((tmp_path / spec.BENCHMARK_JSON).read_text())
    rec = bench["prior_params"]["sim-m2f"]
    assert rec["seed"] == 5 and rec["params"]["miss_base"] == 0.5  # the build seed by default, overrides recorded
    for s in scenes:
        doc = load_prior_json(s, "sim-m2f")
        assert doc["seed"] == 5 and doc["params"]["miss_base"] == 0.5
        assert f"scenes/{s.name}/priors/sim-m2f/panoptic.json" in bench["files"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"miss_bsae": 0.5}))
    result = CliRunner().invoke(priors, ["--data", str(tmp_path), "--params", str(bad)])
    assert result.exit_code != 0 and "miss_bsae" in str(result.exception)
