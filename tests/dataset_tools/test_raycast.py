"""Ray-cast renderer: exact depth and labels (checked against analytic geometry), plausible shading."""

from __future__ import annotations

import numpy as np
import pytest

from nerfseg.dataset_tools.raycast import Hits, Lighting, SceneRaycaster, bilinear_lookup, srgb_to_linear
from nerfseg.dataset_tools.scene import MeshPart
from nerfseg.cameras import Intrinsics, look_at, project_points, world_rays
from nerfseg.errors import InputError
from tests.dataset_tools.scenes import DEFAULT_OBJECTS, ROOM_ORIGIN, ROOM_SIZE, checker_texture, make_box_room

ORIGIN = np.array(ROOM_ORIGIN)
TOP = ORIGIN + np.array(ROOM_SIZE)


def test_rays_are_the_shared_convention(rc: SceneRaycaster) -> None:
    intr = Intrinsics(40, 30, 33.0, 35.0, 19.0, 16.0)
    c2w = look_at(np.array([0.5, 0.2, 1.3]), np.array([2.0, -1.0, 0.7]))
    o, d = rc._camera_rays(c2w, intr)
    o_ref, d_ref = world_rays(c2w, intr)
    np.testing.assert_allclose(o, o_ref)
    np.testing.assert_allclose(d, d_ref, rtol=1e-6, atol=1e-6)


def test_depth_is_distance_along_optical_axis_facing_a_wall() -> None:
    rc = SceneRaycaster(make_box_room(objects=[]))
    intr = Intrinsics(64, 48, 80.0, 80.0, 32.0, 24.0)
    eye = np.array([1.5, 0.0, 1.4])
    out = rc.render_depth_labels_only(look_at(eye, eye + np.array([1.0, 0.0, 0.0])), intr)
    assert out.hit.all()
    # the +x wall is at x = 4.0: every pixel, corners included, has depth 2.5 (not the slant range)
    np.testing.assert_allclose(out.depth, TOP[0] - eye[0], rtol=1e-6)
    assert out.depth.dtype == np.float32 and (out.instance == 0).all() and (out.semantic == 0).all()


def test_depth_of_a_tilted_camera_matches_plane_intersection() -> None:
    rc = SceneRaycaster(make_box_room(objects=[], light=False))
    intr = Intrinsics(48, 36, 50.0, 52.0, 23.0, 19.0)
    eye = np.array([0.2, -0.3, 1.1])
    c2w = look_at(eye, np.array([4.0, 0.9, 1.6]))
    out = rc.render_depth_labels_only(c2w, intr)
    o, d = world_rays(c2w, intr)
    t_wall = (TOP[0] - o[:, 0]) / d[:, 0]  # ray parameter to the plane x = xmax; depth along -z equals t
    p = o + t_wall[:, None] * d
    on_wall = (p[:, 1] > ORIGIN[1]) & (p[:, 1] < TOP[1]) & (p[:, 2] > ORIGIN[2]) & (p[:, 2] < TOP[2] - 0.05)
    assert on_wall.mean() > 0.5
    np.testing.assert_allclose(out.depth.ravel()[on_wall], t_wall[on_wall], rtol=2e-6)


def test_points_on_a_box_face_project_onto_that_box(rc: SceneRaycaster, room, rng: np.random.Generator) -> None:
    intr = Intrinsics(96, 72, 70.0, 70.0, 48.0, 36.0)
    bed = room.instance(1)
    lo, hi = bed.aabb[:3], bed.aabb[3:]
    eye = np.array([2.0, -0.8, 2.0])
    c2w = look_at(eye, (lo + hi) / 2)
    out = rc.render(c2w, intr)
    # random points on the bed's top face, away from its edges
    pts = np.stack([rng.uniform(lo[0] + 0.1, hi[0] - 0.1, 200), rng.uniform(lo[1] + 0.1, hi[1] - 0.1, 200), np.full(200, hi[2])], axis=1)
    uv, depth = project_points(pts, c2w, intr)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < intr.width) & (uv[:, 1] >= 0) & (uv[:, 1] < intr.height)
    assert inside.sum() > 150
    col, row = np.floor(uv[inside]).astype(int).T
    assert (out.instance[row, col] == bed.instance_id).all()
    assert (out.semantic[row, col] == bed.class_index).all()
    # a pixel centre is at most half a pixel away from the point: the depth differs by at most that slope
    np.testing.assert_allclose(out.depth[row, col], depth[inside], atol=0.03)


def test_labels_have_no_bleeding_at_silhouette_edges() -> None:
    bed_only = make_box_room(objects=[DEFAULT_OBJECTS[0]])
    rc = SceneRaycaster(bed_only)
    bed = bed_only.instance(1)
    lo, hi = bed.aabb[:3], bed.aabb[3:]
    centre = (lo + hi) / 2
    intr = Intrinsics(80, 60, 30.0, 30.0, 40.0, 30.0)
    c2w = look_at(np.array([centre[0], centre[1], 2.5]), centre, up=np.array([0.0, 1.0, 0.0]))  # straight down
    out = rc.render_depth_labels_only(c2w, intr)
    # analytic silhouette: a pixel is the bed iff its centre ray meets the top plane inside the top rectangle
    o, d = world_rays(c2w, intr)
    t = (hi[2] - o[:, 2]) / d[:, 2]
    p = o + t[:, None] * d
    margin = np.minimum.reduce([p[:, 0] - lo[0], hi[0] - p[:, 0], p[:, 1] - lo[1], hi[1] - p[:, 1]])
    clear = np.abs(margin) > 1e-6
    expected = np.where(margin > 0, bed.instance_id, 0).reshape(intr.height, intr.width)
    assert (margin > 0).sum() > 500 and (margin < 0).sum() > 500
    assert np.array_equal(out.instance.ravel()[clear], expected.ravel()[clear])
    assert np.array_equal(out.semantic, np.where(out.instance == bed.instance_id, bed.class_index, 0))
    # depth jumps exactly where the label does: the bed top at its plane, the floor elsewhere
    np.testing.assert_allclose(out.depth.ravel()[margin > 1e-6], t[margin > 1e-6], rtol=1e-5)


def test_first_hit_barycentrics_and_ranges(rc: SceneRaycaster, rng: np.random.Generator) -> None:
    n = 500
    origins = rng.uniform(ORIGIN + 0.3, TOP - 0.3, size=(n, 3))
    origins[:, 2] = 2.6  # above every object, under the light panel's level
    dirs = rng.normal(size=(n, 3))
    dirs[:, 2] = -np.abs(dirs[:, 2]) - 0.2
    t, tri = rc.first_hit(origins, dirs)
    assert (tri >= 0).all() and np.isfinite(t).all()
    hits = rc.intersect(origins, dirs)
    np.testing.assert_allclose(rc.hit_points(hits), origins + t[:, None] * dirs, atol=1e-4)
    # a far limit shorter than the hit turns it into a miss; tnear skips what is in front
    t2, tri2 = rc.first_hit(origins, dirs, tfar=t * 0.5)
    assert (tri2 == -1).all() and np.isinf(t2).all()
    t3, _ = rc.first_hit(origins, dirs, tnear=0.1)
    np.testing.assert_allclose(t3, t, rtol=1e-5)
    assert rc.occluded(origins, dirs, t * 1.01).all() and not rc.occluded(origins, dirs, t * 0.99).any()
    # rays leaving the room from outside hit nothing
    t4, tri4 = rc.first_hit(np.tile(TOP + 1.0, (3, 1)), np.eye(3))
    assert (tri4 == -1).all() and np.isinf(t4).all()


def test_nearest_surface_distance_is_exact_for_walls() -> None:
    rc = SceneRaycaster(make_box_room(objects=[], light=False))
    pts = np.array([[0.0, 0.0, 1.0], [3.7, 1.0, 2.0], [1.0, -1.8, 0.4]])
    expected = np.minimum(np.min(pts - ORIGIN, axis=1), np.min(TOP - pts, axis=1))
    np.testing.assert_allclose(rc.nearest_surface_distance(pts, 5.0), expected, rtol=1e-5)
    np.testing.assert_allclose(rc.nearest_surface_distance(pts, 0.25), np.minimum(expected, 0.25), rtol=1e-5)


def test_render_is_deterministic_and_consistent_with_labels_only(rc: SceneRaycaster) -> None:
    intr = Intrinsics(64, 48, 40.0, 40.0, 32.0, 24.0)
    c2w = look_at(np.array([3.0, 1.5, 1.5]), np.array([0.0, -1.0, 0.5]))
    a, b = rc.render(c2w, intr), rc.render(c2w, intr)
    fast = rc.render_depth_labels_only(c2w, intr)
    assert a.rgb is not None and a.rgb.shape == (48, 64, 3) and a.rgb.dtype == np.uint8
    assert np.array_equal(a.rgb, b.rgb)
    assert fast.rgb is None
    for name in ("depth", "instance", "semantic", "hit"):
        assert np.array_equal(getattr(a, name), getattr(fast, name))
    assert len(np.unique(a.instance)) >= 4
    threaded = SceneRaycaster(rc.scene, num_threads=2)
    big = Intrinsics(256, 192, 160.0, 160.0, 128.0, 96.0)  # > 20000 rays: the batch is split over threads
    assert np.array_equal(threaded.render(c2w, big).rgb, rc.render(c2w, big).rgb)


def _down_rays(xy: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    o = np.column_stack([xy, np.full(len(xy), z)])
    return o, np.tile([0.0, 0.0, -1.0], (len(xy), 1))


def test_shadows_light_and_emitters(rc: SceneRaycaster, room) -> None:
    table = room.instance(2)
    under = (table.aabb[:2] + table.aabb[3:5]) / 2
    # floor under the table vs open floor near the room centre (under the light), same checker colour cell
    o, d = _down_rays(np.array([under, [ORIGIN[0] + 2.5 + 0.0625, ORIGIN[1] + 2.0 + 0.0625]]), 0.3)
    under_o = o.copy()
    hits = rc.intersect(o, d)
    assert (rc.tri_part[hits.tri] == 0).all()  # both hit the floor
    rad = rc.shade(d, hits)
    alb = rc.albedo(hits)
    light_ratio = rad.mean(axis=1) / alb.mean(axis=1)
    assert light_ratio[0] < 0.5 * light_ratio[1]
    no_shadow = SceneRaycaster(room, Lighting(shadows=False, ao_samples=0))
    rad2 = no_shadow.shade(d, no_shadow.intersect(under_o, d))
    assert rad2[0].mean() > rad[0].mean()  # only the shadow made it dark
    # looking up at the panel: the emitter is (near) white, the ceiling next to it is not
    intr = Intrinsics(32, 24, 20.0, 20.0, 16.0, 12.0)
    centre = (ORIGIN + TOP) / 2
    eye = np.array([centre[0] - 1.5, centre[1], 1.5])
    out = rc.render(look_at(eye, np.array([centre[0], centre[1], TOP[2]])), intr)
    panel_part = next(i for i, p in enumerate(room.parts) if p.emissive > 0)
    o, dd = rc._camera_rays(look_at(eye, np.array([centre[0], centre[1], TOP[2]])), intr)
    part = rc.tri_part[rc.intersect(o, dd).tri].reshape(24, 32)
    assert (part == panel_part).sum() > 10
    assert out.rgb[part == panel_part].min() > 240
    assert out.rgb[part == 1].mean() < 235  # ceiling


def test_room_without_emitters_is_still_lit() -> None:
    rc = SceneRaycaster(make_box_room(light=False))
    out = rc.render(look_at(np.array([3.0, 1.5, 1.5]), np.array([0.0, -1.0, 0.5])), Intrinsics(32, 24, 20.0, 20.0, 16.0, 12.0))
    assert 40 < out.rgb.mean() < 250


def test_texture_lookup_follows_obj_uv_convention() -> None:
    tex = np.zeros((4, 8, 3), dtype=np.uint8)
    tex[0, 0] = (255, 0, 0)  # top-left texel = uv (0, 1)
    tex[3, 0] = (0, 255, 0)  # bottom-left texel = uv (0, 0)
    uv = np.array([[0.5 / 8, 1 - 0.5 / 4], [0.5 / 8, 0.5 / 4], [1 + 0.5 / 8, -3 + 0.5 / 4]])
    val = bilinear_lookup(tex, uv)
    np.testing.assert_allclose(val[0], [255, 0, 0])
    np.testing.assert_allclose(val[1], [0, 255, 0])
    np.testing.assert_allclose(val[2], [0, 255, 0])  # uvs wrap (repeat)
    np.testing.assert_allclose(bilinear_lookup(tex, np.array([[1.0 / 8, 1 - 0.5 / 4]]))[0], [127.5, 0, 0])  # halfway


def test_floor_albedo_is_the_checker_texture(rc: SceneRaycaster) -> None:
    tex = checker_texture()
    # uv = world xy in metres; 8 squares per metre; sample the centres of two neighbouring squares
    xy = np.array([[0.0625, 0.0625], [0.1875, 0.0625]])
    o, d = _down_rays(xy, 0.05)
    alb = rc.albedo(rc.intersect(o, d))
    colors = srgb_to_linear(np.unique(tex.reshape(-1, 3), axis=0) / 255.0)
    assert not np.allclose(alb[0], alb[1])
    for a in alb:
        assert np.isclose(colors, a, atol=1e-6).all(axis=1).any()


def test_bad_input_raises(room) -> None:
    rc = SceneRaycaster(room)
    with pytest.raises(InputError, match="4x4"):
        rc.render(np.eye(3), Intrinsics(8, 6, 5.0, 5.0, 4.0, 3.0))
    broken = make_box_room(objects=[])
    broken.parts.append(MeshPart("bad", np.zeros((3, 3)), np.array([[0, 1, 5]])))
    with pytest.raises(InputError, match="bad"):
        SceneRaycaster(broken)
    two_channel = make_box_room(objects=[])
    two_channel.parts[0].texture = np.zeros((4, 4, 2), np.uint8)
    with pytest.raises(InputError, match="floor.*texture"):
        SceneRaycaster(two_channel)


def test_hits_dataclass_reports_misses() -> None:
    h = Hits(t=np.array([1.0, np.inf]), tri=np.array([3, -1]), u=np.zeros(2, np.float32), v=np.zeros(2, np.float32))
    assert h.hit.tolist() == [True, False]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("lighting", [Lighting(), Lighting(shadow_cull=0.02)])
def test_ray_saving_shading_stays_within_the_stated_psnr_of_the_reference(room, lighting: Lighting) -> None:
    """Adaptive shadows (default) and light culling cast fewer rays than the reference (every light sample
    tested at every pixel it can reach) for images within 40 dB PSNR of it (docs/performance.md)."""
    reference = SceneRaycaster(room, Lighting(shadow_probes=0, shadow_cull=0.0))
    fast = SceneRaycaster(room, lighting)
    assert len(fast.lights.intensity) == 8 and fast._light_groups[0][1], "the default has samples to infer"
    intr = Intrinsics(96, 72, 70.0, 70.0, 48.0, 36.0)
    views = [look_at(np.array([3.2, 1.6, 1.8]), np.array([1.0, -0.5, 0.4])), look_at(np.array([0.3, -1.5, 2.2]), np.array([2.5, 1.0, 0.2]))]
    for c2w in views:
        r0, f0 = reference.rays_cast, fast.rays_cast
        ref, got = reference.render(c2w, intr), fast.render(c2w, intr)
        assert fast.rays_cast - f0 < reference.rays_cast - r0
        assert _psnr(got.rgb, ref.rgb) >= 40.0
        for name in ("depth", "instance", "semantic", "hit"):  # labels never depend on the shading
            assert np.array_equal(getattr(got, name), getattr(ref, name))


def test_emissive_pixels_cast_no_secondary_rays(room) -> None:
    rc = SceneRaycaster(room, Lighting(shadow_probes=0))
    light = next(i for i, p in enumerate(room.parts) if p.emissive > 0)
    tri = np.nonzero(rc.tri_part == light)[0][:1]
    centroid = rc.vertices[rc.faces[tri[0]]].mean(axis=0)
    origin = centroid - np.array([0.0, 0.0, 0.5])
    hits = rc.intersect(origin[None], np.array([[0.0, 0.0, 1.0]]))
    assert rc.part_emissive[rc.tri_part[hits.tri[0]]] > 0
    before = rc.rays_cast
    radiance = rc.shade(np.array([[0.0, 0.0, 1.0]]), hits)
    assert rc.rays_cast == before and (radiance > 0).all()


def _textured_room():
    """The box room plus wall posters with greyscale (H,W) and (H,W,1) textures and a float RGBA one, uvs
    outside [0,1]."""
    room = make_box_room()
    rng = np.random.default_rng(3)
    textures = (rng.integers(0, 256, (5, 7), dtype=np.uint8), rng.uniform(0, 255, (6, 4, 4)), rng.integers(0, 256, (3, 5, 1), dtype=np.uint8))
    for k, tex in enumerate(textures):
        y0 = ORIGIN[1] + 0.3 + 1.15 * k
        v = np.array([[TOP[0] - 0.01, y0, 0.6], [TOP[0] - 0.01, y0 + 1.0, 0.6], [TOP[0] - 0.01, y0 + 1.0, 1.8], [TOP[0] - 0.01, y0, 1.8]])
        uvs = np.array([[-1.3, -0.4], [2.1, -0.4], [2.1, 3.2], [-1.3, 3.2]])
        room.parts.append(MeshPart(f"poster{k}", v, np.array([[0, 1, 2], [0, 2, 3]]), uvs=uvs, texture=tex, color=(0.9, 0.8, 1.0)))
    return room


@pytest.mark.parametrize(
    "lighting",
    [Lighting(), Lighting(shadow_probes=0), Lighting(shadow_cull=0.02), Lighting(shadows=False, ao_samples=0), Lighting(ambient=0.0, background=(0.2, 0.5, 1.0))],
)
def test_compiled_shading_matches_the_numpy_reference(lighting: Lighting) -> None:
    """The numba shading repeats the numpy path's arithmetic: the same rays and the same images (1 level
    allowed where a platform's numpy power differs from libm's in the last bit), labels identical."""
    room = _textured_room()
    reference = SceneRaycaster(room, lighting, shade_kernel="numpy")
    compiled = SceneRaycaster(room, lighting, shade_kernel="numba")
    assert compiled.compiled_shading and not reference.compiled_shading
    intr = Intrinsics(80, 60, 60.0, 60.0, 40.0, 30.0)
    views = [look_at(np.array([0.5, 0.0, 1.4]), np.array([4.0, 0.0, 1.2])), look_at(np.array([3.2, 1.6, 1.8]), np.array([1.0, -0.5, 0.4]))]
    views.append(look_at(np.array([1.0, 1.9, 2.5]), np.array([1.5, 1.0, 3.0])))  # towards the panel and out of the room's corner
    for c2w in views:
        r0, c0 = reference.rays_cast, compiled.rays_cast
        ref, got = reference.render(c2w, intr), compiled.render(c2w, intr)
        assert compiled.rays_cast - c0 == reference.rays_cast - r0
        diff = np.abs(got.rgb.astype(np.int16) - ref.rgb.astype(np.int16))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
        for name in ("depth", "instance", "semantic", "hit"):
            assert np.array_equal(getattr(got, name), getattr(ref, name))


def test_compiled_radiance_matches_the_numpy_reference(rng: np.random.Generator) -> None:
    """``shade`` itself (random rays from inside the room: textured floor and posters, emitter, objects)."""
    room = _textured_room()
    reference = SceneRaycaster(room, shade_kernel="numpy")
    compiled = SceneRaycaster(room, shade_kernel="numba")
    o = np.tile([1.5, 0.0, 1.4], (3000, 1))
    d = rng.normal(size=(3000, 3))
    hits = reference.intersect(o, d)
    assert hits.hit.all()
    want, got = reference.shade(d, hits), compiled.shade(d, hits)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)
    threaded = SceneRaycaster(room, num_threads=2, shade_kernel="numba")
    big = Intrinsics(256, 192, 160.0, 160.0, 128.0, 96.0)
    c2w = look_at(np.array([0.5, 0.0, 1.4]), np.array([4.0, 0.0, 1.2]))
    assert np.array_equal(threaded.render(c2w, big).rgb, compiled.render(c2w, big).rgb)


def test_shade_kernel_selection(room, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NERFSEG_SHADE_KERNEL", "numpy")
    assert not SceneRaycaster(room).compiled_shading
    assert SceneRaycaster(room, shade_kernel="numba").compiled_shading  # an explicit choice wins
    monkeypatch.setenv("NERFSEG_SHADE_KERNEL", "fortran")
    with pytest.raises(InputError, match="NERFSEG_SHADE_KERNEL"):
        SceneRaycaster(room)
    monkeypatch.delenv("NERFSEG_SHADE_KERNEL")
    assert SceneRaycaster(room).compiled_shading
    with pytest.raises(InputError, match="shade_kernel"):
        SceneRaycaster(room, shade_kernel="gpu")
