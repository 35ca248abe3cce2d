"""2D-3D mask matching: projection geometry, z-buffer, depth occlusion, the match_seg.py rules."""

from __future__ import annotations

import numpy as np
import pytest

from nerfseg.instance_nerf import matching
from nerfseg.instance_nerf.matching import (
    MatchView,
    VoxelCloud,
    match_prior_to_instances,
    match_scene,
    project_cloud,
    project_instance_masks,
    resolve_instance_masks,
    visible_voxels,
)
from nerfseg.cameras import Intrinsics, look_at, project_points, world_rays
from nerfseg.errors import InputError

INTR = Intrinsics(64, 48, 55.0, 55.0, 32.0, 24.0)


def box_hits(c2w: np.ndarray, intr: Intrinsics, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact silhouette of an axis-aligned box (slab test per pixel ray) and the entry depth (inf = miss)."""
    o, d = world_rays(c2w, intr)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (lo - o) / d, (hi - o) / d
    tmin = np.nanmax(np.minimum(t1, t2), axis=1)
    tmax = np.nanmin(np.maximum(t1, t2), axis=1)
    hit = (tmax >= tmin) & (tmax > 0)
    return hit.reshape(intr.height, intr.width), np.where(hit, tmin, np.inf).reshape(intr.height, intr.width)


def block_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """10^3 grid over the unit cube, instance 1 = voxels 3..6 on every axis (box [0.3, 0.7]^3)."""
    grid = np.zeros((10, 10, 10), dtype=np.int32)
    grid[3:7, 3:7, 3:7] = 1
    return grid, np.zeros(3), np.ones(3), np.full(3, 0.3), np.full(3, 0.7)


# ---------------------------------------------------------------------------------------------
# projection geometry


def project_label_grid(grid: np.ndarray, lo: np.ndarray, hi: np.ndarray, c2w: np.ndarray, intr: Intrinsics, **kw) -> np.ndarray:
    """The label map of one (X,Y,Z) label grid in one view (project_cloud's labels)."""
    return project_cloud(VoxelCloud(grid, lo, hi), c2w, intr, **kw)[0]


def test_block_projects_onto_its_silhouette_without_holes() -> None:
    grid, lo, hi, blo, bhi = block_grid()
    c2w = look_at(np.array([2.1, -0.9, 1.6]), np.array([0.5, 0.5, 0.5]))
    labels = project_label_grid(grid, lo, hi, c2w, INTR)
    hit, entry = box_hits(c2w, INTR, blo, bhi)
    assert hit.sum() > 100
    # every pixel whose ray meets the block is labelled: the corner-box splat leaves no holes
    assert np.all(labels[hit] == 1)
    # and nothing lands outside the pixel box of the block's 8 projected corners
    corners = np.array([[x, y, z] for x in (blo[0], bhi[0]) for y in (blo[1], bhi[1]) for z in (blo[2], bhi[2])])
    uv, depth = project_points(corners, c2w, INTR)
    assert np.all(depth > 0)
    vv, uu = np.nonzero(labels)
    assert uu.min() >= np.floor(uv[:, 0].min()) and uu.max() <= np.floor(uv[:, 0].max())
    assert vv.min() >= np.floor(uv[:, 1].min()) and vv.max() <= np.floor(uv[:, 1].max())
    # the splat dilates the silhouette by a fraction of a voxel footprint only
    iou = (hit & (labels == 1)).sum() / (hit | (labels == 1)).sum()
    assert iou > 0.8
    # z-buffer: the winning voxel centre is never nearer than the box surface minus half a voxel diagonal
    _, zbuf = project_cloud(VoxelCloud(grid, lo, hi), c2w, INTR)
    assert np.all(zbuf[hit] >= entry[hit] - 0.5 * np.sqrt(3) * 0.1 - 1e-9)


def test_point_splat_hits_the_pixel_under_each_visible_centre() -> None:
    grid, lo, hi, *_ = block_grid()
    c2w = look_at(np.array([2.1, -0.9, 1.6]), np.array([0.5, 0.5, 0.5]))
    labels = project_label_grid(grid, lo, hi, c2w, INTR, splat="point")
    idx, _ = visible_voxels(grid)
    uv, _ = project_points((idx + 0.5) * 0.1, c2w, INTR)
    expected = np.zeros_like(labels)
    expected[np.floor(uv[:, 1]).astype(int), np.floor(uv[:, 0]).astype(int)] = 1
    assert np.array_equal(labels, expected)


def brute_force(cloud: VoxelCloud, c2w: np.ndarray, intr: Intrinsics, depth: np.ndarray | None, tol: float) -> np.ndarray:
    """Pixel-major reference: a pixel sees every voxel whose 8-corner pixel box holds the pixel centre (or whose
    centre falls in the pixel), keeps those not behind depth + tol (nearest corner), and takes the nearest centre."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    corners = cloud.centres[:, None, :] + signs[None] * cloud.voxel_size / 2
    uv, z = project_points(corners.reshape(-1, 3), c2w, intr)
    uv = uv.reshape(-1, 8, 2)
    z = z.reshape(-1, 8)
    cuv, cz = project_points(cloud.centres, c2w, intr)
    u = np.arange(intr.width) + 0.5
    v = np.arange(intr.height) + 0.5
    in_u = (u[None, :] >= uv[:, :, 0].min(1)[:, None] - 1e-9) & (u[None, :] <= uv[:, :, 0].max(1)[:, None] + 1e-9)
    in_v = (v[None, :] >= uv[:, :, 1].min(1)[:, None] - 1e-9) & (v[None, :] <= uv[:, :, 1].max(1)[:, None] + 1e-9)
    in_u |= np.floor(cuv[:, 0])[:, None] == np.arange(intr.width)[None, :]
    in_v |= np.floor(cuv[:, 1])[:, None] == np.arange(intr.height)[None, :]
    cover = in_v[:, :, None] & in_u[:, None, :]  # (N,H,W)
    if depth is not None:
        cover &= z.min(1)[:, None, None] <= depth[None] + tol
    zz = np.where(cover, cz[:, None, None], np.inf)
    best = np.argmin(zz, axis=0)
    return np.where(np.isfinite(zz.min(0)), cloud.labels[best], 0)


def test_vectorised_projection_matches_pixel_major_brute_force(rng: np.random.Generator) -> None:
    grid = (rng.random((7, 6, 5)) < 0.35).astype(np.int32) * rng.integers(1, 4, (7, 6, 5))
    lo, hi = np.array([0.0, 0.0, 0.0]), np.array([0.7, 0.6, 0.5])
    cloud = VoxelCloud(grid, lo, hi)
    intr = Intrinsics(40, 30, 38.0, 36.0, 19.7, 15.2)
    c2w = look_at(np.array([1.7, -0.6, 1.1]), np.array([0.3, 0.3, 0.2]))
    got, _ = project_cloud(cloud, c2w, intr)
    assert np.array_equal(got, brute_force(cloud, c2w, intr, None, 0.0))
    depth = 1.2 + 0.8 * rng.random((30, 40))
    got, _ = project_cloud(cloud, c2w, intr, depth, occlusion_tolerance=0.05)
    assert np.array_equal(got, brute_force(cloud, c2w, intr, depth, 0.05))


def test_chunked_projection_equals_single_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    grid, lo, hi, *_ = block_grid()
    grid[1:3, 6:9, 0:2] = 2
    c2w = look_at(np.array([1.3, -0.4, 1.2]), np.array([0.5, 0.5, 0.4]))
    one = project_label_grid(grid, lo, hi, c2w, INTR)
    monkeypatch.setattr(matching, "_CHUNK_PAIRS", 37)
    assert np.array_equal(project_label_grid(grid, lo, hi, c2w, INTR), one)


def test_nearer_instance_wins_and_camera_behind_is_empty() -> None:
    grid = np.zeros((20, 10, 10), dtype=np.int32)
    grid[12:15, 3:7, 3:7] = 1  # far block (x in [0.2, 0.5])
    grid[5:7, 4:6, 4:6] = 2  # near block in front of it (x in [-0.5, -0.3])
    lo, hi = np.array([-1.0, 0.0, 0.0]), np.array([1.0, 1.0, 1.0])
    c2w = look_at(np.array([-2.0, 0.5, 0.5]), np.array([1.0, 0.5, 0.5]))
    labels, _ = project_cloud(VoxelCloud(grid, lo, hi), c2w, INTR)
    assert labels[24, 32] == 2 and (labels == 1).sum() > 0 and (labels == 2).sum() > 0
    hit2, _ = box_hits(c2w, INTR, np.array([-0.5, 0.4, 0.4]), np.array([-0.3, 0.6, 0.6]))
    assert np.all(labels[hit2] == 2)
    # looking away from the grid: nothing projects
    away = look_at(np.array([-2.0, 0.5, 0.5]), np.array([-5.0, 0.5, 0.5]))
    assert not project_label_grid(grid, lo, hi, away, INTR).any()


# ---------------------------------------------------------------------------------------------
# occlusion by non-instance geometry (a wall): only the depth test can hide it


def wall_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Camera at x=-2 looking along +x. Instance 1: block behind a wall plane x=0 that covers the left half of the
    image (the rest sees a back wall at x=3). Instance 2: block in front of the wall."""
    masks = np.zeros((2, 20, 10, 10), dtype=bool)
    masks[0, 13:17, 1:9, 3:7] = True  # x in [0.3, 0.7], spans both image halves
    masks[1, 4:6, 6:9, 0:2] = True  # x in [-0.6, -0.4], low on the left, in front of the wall
    lo, hi = np.array([-1.0, 0.0, 0.0]), np.array([1.0, 1.0, 1.0])
    c2w = look_at(np.array([-2.0, 0.5, 0.5]), np.array([1.0, 0.5, 0.5]))
    depth = np.full((INTR.height, INTR.width), 5.0)
    depth[:, : INTR.width // 2] = 2.0  # depth along the optical axis = x + 2
    return masks, lo, hi, c2w, depth


def test_depth_hides_an_instance_behind_a_wall() -> None:
    masks, lo, hi, c2w, depth = wall_scene()
    plain = project_instance_masks(masks, lo, hi, c2w, INTR)
    occl = project_instance_masks(masks, lo, hi, c2w, INTR, depth)
    left, right = np.s_[:, : INTR.width // 2], np.s_[:, INTR.width // 2 :]
    # without depth the hidden block claims the wall's pixels (the reference's failure)
    assert (plain[left] == 1).sum() > 50
    # with depth it disappears where the wall hides it, stays where it is visible; the near block is untouched
    assert (occl[left] == 1).sum() == 0
    assert np.array_equal(occl[right], plain[right]) and (occl[right] == 1).sum() > 50
    assert np.array_equal(occl == 2, plain == 2) and (occl == 2).sum() > 20
    # no-hit depth (0, inf, nan) hides nothing
    for empty in (0.0, np.inf, np.nan):
        assert np.array_equal(project_instance_masks(masks, lo, hi, c2w, INTR, np.full_like(depth, empty)), plain)


def test_occlusion_tolerance_is_a_distance_behind_the_surface() -> None:
    masks, lo, hi, c2w, _ = wall_scene()
    # a wall just in front of block 1's front face (x = 0.3 -> depth 2.3): block 1's nearest corner is 0.05 behind
    depth = np.full((INTR.height, INTR.width), 2.25)
    keep = project_instance_masks(masks[:1], lo, hi, c2w, INTR, depth, occlusion_tolerance=0.06)
    gone = project_instance_masks(masks[:1], lo, hi, c2w, INTR, depth, occlusion_tolerance=0.04)
    assert (keep == 1).sum() > 50 and not gone.any()


# ---------------------------------------------------------------------------------------------
# detections -> label grid


def test_resolve_keeps_scores_above_half_and_gives_overlaps_to_the_best() -> None:
    masks = np.zeros((4, 3, 3, 3), dtype=bool)
    masks[0, 0] = True
    masks[1, :2] = True  # overlaps 0 on x=0, higher score
    masks[2, 2] = True  # score 0.5: dropped (reference keeps > 0.5)
    masks[3, 1:] = True  # overlaps 1 on x=1 with the same score: the lower index (1) wins
    grid = resolve_instance_masks(masks, [0.6, 0.9, 0.5, 0.9])
    assert np.all(grid[0] == 2) and np.all(grid[1] == 2) and np.all(grid[2] == 4)
    assert np.all(resolve_instance_masks(masks[:1]) == np.where(masks[0], 1, 0))
    with pytest.raises(InputError, match="scores"):
        resolve_instance_masks(masks, [0.9])
    with pytest.raises(InputError, match="masks"):
        resolve_instance_masks(masks[0], None)


def test_visible_voxels_drop_only_enclosed_ones() -> None:
    grid = np.zeros((6, 6, 6), dtype=np.int32)
    grid[1:5, 1:5, 1:5] = 1
    grid[2, 2, 2] = 2  # enclosed by instance 1: invisible, whatever its id
    idx, labels = visible_voxels(grid)
    assert len(idx) == 4**3 - 2**3 and set(labels.tolist()) == {1}
    full = np.ones((3, 3, 3), dtype=np.int32)  # border voxels count as exposed
    assert len(visible_voxels(full)[0]) == 26


# ---------------------------------------------------------------------------------------------
# matching rules


def rules_case() -> tuple[np.ndarray, dict[int, dict[str, int]], np.ndarray]:
    proj = np.zeros((40, 40), dtype=np.int32)
    proj[0:10, 0:10] = 1  # 100 px
    proj[20:30, 0:10] = 3  # 100 px
    proj[20:30, 20:30] = 2  # 100 px
    prior = np.zeros((40, 40), dtype=np.uint32)  # void everywhere else
    prior[0:6, 30:40] = 10  # background class, overlaps no projection
    prior[0:10, 20:30] = 10
    prior[9, 0:6] = 20  # 6 px inside instance 1: IoU 6/100 = 0.06 -> matched
    prior[29, 0:4] = 30  # 4 px inside instance 3: IoU 4/100 = 0.04 -> unlabelled
    prior[20:30, 20:30] = 40  # instance 2 exactly
    prior[20:30, 30:32] = 40  # ...and 20 px more: IoU 100/120
    prior[35:40, 35:40] = 50  # a thing segment over nothing
    prior[12:14, 0:10] = 60  # background class lying over nothing projected
    segs = {10: {"category_id": 0}, 20: {"category_id": 3}, 30: {"category_id": 5}, 40: {"category_id": 1}, 50: {"category_id": 9}, 60: {"category_id": 0}}
    return prior, segs, proj


def test_matching_rules_of_match_seg() -> None:
    prior, segs, proj = rules_case()
    out = match_prior_to_instances(prior, segs, proj)
    assert out.dtype == np.int32 and out.shape == prior.shape
    assert np.all(out[prior == 0] == -1)  # void -> unlabelled
    assert np.all(out[prior == 10] == 0) and np.all(out[prior == 60] == 0)  # background class -> 0
    assert np.all(out[prior == 20] == 1)  # IoU 0.06 > 0.05
    assert np.all(out[prior == 30] == -1)  # IoU 0.04
    assert np.all(out[prior == 40] == 2)
    assert np.all(out[prior == 50] == -1)
    # a lower threshold matches segment 30 to instance 3; the list form of segments_info works too
    listed = [{"id": k, "category_id": v["category_id"]} for k, v in segs.items()]
    assert np.all(match_prior_to_instances(prior, listed, proj, iou_threshold=0.03)[prior == 30] == 3)


def test_best_iou_wins_between_two_instances() -> None:
    proj = np.zeros((10, 20), dtype=np.int32)
    proj[:, :10] = 1
    proj[:, 10:] = 2
    prior = np.ones((10, 20), dtype=np.uint32)
    prior[:, :8] = 2  # segment 1 covers 2 columns of instance 1 and all of instance 2
    out = match_prior_to_instances(prior, {1: {"category_id": 4}, 2: {"category_id": 4}}, proj)
    assert np.all(out[prior == 1] == 2) and np.all(out[prior == 2] == 1)


def test_view_without_projection() -> None:
    """Reference match_seg.py: nothing projects -> background segments stay 0, every other segment -1."""
    prior, segs, proj = rules_case()
    empty = np.zeros_like(proj)
    out = match_prior_to_instances(prior, segs, empty)
    assert np.all(out[(prior == 10) | (prior == 60)] == 0)
    assert np.all(out[(prior != 10) & (prior != 60)] == -1)
    assert np.all(match_prior_to_instances(prior, segs, empty, unlabel_empty_views=True) == -1)


def test_matching_input_errors() -> None:
    prior, segs, proj = rules_case()
    with pytest.raises(InputError, match=r"\[50\]|segment ids \[50\]"):
        match_prior_to_instances(prior, {k: v for k, v in segs.items() if k != 50}, proj, source="p.json")
    with pytest.raises(InputError, match="shapes"):
        match_prior_to_instances(prior[:-1], segs, proj)
    with pytest.raises(InputError, match="negative"):
        match_prior_to_instances(prior, segs, proj - 1)
    with pytest.raises(InputError, match="p.json"):
        match_prior_to_instances(prior, [{"id": 1}], proj, source="p.json")


def test_match_scene_end_to_end_with_and_without_depth() -> None:
    masks, lo, hi, c2w, depth = wall_scene()
    gt = project_instance_masks(masks, lo, hi, c2w, INTR, depth)  # what the camera really sees
    # a prior that segments what is visible: instance 2 and the visible half of instance 1 as things, the rest
    # as one background segment (the wall in front of instance 1's hidden half included)
    prior = np.full(gt.shape, 9, dtype=np.uint32)
    prior[gt == 1] = 5
    prior[gt == 2] = 7
    segs = [{"id": 9, "category_id": 0}, {"id": 5, "category_id": 2}, {"id": 7, "category_id": 3}]
    scores = np.array([0.9, 0.8])
    with_depth, without = match_scene(masks, scores, lo, hi, [MatchView(c2w, INTR, prior, segs, depth), (c2w, INTR, prior, segs, None)])
    assert np.array_equal(with_depth, gt)
    assert np.array_equal(without, gt)  # a background segment stays background even where the hidden block projects
    # a low score removes the instance: its segment is left unlabelled
    (low,) = match_scene(masks, [0.4, 0.8], lo, hi, [(c2w, INTR, prior, segs, depth)])
    assert np.all(low[prior == 5] == -1) and np.all(low[prior == 7] == 2)
    with pytest.raises(InputError, match="view 0"):
        match_scene(masks, scores, lo, hi, [(c2w, INTR, prior, segs)])


def test_unlabel_background_under_instances_only_where_a_visible_instance_projects() -> None:
    """The switch (off: the reference keeps background 0): a prior that missed the visible half of instance 1
    (called it background) loses those labels to -1; the wall hiding instance 1's other half and the background
    nothing projects onto stay 0, since the occlusion test removes the hidden half before the rule applies."""
    masks, lo, hi, c2w, depth = wall_scene()
    gt = project_instance_masks(masks, lo, hi, c2w, INTR, depth)
    hidden = project_instance_masks(masks, lo, hi, c2w, INTR) == 1  # where instance 1 projects without depth
    prior = np.full(gt.shape, 9, dtype=np.uint32)  # one background segment, instance 1 missed by the prior
    prior[gt == 2] = 7
    segs = [{"id": 9, "category_id": 0}, {"id": 7, "category_id": 3}]
    view = (c2w, INTR, prior, segs, depth)
    (paper,) = match_scene(masks, [0.9, 0.8], lo, hi, [view])
    (switched,) = match_scene(masks, [0.9, 0.8], lo, hi, [view], unlabel_background_under_instances=True)
    assert np.all(paper[gt == 1] == 0)  # the reference: the prior's background wins
    assert np.all(switched[gt == 1] == -1) and (gt == 1).sum() > 50
    assert np.all(switched[gt == 2] == 2) and np.array_equal(switched[gt != 1], paper[gt != 1])
    wall_over_hidden = hidden & (gt == 0)
    assert wall_over_hidden.sum() > 50 and np.all(switched[wall_over_hidden] == 0)
    # pixel rule on the plain function: only background pixels with a projection change
    out = match_prior_to_instances(prior, segs, gt, unlabel_background_under_instances=True)
    assert np.array_equal(out, switched)


def test_bad_geometry_inputs() -> None:
    grid, lo, hi, *_ = block_grid()
    c2w = look_at(np.array([2.1, -0.9, 1.6]), np.array([0.5, 0.5, 0.5]))
    with pytest.raises(InputError, match="bbox"):
        project_label_grid(grid, hi, lo, c2w, INTR)
    with pytest.raises(InputError, match="depth"):
        project_label_grid(grid, lo, hi, c2w, INTR, depth=np.ones((3, 3)))
    with pytest.raises(InputError, match="splat"):
        project_label_grid(grid, lo, hi, c2w, INTR, splat="disc")
    with pytest.raises(InputError, match="c2w"):
        project_label_grid(grid, lo, hi, np.eye(3), INTR)
