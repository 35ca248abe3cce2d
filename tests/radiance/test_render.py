"""Volume rendering of packed samples: analytic cases, shared weights, detach, occupancy skipping."""

from __future__ import annotations

import math

import torch

from nerfseg.radiance.field import FieldConfig, RadianceField
from nerfseg.radiance.occupancy import OccupancyGrid
from nerfseg.radiance.render import MarchSettings, distortion_loss, march, render_rays, segment_exclusive_cumsum, volume_render
from nerfseg.radiance.scene_box import SceneBox, ray_aabb


def _packed(counts: list[int]) -> torch.Tensor:
    return torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))


def test_segment_cumsum_matches_per_ray_loop() -> None:
    g = torch.Generator().manual_seed(0)
    counts = [3, 0, 5, 1, 7]
    ray = _packed(counts)
    vals = torch.rand(len(ray), generator=g) * 50
    got = segment_exclusive_cumsum(vals, ray)
    start = 0
    for c in counts:
        seg = vals[start : start + c]
        ref = torch.cumsum(seg.double(), 0) - seg.double()
        torch.testing.assert_close(got[start : start + c], ref.float())
        start += c


def test_constant_density_slab_analytic() -> None:
    # constant sigma on [a, b], n intervals: opacity telescopes exactly; the expected depth approaches
    # the continuous integral a(1-e) + 1/s - e(L + 1/s) with e = exp(-s L), up to O(dt^2)
    sigma, a, b, n = 1.7, 0.5, 2.5, 4000
    dt = (b - a) / n
    t = a + (torch.arange(n, dtype=torch.float64) + 0.5) * dt
    ray = torch.zeros(n, dtype=torch.long)
    out = volume_render(torch.full((n,), sigma, dtype=torch.float64), torch.full((n,), dt, dtype=torch.float64), ray, 1, t=t)
    length = b - a
    e = math.exp(-sigma * length)
    assert abs(float(out["opacity"][0]) - (1 - e)) < 1e-9
    expect_depth = a * (1 - e) + 1 / sigma - e * (length + 1 / sigma)
    assert abs(float(out["depth"][0]) - expect_depth) < 1e-6
    assert float(out["weights"].sum()) <= 1.0 + 1e-12
    torch.testing.assert_close(out["transmittance"][-1:], torch.tensor([math.exp(-sigma * (length - dt))], dtype=torch.float64))


def test_weights_bounded_and_channels_share_weights() -> None:
    g = torch.Generator().manual_seed(1)
    counts = [4, 0, 9, 2]
    ray = _packed(counts)
    s = len(ray)
    sig = torch.rand(s, generator=g) * 30
    dt = torch.rand(s, generator=g) * 0.1
    logits = torch.randn(s, 5, generator=g)
    codes = torch.randn(s, 3, generator=g)
    out = volume_render(sig, dt, ray, len(counts), {"logits": logits, "codes": codes, "ones": torch.ones(s, 1)})
    assert (out["opacity"] <= 1 + 1e-6).all() and (out["weights"] >= 0).all()
    torch.testing.assert_close(out["ones"][:, 0], out["opacity"])
    manual = torch.zeros(len(counts), 5).index_add_(0, ray, out["weights"][:, None] * logits)
    torch.testing.assert_close(out["logits"], manual)
    assert out["logits"][1].abs().sum() == 0 and out["opacity"][1] == 0  # a ray without samples


def test_background_fills_the_remaining_opacity() -> None:
    ray = torch.zeros(3, dtype=torch.long)
    out = volume_render(torch.tensor([1.0, 2.0, 0.5]), torch.full((3,), 0.2), ray, 1, {"rgb": torch.zeros(3, 3)}, background=torch.tensor([1.0, 0.5, 0.0]))
    torch.testing.assert_close(out["rgb"][0], (1 - out["opacity"][0]) * torch.tensor([1.0, 0.5, 0.0]))


def test_detached_channel_sends_no_gradient_to_density() -> None:
    ray = _packed([6, 3])
    sig = (torch.rand(9, generator=torch.Generator().manual_seed(2)) * 5).requires_grad_(True)
    codes = torch.randn(9, 4, requires_grad=True)
    out = volume_render(sig, torch.full((9,), 0.3), ray, 2, {"codes": codes, "logits": codes * 2}, detach_weights_for={"codes"})
    out["codes"].pow(2).sum().backward()
    assert sig.grad is None or sig.grad.abs().max() == 0
    assert codes.grad is not None and codes.grad.abs().max() > 0
    out2 = volume_render(sig, torch.full((9,), 0.3), ray, 2, {"codes": codes, "logits": codes * 2}, detach_weights_for={"codes"})
    out2["logits"].pow(2).sum().backward()
    assert sig.grad.abs().max() > 0


def _tiny_field(density_bias: float = 1.0) -> RadianceField:
    torch.manual_seed(0)
    box = SceneBox.from_room_bbox([[0, 0, 0], [4, 3, 2.5]])
    cfg = FieldConfig(num_levels=3, log2_table_size=10, base_resolution=4, max_resolution=32, geo_hidden=16, color_hidden=16, sh_degree=2, density_bias=density_bias)
    field = RadianceField(cfg, box)
    with torch.no_grad():
        for t in field.encoding.tables:
            t.normal_(0, 0.5)
    return field


def _rays(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    o = torch.tensor([0.5, 0.5, 0.5]) + torch.rand(n, 3, generator=g) * torch.tensor([3.0, 2.0, 1.5])
    d = torch.randn(n, 3, generator=g)
    d = d / (-d[:, 2:3].abs().clamp_min(0.2))  # arbitrary directions, scaled like camera-z=-1 rays
    return o, d


def test_occupancy_all_occupied_equals_no_skipping() -> None:
    field = _tiny_field()
    o, d = _rays(64, 3)
    settings = MarchSettings(step=0.05, early_stop_eps=0.0)
    occ = OccupancyGrid(field.box.aabb_normalised(), 16)
    assert occ.occupied_fraction == 1.0
    with torch.no_grad():
        a = render_rays(field, o, d, settings, None)
        b = render_rays(field, o, d, settings, occ)
    for k in ("rgb", "depth", "opacity"):
        torch.testing.assert_close(a[k], b[k])
    assert a["num_samples"] == b["num_samples"] > 0


def test_early_stop_and_skipping_change_little() -> None:
    o, d = _rays(128, 4)
    full = MarchSettings(step=0.05, early_stop_eps=0.0)
    dense = _tiny_field(density_bias=3.0)  # ~20 /m: most rays turn opaque early
    with torch.no_grad():
        ref = render_rays(dense, o, d, full, None)
        fast = render_rays(dense, o, d, MarchSettings(step=0.05, early_stop_eps=1e-4), None)
    assert fast["num_samples"] < 0.8 * ref["num_samples"]
    torch.testing.assert_close(fast["rgb"], ref["rgb"], atol=2e-4, rtol=0)
    sparse = _tiny_field(density_bias=-8.0)  # ~3e-4 /m with random bumps: about half the cells occupied
    with torch.no_grad():
        occ = OccupancyGrid(sparse.box.aabb_normalised(), 16, threshold=1e-3)
        occ.update(sparse.density, torch.Generator().manual_seed(0))
        ref = render_rays(sparse, o, d, full, None)
        skip = render_rays(sparse, o, d, full, occ)
    assert 0.2 < occ.occupied_fraction < 0.9 and skip["num_samples"] < ref["num_samples"]
    # skipped cells were probed below 1e-3 /m (up to the probe's sampling error); rays are < 7 m long
    torch.testing.assert_close(skip["opacity"], ref["opacity"], atol=1e-2, rtol=0)


def test_march_tiles_near_far_and_jitter_stays_inside() -> None:
    o = torch.zeros(2, 3)
    d = torch.tensor([[0.0, 0.0, -1.0], [0.6, 0.0, -1.0]])
    near, far = torch.tensor([0.1, 0.2]), torch.tensor([1.0, 1.4])
    step_t = torch.tensor([0.07, 0.05])
    ray, t, dt, x = march(o, d, near, far, step_t, None, None)
    for r in range(2):
        sel = ray == r
        assert abs(float(dt[sel].sum()) - float(far[r] - near[r])) < 1e-5
        assert float(t[sel].min()) > float(near[r]) and float(t[sel].max()) < float(far[r])
    ray, t, dt, x = march(o, d, near, far, step_t, None, torch.tensor([0.3, 0.9]))
    for r in range(2):
        sel = ray == r
        assert abs(float(dt[sel].sum()) - float(far[r] - near[r])) < 1e-5
        assert (dt[sel] > 0).all() and (dt[sel] <= step_t[r] + 1e-6).all()
    torch.testing.assert_close(x, o[ray] + t[:, None] * d[ray])


def test_ray_aabb_from_inside_and_outside() -> None:
    aabb = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    o = torch.tensor([[0.0, 0.0, 0.0], [-3.0, 0.0, 0.0], [-3.0, 5.0, 0.0]])
    d = torch.tensor([[0.0, 0.0, -2.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    near, far = ray_aabb(o, d, aabb, min_near=0.05)
    torch.testing.assert_close(near[:2], torch.tensor([0.05, 2.0]))
    torch.testing.assert_close(far[:2], torch.tensor([0.5, 4.0]))
    assert far[2] <= near[2]  # miss


def test_distortion_loss_matches_double_sum() -> None:
    g = torch.Generator().manual_seed(5)
    counts = [5, 1, 0, 8]
    ray = _packed(counts)
    w = torch.rand(len(ray), generator=g) * 0.3
    dt = torch.rand(len(ray), generator=g) * 0.1 + 0.01
    t = torch.cat([torch.cumsum(dt[ray == r], 0) for r in range(len(counts))]) - dt / 2
    got = distortion_loss(w, t, dt, ray, len(counts))
    ref = 0.0
    for r in range(len(counts)):
        sel = ray == r
        wr, tr, dr = w[sel], t[sel], dt[sel]
        ref += float((wr[:, None] * wr[None, :] * (tr[:, None] - tr[None, :]).abs()).sum() + (wr**2 * dr).sum() / 3)
    assert abs(float(got) - ref / len(counts)) < 1e-5
    # one concentrated spike costs less than the same weight spread along the ray
    one = torch.zeros(10, dtype=torch.long)
    tt = torch.arange(10.0) * 0.1 + 0.05
    spike = distortion_loss(torch.tensor([0.0] * 4 + [0.9] + [0.0] * 5), tt, torch.full((10,), 0.1), one, 1)
    spread = distortion_loss(torch.full((10,), 0.09), tt, torch.full((10,), 0.1), one, 1)
    assert spike < spread


def test_early_stop_renders_the_same_with_and_without_gradients() -> None:
    """Without gradients the early-stop pass reuses its geometry; with them it recomputes the kept samples."""
    field = _tiny_field(density_bias=3.0)
    o, d = _rays(96, 5)
    settings = MarchSettings(step=0.05, early_stop_eps=1e-4)
    head = {"xyz": lambda geo, x: torch.cat([geo[:, :2], x], dim=-1)}
    with torch.no_grad():
        cold = render_rays(field, o, d, settings, None, head)
    warm = render_rays(field, o, d, settings, None, head)
    assert warm["rgb"].requires_grad and not cold["rgb"].requires_grad
    assert cold["num_samples"] == warm["num_samples"] < cold["num_probed"]
    for k in ("rgb", "depth", "opacity", "xyz"):
        torch.testing.assert_close(cold[k], warm[k].detach(), atol=1e-6, rtol=0)
