"""Ray marching with empty-space skipping and volume rendering of packed (ragged) samples.

Samples are *packed*: one flat list of samples with ``ray_indices`` saying which ray each belongs to;
the samples of a ray are contiguous and ordered by ``t``. Compositing uses a segment cumulative sum for
the transmittance and ``index_add_`` for the per-ray sums, so the cost scales with the samples that
survive the occupancy grid, not with rays x max samples, and there is no Python loop over rays.

Every per-sample channel (colour, semantic logits, object codes, ...) is composited with the same
weights; ``detach_weights_for`` names channels whose weights are detached (DM-NeRF's object codes must
not move the geometry, Semantic-NeRF's logits may).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import torch

from nerfseg.radiance.field import RadianceField
from nerfseg.radiance.occupancy import OccupancyGrid
from nerfseg.radiance.scene_box import ray_aabb

#: A head maps (geo_feat (S, G), normalised positions (S, 3)) to per-sample values (S, C).
Head = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def segment_exclusive_cumsum(values: torch.Tensor, ray_indices: torch.Tensor) -> torch.Tensor:
    """Per-ray exclusive prefix sums of packed ``values`` (samples of a ray contiguous).

    One global cumulative sum in float64 minus the running total at each ray's first sample: float32
    would lose the small per-ray sums against a global total of ~1e5-1e6 optical depth.
    """
    if values.numel() == 0:
        return values
    cs = torch.cumsum(values.double(), 0)
    excl = cs - values.double()
    n = values.shape[0]
    first = torch.ones(n, dtype=torch.bool, device=values.device)
    first[1:] = ray_indices[1:] != ray_indices[:-1]
    start = torch.where(first, torch.arange(n, device=values.device), torch.zeros((), dtype=torch.long, device=values.device))
    start = torch.cummax(start, 0).values
    return (excl - excl[start]).to(values.dtype)


def volume_render(
    sigmas: torch.Tensor,
    deltas: torch.Tensor,
    ray_indices: torch.Tensor,
    num_rays: int,
    channels: Mapping[str, torch.Tensor] | None = None,
    t: torch.Tensor | None = None,
    background: torch.Tensor | None = None,
    detach_weights_for: Iterable[str] = (),
) -> dict[str, torch.Tensor]:
    """Composite packed samples: w_i = T_i (1 - exp(-sigma_i delta_i)), T_i = exp(-sum_{j<i} sigma_j delta_j).

    Returns ``weights`` (S,), ``transmittance`` (S,), ``opacity`` (R,) = sum w, ``depth`` (R,) = sum w t
    when ``t`` is given (not divided by opacity), and every channel (S, C) as (R, C) = sum w c.
    ``background`` (C,) is added as (1 - opacity) * background to the ``rgb`` channel only.
    """
    tau = sigmas * deltas
    trans = torch.exp(-segment_exclusive_cumsum(tau, ray_indices))
    alpha = 1.0 - torch.exp(-tau)
    weights = trans * alpha
    detach = set(detach_weights_for)
    out: dict[str, torch.Tensor] = {"weights": weights, "transmittance": trans}
    opacity = torch.zeros(num_rays, dtype=weights.dtype, device=weights.device).index_add_(0, ray_indices, weights)
    out["opacity"] = opacity
    if t is not None:
        out["depth"] = torch.zeros_like(opacity).index_add_(0, ray_indices, weights * t)
    for name, val in (channels or {}).items():
        w = weights.detach() if name in detach else weights
        v = val.reshape(val.shape[0], int(math.prod(val.shape[1:])))
        acc = torch.zeros(num_rays, v.shape[1], dtype=v.dtype, device=v.device).index_add_(0, ray_indices, w.unsqueeze(-1).to(v.dtype) * v)
        out[name] = acc.reshape(num_rays, *val.shape[1:])
    if background is not None and "rgb" in out:
        o = opacity.detach() if "rgb" in detach else opacity
        out["rgb"] = out["rgb"] + (1.0 - o).unsqueeze(-1) * background.to(out["rgb"])
    return out


def distortion_loss(weights: torch.Tensor, t: torch.Tensor, deltas: torch.Tensor, ray_indices: torch.Tensor, num_rays: int) -> torch.Tensor:
    """Mip-NeRF 360's distortion loss per ray, averaged over rays (t and deltas in metres).

    sum_ij w_i w_j |t_i - t_j| + 1/3 sum_i w_i^2 delta_i, computed in O(S) with per-ray prefix sums
    (samples sorted by t): the double sum is 2 sum_i w_i (t_i W_<i - (wt)_<i). It is smallest when a
    ray's weight sits in one short interval, so it removes the semi-transparent fog that an
    under-constrained field otherwise uses to paint each training view close to its camera.
    """
    if weights.numel() == 0:
        return weights.sum()
    w_before = segment_exclusive_cumsum(weights, ray_indices)
    wt_before = segment_exclusive_cumsum(weights * t, ray_indices)
    inter = 2.0 * weights * (t * w_before - wt_before)
    intra = weights.pow(2) * deltas / 3.0
    return (inter + intra).sum() / max(num_rays, 1)


@dataclass
class MarchSettings:
    """How rays are sampled: a fixed world step (metres) between ``near`` and the box exit."""

    step: float  # metres between consecutive samples along a ray (measured along the ray)
    min_near: float = 0.2  # metres (ray parameter = depth); cameras sit inside the room, so the box entry is the camera itself
    early_stop_eps: float = 1e-4  # drop samples whose transmittance is below this (0 = keep all)


def march(
    origins_n: torch.Tensor,
    dirs_n: torch.Tensor,
    near: torch.Tensor,
    far: torch.Tensor,
    step_t: torch.Tensor,
    occupancy: OccupancyGrid | None,
    jitter: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Intervals of length ``step_t`` (per ray) tiling [near, far), minus those whose midpoint lies in
    an empty occupancy cell.

    Returns packed (ray_indices, t of the interval midpoints, deltas, normalised positions), ordered by
    ray and then t. ``jitter`` (R,) in [0,1) shifts each ray's interval boundaries (stratified training;
    the first interval is shortened, so [near, far) stays covered); None = no shift (evaluation).
    """
    dev = origins_n.device
    span = (far - near).clamp_min(0)
    steps = torch.ceil(span / step_t).long()
    k_max = int(steps.max()) if steps.numel() else 0
    if k_max == 0:
        empty = torch.zeros(0, device=dev)
        return torch.zeros(0, dtype=torch.long, device=dev), empty, empty, torch.zeros(0, 3, device=dev)
    # interval boundaries near + (k - 1 + j) * step for j in (0, 1]: the first interval [near, near + j*step]
    # is shortened by the jitter, the others are full; j = 1 (no jitter) tiles [near, far) from near exactly
    j = (1.0 - jitter) if jitter is not None else torch.ones_like(near)
    k = torch.arange(k_max + 1, device=dev, dtype=origins_n.dtype)
    t0 = near.unsqueeze(1) + (k.unsqueeze(0) - 1.0 + j.unsqueeze(1)) * step_t.unsqueeze(1)
    t_start = torch.maximum(t0, near.unsqueeze(1))
    t_end = torch.minimum(t0 + step_t.unsqueeze(1), far.unsqueeze(1))
    valid = t_end > t_start
    ray_idx, kk = valid.nonzero(as_tuple=True)
    ts, te = t_start[ray_idx, kk], t_end[ray_idx, kk]
    tm = 0.5 * (ts + te)
    x = origins_n[ray_idx] + tm.unsqueeze(-1) * dirs_n[ray_idx]
    if occupancy is not None:
        keep = occupancy.occupied(x)
        ray_idx, tm, ts, te, x = ray_idx[keep], tm[keep], ts[keep], te[keep], x[keep]
    return ray_idx, tm, te - ts, x


def render_rays(
    field: RadianceField,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    settings: MarchSettings,
    occupancy: OccupancyGrid | None = None,
    heads: Mapping[str, Head] | None = None,
    detach_weights_for: Iterable[str] = (),
    background: torch.Tensor | None = None,
    jitter: torch.Tensor | None = None,
    return_samples: bool = False,
) -> dict:
    """Render world rays (R,3) through ``field``: rgb (R,3), depth (R,) (= sum w t, metres along the
    optical axis for camera-z = -1 directions), opacity (R,), and one (R, C) output per head.

    Heads receive (geo_feat, normalised xyz) of the surviving samples and decide themselves whether
    to detach ``geo_feat``. With ``settings.early_stop_eps > 0`` a gradient-free density pass first
    removes samples hidden behind opaque matter (transmittance < eps), whose gradients would be ~0
    anyway; the remaining samples are evaluated again with gradients. With ``return_samples`` the
    packed per-sample tensors (``ray_indices``, ``t``, ``deltas``, ``sigmas``, ``weights``,
    ``transmittance``, ``xyz`` and each head's raw values) come back under ``"samples"``.
    """
    heads = dict(heads or {})
    num_rays = origins.shape[0]
    o_n, d_n = field.box.normalise_rays(origins, dirs)
    aabb = field.box.aabb_normalised().to(origins.device)
    near, far = ray_aabb(o_n, d_n, aabb, settings.min_near)
    step_t = settings.step / dirs.norm(dim=-1).clamp_min(1e-9)
    ray_idx, t, deltas, x = march(o_n, d_n, near, far, step_t, occupancy, jitter)
    num_probed = int(ray_idx.numel())
    if settings.early_stop_eps > 0 and ray_idx.numel():
        training = torch.is_grad_enabled()
        if training:
            # a cheap gradient-free density pass decides which samples get the full, recorded pass
            with torch.no_grad():
                sig = field.density(x)
        else:
            # without gradients: one geometry pass over all probed samples, the kept ones reused below
            # (density() is geometry()[0], so this is the same result without the second pass)
            sig, geo_all = field.geometry(x)
        trans = torch.exp(-segment_exclusive_cumsum(sig * deltas, ray_idx))
        keep = trans > settings.early_stop_eps
        ray_idx, t, deltas, x = ray_idx[keep], t[keep], deltas[keep], x[keep]
        sigmas, geo = field.geometry(x) if training else (sig[keep], geo_all[keep])
    else:
        sigmas, geo = field.geometry(x)
    dir_enc = field.encode_dirs(dirs)[ray_idx]
    channels = {"rgb": field.color(geo, dir_enc=dir_enc)}
    for name, head in heads.items():
        if name in ("rgb", "depth", "opacity", "weights", "transmittance"):
            raise ValueError(f"head name {name!r} clashes with a built-in output")
        channels[name] = head(geo, x)
    out = volume_render(sigmas, deltas, ray_idx, num_rays, channels, t=t, background=background, detach_weights_for=detach_weights_for)
    result = {k: out[k] for k in ["rgb", "depth", "opacity", *heads.keys()]}
    result["num_samples"] = int(ray_idx.numel())  # samples through the full network (with gradients)
    result["num_probed"] = num_probed  # samples in occupied cells (density-only pass when early stop is on)
    if return_samples:
        samples = {"ray_indices": ray_idx, "t": t, "deltas": deltas, "sigmas": sigmas, "weights": out["weights"], "transmittance": out["transmittance"], "xyz": x}
        samples.update({f"head:{k}": v for k, v in channels.items() if k != "rgb"})
        samples["rgb"] = channels["rgb"]
        result["samples"] = samples
    return result
