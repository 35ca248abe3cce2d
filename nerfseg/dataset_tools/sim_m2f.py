"""What makes ``sim-m2f`` err like a real 2D network: the same mistakes in every view that sees an object.

A 2D panoptic network is a deterministic function of the image. Two views of the same wardrobe from similar
viewpoints are similar images, so the network makes the same mistake in both; from the other side of the room
the image differs and the mistake may differ. Independent per-view errors (``sim-m2f-indep``) are exactly what
multi-view fusion averages away, so they flatter every method that fuses views. This module supplies the
per-scene, per-object state that :func:`nerfseg.dataset_tools.sim_m2f_view.simulate_sim_m2f` draws its decisions from:

* :class:`ObjectLatents`: for every GT object (and every pair of touching objects, and every spurious site) a
  latent standard-normal value per decision (miss, hole-or-background, split, confusion target, part class),
  drawn once per scene from ``SeedSequence([seed, scene, stream, object id])`` and varying smoothly with the
  direction from which the object is seen (random Fourier features on the unit sphere, correlation length
  ``view_corr_deg``). A view's uniform for a decision is ``Phi(sqrt(c) L + sqrt(1 - c) eps)`` with ``eps`` the
  view's own independent draw (Gaussian copula): ``c = consistency = 0`` gives the independent draws of the old
  model exactly, ``c = 1`` makes the decision a deterministic function of the object and the viewpoint.
* :class:`SceneContext` / :class:`ViewContext`: the scene's 3D knowledge (object centres and boxes from
  ``gt3d.h5``, cameras from ``transforms.json``, depth maps) that turns those latents into a view's decisions,
  places spurious segments at fixed 3D sites (a texture that looks like an object is there in every view), and
  cuts split-off parts with a fixed 3D plane per object (the same headboard, not a random line per view).
* :func:`snap_to_edges`: boundaries re-grown from the noisy masks' interiors over an RGB + depth edge map
  (watershed), so masks follow image edges as a real mask head does instead of being free-form blobs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage, special

from nerfseg import spec
from nerfseg.cameras import Intrinsics, project_points, world_rays
from nerfseg.errors import InputError
from nerfseg.io import read_depth_metres, read_png

# Decisions with their own latent per object (index into the latent vector).
MISS, HOLE, SPLIT, CONFUSE, PART, PART_CLASS, SITE = range(7)
N_PURPOSES = 7
#: random Fourier features per latent: enough for a smooth field whose variance is close to 1
N_FEATURES = 32
KEY_OBJECT, KEY_PAIR, KEY_SITE, KEY_SITES = 1, 2, 3, 4


@dataclass(frozen=True)
class _Latent:
    const: np.ndarray  # (P,) view-invariant part
    omega: np.ndarray  # (P, F, 3) frequencies of the view-dependent part
    phase: np.ndarray  # (P, F)
    normal: np.ndarray  # (3,) unit normal of the 3D split plane
    part_q: float  # fraction of the object's extent along ``normal`` that the split-off part takes
    theta2d: float  # 2D fallback: split line angle in the image


class ObjectLatents:
    """Per-scene latent difficulty of every object, pair and site, drawn lazily and cached (order-free).

    Every key gets its own ``SeedSequence([seed, scene_key, stream, kind, *ids])``, so the latent of an object
    does not depend on which frames or objects were simulated before, nor in which process.
    """

    def __init__(self, seed: int, scene_key: int, stream: int, view_corr_deg: float, view_invariance: float) -> None:
        self._base = [int(seed), int(scene_key), int(stream)]
        # RFF for the Gaussian kernel exp(-|d1 - d2|^2 / (2 s^2)) on unit vectors; |d1 - d2| = 2 sin(angle / 2),
        # so s = 2 sin(view_corr_deg / 2) makes the correlation exp(-1/2) = 0.61 at view_corr_deg apart.
        self._scale = 1.0 / (2.0 * math.sin(math.radians(view_corr_deg) / 2.0))
        self.view_invariance = float(view_invariance)
        self._cache: dict[tuple[int, ...], _Latent] = {}

    def rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self._base + [int(k) for k in key]))

    def _get(self, key: tuple[int, ...]) -> _Latent:
        lat = self._cache.get(key)
        if lat is None:
            r = self.rng(*key)
            normal = r.standard_normal(3)
            lat = _Latent(
                const=r.standard_normal(N_PURPOSES),
                omega=r.standard_normal((N_PURPOSES, N_FEATURES, 3)) * self._scale,
                phase=r.uniform(0.0, 2.0 * math.pi, (N_PURPOSES, N_FEATURES)),
                normal=normal / max(float(np.linalg.norm(normal)), 1e-12),
                part_q=float(r.uniform(0.15, 0.45)),
                theta2d=float(r.uniform(0.0, math.pi)),
            )
            self._cache[key] = lat
        return lat

    def object(self, obj_id: int) -> _Latent:
        return self._get((KEY_OBJECT, int(obj_id)))

    def values(self, kind: int, ids: np.ndarray, dirs: np.ndarray | None, purpose: int) -> np.ndarray:
        """Latent N(0, 1) value of decision ``purpose`` for each key in ``ids`` seen from unit directions ``dirs``.

        ``L = sqrt(v) const + sqrt(1 - v) g(dir)`` with ``v = view_invariance`` and ``g`` a smooth unit-variance
        random field on the sphere of viewing directions. Where the direction is unknown (NaN, or no 3D
        information at all) the view-invariant part alone is used.
        """
        ids = np.asarray(ids).reshape(len(ids), -1)
        out = np.empty(len(ids), np.float64)
        v = self.view_invariance
        for i, key in enumerate(ids):
            lat = self._get((kind, *(int(k) for k in key)))
            d = None if dirs is None else dirs[i]
            if d is None or not np.all(np.isfinite(d)) or v >= 1.0:
                out[i] = lat.const[purpose]
                continue
            g = math.sqrt(2.0 / N_FEATURES) * float(np.cos(lat.omega[purpose] @ d + lat.phase[purpose]).sum())
            out[i] = math.sqrt(v) * lat.const[purpose] + math.sqrt(1.0 - v) * g
        return out


def correlated_uniform(u_view: np.ndarray, latent: np.ndarray | None, consistency: float) -> np.ndarray:
    """Gaussian copula: U(0, 1) draws that share ``consistency`` of their variance with the object's latent.

    ``u_view`` are the view's own independent uniforms; with ``consistency = 0`` (or no latent) they are
    returned unchanged, so the independent model's draws, and its random stream, are reproduced exactly.
    """
    if latent is None or consistency <= 0.0:
        return u_view
    eps = special.ndtri(np.clip(u_view, 1e-12, 1.0 - 1e-12))
    return special.ndtr(math.sqrt(consistency) * latent + math.sqrt(1.0 - consistency) * eps)


# ---------------------------------------------------------------------------------------------
# Scene and view context


@dataclass(frozen=True)
class SpuriousSites:
    """Fixed scene locations that the network mistakes for an object (in every view that sees them)."""

    points: np.ndarray  # (m, 3) world points on background surfaces
    radius: np.ndarray  # (m,) metres: the segment is the background surface within this distance
    classes: np.ndarray  # (m,) class index


@dataclass
class ViewContext:
    """What one view's simulation may use beyond its GT maps; every member may be missing (None)."""

    latents: ObjectLatents
    centres: Mapping[int, np.ndarray] = field(default_factory=dict)  # object id -> (3,) world centre
    boxes: Mapping[int, np.ndarray] = field(default_factory=dict)  # object id -> (6,) world AABB min, max
    c2w: np.ndarray | None = None
    intr: Intrinsics | None = None
    depth: np.ndarray | None = None  # (H, W) metres along the optical axis, 0 = no hit
    rgb: np.ndarray | None = None  # (H, W, 3) uint8
    sites: SpuriousSites | None = None
    _points: np.ndarray | None = None

    @property
    def camera(self) -> np.ndarray | None:
        return None if self.c2w is None else self.c2w[:3, 3]

    def directions(self, ids: np.ndarray) -> np.ndarray | None:
        """Unit vectors from each object's centre to the camera (NaN rows for objects without a centre)."""
        cam = self.camera
        if cam is None or not self.centres:
            return None
        out = np.full((len(ids), 3), np.nan)
        for i, k in enumerate(np.asarray(ids).tolist()):
            c = self.centres.get(int(k))
            if c is not None:
                d = cam - c
                n = float(np.linalg.norm(d))
                if n > 1e-9:
                    out[i] = d / n
        return out

    def points(self) -> np.ndarray | None:
        """(H, W, 3) world point of every pixel from the depth map (NaN where the ray hit nothing)."""
        if self._points is None and self.depth is not None and self.c2w is not None and self.intr is not None:
            o, d = world_rays(self.c2w, self.intr)
            z = self.depth.reshape(-1, 1).astype(np.float64)
            pts = o + d * z
            pts[z[:, 0] <= 0] = np.nan
            self._points = pts.reshape(self.depth.shape + (3,))
        return self._points


class SceneContext:
    """One scene's 3D knowledge, loaded once and shared by the simulation of all its views.

    ``gt3d.h5`` gives object centres and boxes (only its instance table is read); ``transforms.json`` the
    cameras; ``depth/`` per-view geometry. A scene without them (a hand-made test scene) still gets per-object
    view-invariant latents; the features that need geometry (view-dependent latents, 3D sites, 3D split planes)
    then fall back as documented on :class:`nerfseg.dataset_tools.prior_params.SimM2FParams`.
    """

    def __init__(self, scene_dir: str | Path, latents: ObjectLatents, params: Any, info: spec.SceneInfo | None = None) -> None:
        self.scene_dir = Path(scene_dir)
        self.latents = latents
        self.info = info or spec.load_scene_info(self.scene_dir)
        self.intr = Intrinsics(self.info.width, self.info.height, self.info.fl_x, self.info.fl_y, self.info.cx, self.info.cy)
        self.c2w = {f.name: np.asarray(f.transform_matrix, np.float64) for f in self.info.frames}
        self.centres, self.boxes = _object_boxes(self.scene_dir / spec.GT3D_H5)
        self.has_depth = (self.scene_dir / spec.DEPTH_DIR).is_dir()
        self.sites = self._sample_sites(params) if self.has_depth and params.spurious_sites > 0 else None

    def depth(self, frame: str) -> np.ndarray | None:
        if not self.has_depth:
            return None
        path = self.scene_dir / spec.DEPTH_DIR / f"{frame}.png"
        if not path.exists():
            return None
        d = read_depth_metres(path)
        if d.shape != (self.info.height, self.info.width):
            raise InputError(path, f"size {d.shape[1]}x{d.shape[0]} differs from transforms.json {self.info.width}x{self.info.height}")
        return d

    def view(self, frame: str, rgb: np.ndarray | None, depth: np.ndarray | None) -> ViewContext:
        return ViewContext(self.latents, self.centres, self.boxes, self.c2w.get(frame), self.intr, depth, rgb, self.sites)

    def _sample_sites(self, params: Any) -> SpuriousSites | None:
        """Poisson(``spurious_sites``) points on background surfaces, drawn from the depth of random views.

        Sampling pixels of random views favours surfaces the cameras look at, which is where a network's false
        positives on textures, pictures and clutter are seen. Seeded per scene, independent of frame order.
        """
        r = self.latents.rng(KEY_SITES)
        m = int(r.poisson(params.spurious_sites))
        frames = sorted(self.c2w)
        names = sorted(params.spurious_classes)
        weights = np.array([params.spurious_classes[k] for k in names], float)
        pts, rad, cls = [], [], []
        loaded: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
        for _ in range(m):
            fr = frames[int(r.integers(len(frames)))]
            u_pix, log_r, u_cls = r.random(), r.uniform(math.log(params.spurious_radius_min_m), math.log(params.spurious_radius_max_m)), r.random()
            if fr not in loaded:
                d = self.depth(fr)
                ipath = self.scene_dir / spec.INSTANCE_DIR / f"{fr}.png"
                loaded[fr] = None if d is None or not ipath.exists() else (d, read_png(ipath, expect="gray16"))
            got = loaded[fr]
            if got is None:
                continue
            d, inst = got
            cand = np.flatnonzero(((inst == 0) & (d > 0)).ravel())
            if cand.size == 0:
                continue
            pix = int(cand[min(int(u_pix * cand.size), cand.size - 1)])
            o, dirs = world_rays(self.c2w[fr], self.intr)
            pts.append(o[pix] + dirs[pix] * float(d.ravel()[pix]))
            rad.append(math.exp(log_r))
            cls.append(spec.CLASS_INDEX_BY_NAME[names[int(np.searchsorted(np.cumsum(weights / weights.sum()), u_cls, side="right").clip(0, len(names) - 1))]])
        if not pts:
            return None
        return SpuriousSites(np.array(pts), np.array(rad), np.array(cls, np.int64))


def read_object_table(path: Path) -> dict[int, tuple[np.ndarray, int]]:
    """Object id -> (world AABB as min xyz + max xyz, class index) from gt3d.h5's instance table (the voxel grid
    is not read). A missing file gives an empty table: callers decide whether they need it."""
    if not path.exists():
        return {}
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "instances" not in f:
                raise InputError(path, "missing dataset", key="instances")
            table = f["instances"][...]
    except OSError as exc:
        raise InputError(path, f"unreadable HDF5 ({exc})") from None
    return {int(r["id"]): (np.asarray(r["aabb"], np.float64), int(r["class_index"])) for r in table}


def _object_boxes(path: Path) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Object id -> AABB centre, and object id -> AABB, from :func:`read_object_table`."""
    table = read_object_table(path)
    boxes = {k: box for k, (box, _cls) in table.items()}
    return {k: 0.5 * (b[:3] + b[3:]) for k, b in boxes.items()}, boxes


# ---------------------------------------------------------------------------------------------
# Spurious segments at fixed 3D sites, split planes


def site_blobs(ctx: ViewContext, background: np.ndarray, u_view: np.ndarray, params: Any) -> list[tuple[np.ndarray, int]]:
    """(mask, class) of each spurious site this view sees and "detects".

    A site is seen when it projects inside the image in front of the camera, is not occluded (the view's depth
    at that pixel matches), and lies on background; it is detected with probability ``spurious_site_detect``
    through the site's latent (so a detected site tends to be detected again from nearby viewpoints). Its
    segment is the background surface within the site's radius: the same piece of wall in every view.
    ``u_view`` holds one independent uniform per site (drawn whether or not it is seen, so draws stay aligned).
    """
    sites, pts = ctx.sites, ctx.points()
    if sites is None or pts is None or ctx.c2w is None or ctx.intr is None or ctx.depth is None:
        return []
    h, w = background.shape
    uv, z = project_points(sites.points, ctx.c2w, ctx.intr)
    cam = ctx.camera
    dirs = sites.points - cam
    dirs = -dirs / np.maximum(np.linalg.norm(dirs, axis=1, keepdims=True), 1e-9)
    lat = ctx.latents.values(KEY_SITE, np.arange(len(sites.points)), dirs, SITE)
    u = correlated_uniform(u_view, lat, params.consistency)
    out = []
    for k in range(len(sites.points)):
        if not (z[k] > 0.05 and np.all(np.isfinite(uv[k]))):
            continue
        x, y = int(math.floor(uv[k, 0])), int(math.floor(uv[k, 1]))
        if not (0 <= x < w and 0 <= y < h):
            continue
        dz = float(ctx.depth[y, x])
        if dz <= 0 or abs(dz - z[k]) > 0.03 + 0.02 * z[k] or not background[y, x]:
            continue
        if u[k] >= params.spurious_site_detect:
            continue
        dist2 = np.sum((pts - sites.points[k]) ** 2, axis=-1)
        blob = background & (np.nan_to_num(dist2, nan=np.inf) < sites.radius[k] ** 2)
        out.append((blob, int(sites.classes[k])))
    return out


def split_part_3d(ctx: ViewContext | None, obj_id: int, sub: np.ndarray, sl: tuple[slice, slice]) -> np.ndarray | None:
    """Part of an object's visible pixels (``sub`` within the box ``sl``) on the low side of its fixed 3D plane.

    The plane has a per-object random normal and cuts ``part_q`` of the object's AABB extent along it, so the
    same physical part (a headboard, a table top) is split off in every view. None when the view lacks the
    geometry (no depth or no box): the caller then falls back to a per-object line in the image.
    """
    if ctx is None:
        return None
    pts = ctx.points()
    box = ctx.boxes.get(int(obj_id))
    if pts is None or box is None:
        return None
    lat = ctx.latents.object(obj_id)
    corners = np.array([[x, y, z] for x in (box[0], box[3]) for y in (box[1], box[4]) for z in (box[2], box[5])])
    proj_c = corners @ lat.normal
    cut = proj_c.min() + lat.part_q * (proj_c.max() - proj_c.min())
    p = pts[sl][sub]
    proj = p @ lat.normal
    return np.nan_to_num(proj, nan=np.inf) < cut


# ---------------------------------------------------------------------------------------------
# Edge snapping


def edge_map(rgb: np.ndarray | None, depth: np.ndarray | None, depth_weight: float) -> np.ndarray | None:
    """uint8 edge strength from the RGB gradient and the log-depth gradient, each scaled by its 99th percentile."""
    parts = []
    if rgb is not None:
        gray = np.asarray(rgb, np.float32).mean(axis=-1)
        parts.append(np.hypot(ndimage.sobel(gray, 0), ndimage.sobel(gray, 1)))
    if depth is not None and depth_weight > 0:
        ld = np.log(np.maximum(np.asarray(depth, np.float32), 0.05))
        parts.append(depth_weight * np.hypot(ndimage.sobel(ld, 0), ndimage.sobel(ld, 1)))
    if not parts:
        return None
    total = np.zeros_like(parts[0])
    for p in parts:
        scale = float(np.percentile(p, 99)) if p.size else 0.0
        total += p / scale if scale > 0 else p
    return np.clip(total * 100.0, 0, 255).astype(np.uint8)


def snap_to_edges(seg: np.ndarray, edges: np.ndarray, band_px: float) -> np.ndarray:
    """Move every segment boundary to the strongest image edge within ``band_px`` of it.

    The pixels within ``band_px`` of a boundary are unlabelled and re-grown from the segments' interiors by a
    watershed on the edge map: fronts from both sides advance through weak-edge pixels first and meet on the
    strongest edge in between. Each segment keeps a core (its pixels at least half its own maximal inner
    distance from its boundary) so a thin segment shrinks to that core at worst instead of vanishing.
    ``seg`` holds labels >= -2 (negative: void kinds); the result has the same labels.
    """
    if band_px <= 0:
        return seg
    h, w = seg.shape
    boundary = np.zeros((h, w), bool)
    dv = seg[1:, :] != seg[:-1, :]
    dh = seg[:, 1:] != seg[:, :-1]
    boundary[1:, :] |= dv
    boundary[:-1, :] |= dv
    boundary[:, 1:] |= dh
    boundary[:, :-1] |= dh
    if not boundary.any():
        return seg
    dist = ndimage.distance_transform_edt(~boundary)
    shifted = (seg + 3).astype(np.int32)  # -2 -> 1, -1 -> 2, 0 -> 3, ...
    nlab = int(shifted.max())
    seg_max = np.asarray(ndimage.maximum(dist, labels=shifted, index=np.arange(nlab + 1)), np.float64)
    seg_max = np.nan_to_num(seg_max, nan=0.0)
    thr = np.minimum(float(band_px), 0.5 * seg_max[shifted])
    band = dist < thr
    markers = np.where(band, 0, shifted).astype(np.int32)
    grown = ndimage.watershed_ift(edges, markers)
    out = grown.astype(np.int32) - 3
    return np.where(band, out, seg).astype(np.int32)
