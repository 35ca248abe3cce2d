# Over 600 lines on purpose: one class, SceneRaycaster, whose rays, shading and lights share its Embree scene and arrays.
"""The default renderer: one Embree scene per room, every pixel one ray through its centre (no anti-aliasing).

Why a ray caster and not a path tracer: the benchmark's ground truth is the label maps and the depth, and
those must be exact (a pixel's label is the instance its centre ray hits first, nothing is blended at
edges). Colour only has to be plausible and, above all, the same from every view, because the methods fit
a radiance field to it. So the shading is deterministic and view-independent apart from visibility:

* albedo = texture (bilinear, wrapped uvs, OBJ convention: v grows upwards) x part colour, linearised
  with gamma 2.2;
* direct light from a fixed set of point samples on the emissive parts (one shadow-ray batch per sample),
  each with a cosine lobe around the emitter's open side, Lambert at the surface and inverse-square falloff;
  a room with no emissive part gets four virtual lights under the ceiling;
* a soft ambient term times an ambient-occlusion factor from a fixed set of cosine-weighted directions
  (the same pattern for every view, so it is multi-view consistent: no per-pixel noise);
* emissive surfaces show their colour times ``emissive x emissive_gain`` (they saturate to white);
* a scene-wide exposure (irradiance normalised on a plane 0.8 m above the floor, never per view),
  Reinhard tone mapping with a white point, then gamma 2.2 to 8 bits.

All of it is vectorised over rays; the only Python loops run over light samples, ambient directions and
textured parts, never over pixels. By default the per-pixel arithmetic runs as compiled numba loops
(``shade_kernels.py``) with the same Embree batches and byte-identical images; the numpy code here is their
reference (``NERFSEG_SHADE_KERNEL=numpy``).
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from embreex import mesh_construction, rtcore_scene

from nerfseg.dataset_tools import shade_kernels
from nerfseg.dataset_tools.scene import Scene
from nerfseg.cameras import Intrinsics, camera_directions
from nerfseg.errors import InputError

GAMMA = 2.2
_MISS_T = 1e37  # embree leaves tfar at its initial value when a ray hits nothing
_GOLDEN_ANGLE = np.pi * (3.0 - np.sqrt(5.0))


@dataclass(frozen=True)
class Lighting:
    """Shading settings of the ray-cast renderer (labels and depth do not depend on them)."""

    light_samples: int = 8  # point samples on the emissive surfaces (one shadow-ray batch each)
    ambient: float = 0.35  # ambient irradiance relative to the normalised direct light
    ao_samples: int = 4  # fixed ambient-occlusion directions (0 = no AO)
    ao_distance: float = 0.5  # metres: occluders farther than this do not darken
    shadows: bool = True
    # light culling: at a pixel, a light whose unshadowed irradiance is below this fraction of the pixel's
    # total (all lights unshadowed + ambient) gets no shadow ray and counts as visible. 0 = a shadow ray
    # toward every light that can reach the point (the reference images); the default's effect on the
    # images is bounded in tests/dataset_tools/test_raycast.py (PSNR against the reference)
    shadow_cull: float = 0.0
    # adaptive shadows: per emitter, the samples farthest apart (this many) are tested first, and where
    # they all agree the samples between them take their answer (0 = every sample tested everywhere;
    # the reference images). The default's effect is bounded by a PSNR test against the reference.
    shadow_probes: int = 4
    emissive_gain: float = 4.0  # an emissive surface's radiance = colour * emissive * gain
    white_point: float = 2.0  # Reinhard: this radiance maps to white
    exposure: float = 1.0  # multiplies the scene-normalised radiance
    crease_angle_deg: float = 35.0  # smooth vertex normals only where faces meet flatter than this
    min_light_distance: float = 0.15  # metres: clamps the inverse-square falloff near a light
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)  # colour of rays that hit nothing


@dataclass
class RenderResult:
    """One rendered view. ``rgb`` is None from :meth:`SceneRaycaster.render_depth_labels_only`."""

    rgb: np.ndarray | None  # (H,W,3) uint8
    depth: np.ndarray  # (H,W) float32 metres along the optical axis, 0 = no hit
    instance: np.ndarray  # (H,W) uint16, 0 = background or no hit
    semantic: np.ndarray  # (H,W) uint8 class index, 0 = background or no hit
    hit: np.ndarray  # (H,W) bool, False where the ray left the scene


@dataclass
class Hits:
    """First hits of a batch of rays (index -1 and t = inf where a ray hit nothing)."""

    t: np.ndarray  # (N,) float64 ray parameter (distance in units of |dir|)
    tri: np.ndarray  # (N,) int64 triangle index into the raycaster's concatenated triangles
    u: np.ndarray  # (N,) float32 barycentric weight of the triangle's 2nd vertex
    v: np.ndarray  # (N,) float32 barycentric weight of the 3rd vertex

    @property
    def hit(self) -> np.ndarray:
        return self.tri >= 0


@dataclass
class LightSamples:
    """Point lights that stand in for the emissive surfaces."""

    position: np.ndarray  # (K,3)
    normal: np.ndarray  # (K,3) unit emission axis, zeros for an isotropic light
    intensity: np.ndarray  # (K,) radiant intensity along the axis (arbitrary units, normalised by the exposure)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.power(np.clip(x, 0.0, 1.0), GAMMA)


def fibonacci_sphere(n: int) -> np.ndarray:
    """``n`` near-uniform unit directions (deterministic)."""
    i = np.arange(n, dtype=np.float64) + 0.5
    z = 1.0 - 2.0 * i / n
    r = np.sqrt(np.maximum(0.0, 1.0 - z * z))
    phi = i * _GOLDEN_ANGLE
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def probe_directions(n_extra: int = 64) -> np.ndarray:
    """The 26 axis/edge/corner directions of a cube plus ``n_extra`` Fibonacci directions, unit length.

    Used to estimate the distance to the nearest surface: exact for a plane the point faces along an axis
    (walls, floor, box faces of axis-aligned furniture), a slight over-estimate near edges and corners.
    """
    g = np.stack(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1], indexing="ij"), axis=-1).reshape(-1, 3).astype(np.float64)
    g = g[np.any(g != 0, axis=1)]
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return np.concatenate([g, fibonacci_sphere(n_extra)]) if n_extra > 0 else g


@lru_cache(maxsize=8)
def _camera_dirs(intr: Intrinsics) -> np.ndarray:
    """Cached (H*W,3) float32 camera-space ray directions (nerfseg.cameras.camera_directions, camera z = -1)."""
    return np.ascontiguousarray(camera_directions(intr).reshape(-1, 3), dtype=np.float32)


@lru_cache(maxsize=8)
def _camera_axes(intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Cached float32 camera-space x per column (1,W,1) and y per row (H,1,1) of the pixel rays (z = -1):
    a pixel's direction is separable, so a view's world directions take two broadcast passes."""
    dirs = _camera_dirs(intr).reshape(intr.height, intr.width, 3)
    return np.ascontiguousarray(dirs[:1, :, 0:1]), np.ascontiguousarray(dirs[:, :1, 1:2])


class _Buffers(threading.local):
    """Per-thread reused input buffers (a camera's broadcast origins): a fresh multi-MiB array per view is
    a fresh mmap, and its page faults cost as much as filling it. Never used for the far limits, which
    embreex overwrites with the hit distances and returns."""

    def __init__(self) -> None:
        self.arrays: dict[tuple[str, int], np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        key = (name, shape[0])
        arr = self.arrays.get(key)
        if arr is None or arr.shape != shape:
            if len(self.arrays) > 8:
                self.arrays.clear()
            arr = self.arrays[key] = np.empty(shape, dtype=np.float32)
        return arr


_BUFFERS = _Buffers()


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, n, out=np.zeros_like(v), where=n > 0)


def _tangent_frame(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit tangents per unit normal (N,3), chosen deterministically from the normal alone."""
    helper = np.zeros_like(n)
    use_x = np.abs(n[:, 0]) < 0.9
    helper[use_x, 0] = 1.0
    helper[~use_x, 1] = 1.0
    t1 = _unit(np.cross(helper, n))
    t2 = np.cross(n, t1)
    return t1, t2


class SceneRaycaster:
    """All parts of a :class:`Scene` in one Embree BVH, with per-triangle labels for exact label maps.

    ``num_threads`` > 1 splits large ray batches over threads (embreex releases the GIL); keep it at 1
    when scenes already run in a process pool, so the workers do not oversubscribe the cores.
    ``shade_kernel`` picks the RGB shading arithmetic: ``"auto"`` (compiled numba loops unless
    ``NERFSEG_SHADE_KERNEL=numpy``), ``"numba"`` or ``"numpy"`` (the reference path; same images).
    """

    def __init__(self, scene: Scene, lighting: Lighting | None = None, num_threads: int = 1, shade_kernel: str = "auto"):
        self.scene = scene
        self.lighting = lighting or Lighting()
        self.num_threads = max(1, int(num_threads))
        self.compiled_shading = shade_kernels.use_compiled(shade_kernel)
        self._kernels: shade_kernels.ShadeKernels | None = None  # built on the first shaded view
        self.rays_cast = 0  # running count of every ray sent to embree (primary and secondary), for benchmarks
        self._pool: ThreadPoolExecutor | None = None
        self._count_lock = threading.Lock()
        if not scene.parts:
            raise InputError(scene.scene_id, "scene has no mesh parts to render")
        verts, faces, uvs = [], [], []
        tri_part, part_has_uv = [], []
        offset = 0
        for p_idx, part in enumerate(scene.parts):
            v = np.asarray(part.vertices, dtype=np.float64)
            f = np.asarray(part.faces)
            if v.ndim != 2 or v.shape[1] != 3 or not np.all(np.isfinite(v)):
                raise InputError(scene.scene_id, f"part {part.name!r}: vertices must be a finite (V,3) array, got shape {v.shape}")
            if f.ndim != 2 or f.shape[1] != 3 or (f.size and (f.min() < 0 or f.max() >= len(v))):
                raise InputError(scene.scene_id, f"part {part.name!r}: faces must be (F,3) indices into its {len(v)} vertices")
            if part.uvs is not None and np.shape(part.uvs) != (len(v), 2):
                raise InputError(scene.scene_id, f"part {part.name!r}: uvs must be (V,2) per vertex, got {np.shape(part.uvs)}")
            tex_shape = np.shape(part.texture) if part.texture is not None else None
            if tex_shape is not None and (len(tex_shape) not in (2, 3) or min(tex_shape[:2]) < 1 or (len(tex_shape) == 3 and tex_shape[2] not in (1, 3, 4))):
                raise InputError(scene.scene_id, f"part {part.name!r}: texture must be an (H,W), (H,W,1), (H,W,3) or (H,W,4) image, got shape {tex_shape}")
            verts.append(v)
            faces.append(f.astype(np.int64) + offset)
            uvs.append(np.zeros((len(v), 2)) if part.uvs is None else np.asarray(part.uvs, dtype=np.float64))
            tri_part.append(np.full(len(f), p_idx, dtype=np.int32))
            part_has_uv.append(part.uvs is not None and part.texture is not None)
            offset += len(v)
        self.vertices = np.concatenate(verts)
        self.faces = np.concatenate(faces)
        self.uvs = np.concatenate(uvs).astype(np.float32)
        self.tri_part = np.concatenate(tri_part)
        part_instance = np.array([p.instance_id for p in scene.parts], dtype=np.int64)
        part_class = np.array([p.class_index for p in scene.parts], dtype=np.int64)
        if part_instance.min() < 0 or part_instance.max() > np.iinfo(np.uint16).max:
            raise InputError(scene.scene_id, "instance ids must fit in uint16")
        if part_class.min() < 0 or part_class.max() > 255:
            raise InputError(scene.scene_id, "class indices must fit in uint8")
        self.tri_instance = part_instance.astype(np.uint16)[self.tri_part]
        self.tri_class = part_class.astype(np.uint8)[self.tri_part]
        self.part_emissive = np.array([max(0.0, float(p.emissive)) for p in scene.parts])
        self.part_textured = np.array(part_has_uv, dtype=bool)
        self.part_color_lin = srgb_to_linear(np.array([p.color for p in scene.parts], dtype=np.float64).reshape(-1, 3))
        tri = self.vertices[self.faces]  # (T,3,3)
        cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        self.tri_area = 0.5 * np.linalg.norm(cross, axis=1)
        self.face_normals = _unit(cross)
        self.corner_normals = self._corner_normals(cross)

        # robust = watertight traversal: a ray through a shared edge never slips between two triangles
        self._embree = rtcore_scene.EmbreeScene(robust=True)
        mesh_construction.TriangleMesh(self._embree, self.vertices.astype(np.float32), self.faces.astype(np.int32))
        # embreex builds the BVH on the first query; do it here, once, so that the threads that share this
        # scene never race to commit it
        self._embree.run(np.zeros((1, 3), np.float32), np.ones((1, 3), np.float32), query="INTERSECT")
        # label tables with one extra entry at the end: embree's primID -1 (a miss) indexes it directly
        self._instance_or_void = np.append(self.tri_instance, np.uint16(0))
        self._class_or_void = np.append(self.tri_class, np.uint8(0))
        self.lights = self._light_samples()
        self._light_groups = self._probe_groups(self.lighting.shadow_probes)
        self._light_scale = self._normalise_lights()
        self._ao_dirs = self._ao_pattern(self.lighting.ao_samples)

    # ------------------------------------------------------------------ geometry queries

    def _corner_normals(self, cross: np.ndarray) -> np.ndarray:
        """(T,3,3) shading normal at each triangle corner: the smooth vertex normal where the surface is
        smooth there, the flat face normal across a crease (so boxes stay boxes and cylinders look round).
        """
        vn = np.zeros_like(self.vertices)
        for k in range(3):  # area-weighted sum of incident face normals, per coordinate via bincount
            for c in range(3):
                vn[:, c] += np.bincount(self.faces[:, k], weights=cross[:, c], minlength=len(self.vertices))
        vn = _unit(vn)
        corners = vn[self.faces]  # (T,3,3)
        cos_crease = np.cos(np.deg2rad(self.lighting.crease_angle_deg))
        smooth = np.einsum("tkc,tc->tk", corners, self.face_normals) >= cos_crease
        return np.where(smooth[..., None], corners, self.face_normals[:, None, :])

    def _thread_pool(self) -> ThreadPoolExecutor:
        """The pool of ``num_threads`` threads that large ray batches (and compiled shading) are split over."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.num_threads)
        return self._pool

    def _run(self, origins: np.ndarray, dirs: np.ndarray, tfar: np.ndarray | None, query: str, output: bool, split: bool = True):
        """One embree call, split over threads for large batches unless ``split`` is False (a caller already
        running on this raycaster's pool). Inputs are copied to float32."""
        origins = np.asarray(origins)
        if origins.ndim == 2 and origins.strides[0] == 0 and len(origins):  # one origin for all (a camera)
            o = _BUFFERS.get("origins", origins.shape)
            o[:] = origins[0]
        else:
            o = np.ascontiguousarray(origins, dtype=np.float32)
        d = np.ascontiguousarray(dirs, dtype=np.float32)
        n = len(o)
        with self._count_lock:  # the compiled shading casts from several threads at once
            self.rays_cast += n
        # a fresh array: embreex writes the hit distances into it and returns it as the result's "tfar"
        far = np.full(n, _MISS_T, dtype=np.float32) if tfar is None else np.ascontiguousarray(np.broadcast_to(tfar, (n,)), dtype=np.float32).copy()
        if n == 0:
            if output:
                return {"tfar": far, "primID": np.zeros(0, np.int32), "u": np.zeros(0, np.float32), "v": np.zeros(0, np.float32)}
            return np.zeros(0, np.int32)
        chunks = self.num_threads if split and n >= 20000 else 1
        if chunks == 1:
            return self._embree.run(o, d, dists=far, query=query, output=1 if output else None)
        bounds = np.linspace(0, n, chunks + 1).astype(int)
        parts = list(
            self._thread_pool().map(
                lambda ab: self._embree.run(o[ab[0] : ab[1]], d[ab[0] : ab[1]], dists=far[ab[0] : ab[1]].copy(), query=query, output=1 if output else None),
                itertools.pairwise(bounds),
            )
        )
        if output:
            return {k: np.concatenate([p[k] for p in parts]) for k in ("tfar", "primID", "u", "v")}
        return np.concatenate(parts)

    def intersect(self, origins: np.ndarray, dirs: np.ndarray, tfar: float | np.ndarray | None = None) -> Hits:
        """First hit of each ray ``origins + t * dirs`` with 0 <= t <= tfar (dirs need not be unit)."""
        out = self._run(origins, dirs, tfar, "INTERSECT", True)
        tri = out["primID"].astype(np.int64)
        t = np.where(tri >= 0, out["tfar"].astype(np.float64), np.inf)
        return Hits(t=t, tri=tri, u=out["u"], v=out["v"])

    def first_hit(
        self, origins: np.ndarray, dirs: np.ndarray, tnear: float = 0.0, tfar: float | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(t (N,) float64, inf on a miss; triangle index (N,) int64, -1 on a miss) of rays in [tnear, tfar].

        Use :attr:`tri_instance` / :attr:`tri_class` / :attr:`tri_part` to label the triangle.
        """
        origins = np.asarray(origins, dtype=np.float64)
        dirs = np.asarray(dirs, dtype=np.float64)
        if tnear:
            origins = origins + tnear * dirs
            if tfar is not None:
                tfar = np.asarray(tfar, dtype=np.float64) - tnear
        hits = self.intersect(origins, dirs, tfar)
        return hits.t + tnear, hits.tri

    def occluded(self, origins: np.ndarray, dirs: np.ndarray, tfar: float | np.ndarray) -> np.ndarray:
        """(N,) bool: whether anything lies on ``origins + t * dirs`` for 0 <= t <= tfar."""
        return self._run(origins, dirs, tfar, "OCCLUDED", False) != -1

    def nearest_surface_distance(self, points: np.ndarray, max_distance: float, directions: np.ndarray | None = None) -> np.ndarray:
        """(N,) distance from each point to the nearest surface along a fixed set of probe directions,
        capped at ``max_distance`` (see :func:`probe_directions` for how exact it is)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        dirs = probe_directions() if directions is None else np.asarray(directions, dtype=np.float64)
        if len(points) == 0:
            return np.zeros(0)
        o = np.repeat(points, len(dirs), axis=0)
        d = np.tile(dirs, (len(points), 1))
        t = self.intersect(o, d, tfar=max_distance).t.reshape(len(points), len(dirs))
        return np.minimum(t.min(axis=1), max_distance)

    def hit_points(self, hits: Hits) -> np.ndarray:
        """World positions of the hits (rows of missed rays are NaN), from barycentrics for accuracy."""
        pts = np.full((len(hits.t), 3), np.nan)
        m = hits.hit
        tri = self.vertices[self.faces[hits.tri[m]]]
        u, v = hits.u[m].astype(np.float64)[:, None], hits.v[m].astype(np.float64)[:, None]
        pts[m] = (1.0 - u - v) * tri[:, 0] + u * tri[:, 1] + v * tri[:, 2]
        return pts

    # ------------------------------------------------------------------ rendering

    def _camera_rays(self, c2w: np.ndarray, intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
        c2w = np.asarray(c2w, dtype=np.float64)
        if c2w.shape != (4, 4) or not np.all(np.isfinite(c2w)):
            raise InputError(self.scene.scene_id, f"camera-to-world must be a finite 4x4 matrix, got shape {c2w.shape}", key="c2w")
        # float32 like embree. The camera direction of pixel (row, col) is (x[col], y[row], -1), so its world
        # direction is x R0 + y R1 - R2 (R's columns): two broadcast passes over the view, no matmul
        # (~25x faster than the einsum it replaces; BLAS threads stall on a busy machine)
        rot = c2w[:3, :3].astype(np.float32)
        x, y = _camera_axes(intr)
        dirs = np.add(x * rot[:, 0], y * rot[:, 1] - rot[:, 2]).reshape(-1, 3)  # (1,W,3) + (H,1,3): one pass
        origins = np.broadcast_to(c2w[:3, 3].astype(np.float32), dirs.shape)
        return origins, dirs

    def render_depth_labels_only(self, c2w: np.ndarray, intr: Intrinsics) -> RenderResult:
        """Depth, instance, semantic and hit maps, no shading (the fast path for label maps).

        One embree call for the whole view (split over ``num_threads`` threads sharing this scene), then
        array lookups on embree's hit buffers: depth is embree's float32 ``tfar`` (t along a camera-z = -1
        direction is the depth), labels index per-triangle tables whose extra last entry serves primID -1.
        """
        origins, dirs = self._camera_rays(c2w, intr)
        out = self._run(origins, dirs, None, "INTERSECT", True)
        prim = out["primID"]
        shape = (intr.height, intr.width)
        hit = prim >= 0
        depth = np.where(hit, out["tfar"], np.float32(0.0))
        return RenderResult(
            rgb=None,
            depth=depth.reshape(shape),
            instance=self._instance_or_void[prim].reshape(shape),
            semantic=self._class_or_void[prim].reshape(shape),
            hit=hit.reshape(shape),
        )

    def _labels(self, hits: Hits, intr: Intrinsics, rgb: np.ndarray | None) -> RenderResult:
        shape = (intr.height, intr.width)
        hit = hits.hit
        tri = np.where(hit, hits.tri, 0)
        depth = np.where(hit, hits.t, 0.0).astype(np.float32)
        instance = np.where(hit, self.tri_instance[tri], 0).astype(np.uint16)
        semantic = np.where(hit, self.tri_class[tri], 0).astype(np.uint8)
        return RenderResult(rgb=rgb, depth=depth.reshape(shape), instance=instance.reshape(shape), semantic=semantic.reshape(shape), hit=hit.reshape(shape))

    def _shade_kernels(self) -> shade_kernels.ShadeKernels:
        """The compiled shading's tables, built once per raycaster (first RGB view)."""
        if self._kernels is None:
            self._kernels = shade_kernels.ShadeKernels(
                vertices=self.vertices, faces=self.faces, uvs=self.uvs, face_normals=self.face_normals,
                corner_normals=self.corner_normals, tri_part=self.tri_part, part_emissive=self.part_emissive,
                part_color_lin=self.part_color_lin, part_textured=self.part_textured, textures=[p.texture for p in self.scene.parts],
                light_position=self.lights.position, light_normal=self.lights.normal, light_intensity=self.lights.intensity,
                light_scale=self._light_scale, light_groups=self._light_groups, ao_dirs=self._ao_dirs, lighting=self.lighting, gamma=GAMMA,
            )
        return self._kernels

    def _occlude(self, origins: np.ndarray, dirs: np.ndarray, tfar: float) -> np.ndarray:
        """Embree's raw occlusion answer (-1 = nothing in the way) for the compiled shading."""
        return self._run(origins, dirs, tfar, "OCCLUDED", False)

    def _occlude_unsplit(self, origins: np.ndarray, dirs: np.ndarray, tfar: float) -> np.ndarray:
        """:meth:`_occlude` as one batch, for callers already on this raycaster's pool."""
        return self._run(origins, dirs, tfar, "OCCLUDED", False, split=False)

    def render(self, c2w: np.ndarray, intr: Intrinsics) -> RenderResult:
        """Shaded RGB plus the exact depth and label maps of one camera (camera-to-world, OpenGL axes)."""
        origins, dirs = self._camera_rays(c2w, intr)
        hits = self.intersect(origins, dirs)
        if self.compiled_shading:
            background = self.tone_map(srgb_to_linear(np.asarray(self.lighting.background, dtype=np.float64))[None].astype(np.float32))[0]
            if self.num_threads > 1 and len(dirs) >= 20000:  # each thread shades a part of the view with its own rays
                rgb = self._shade_kernels().rgb(dirs, hits.tri, hits.u, hits.v, self._occlude_unsplit, background, self._thread_pool(), self.num_threads)
            else:
                rgb = self._shade_kernels().rgb(dirs, hits.tri, hits.u, hits.v, self._occlude, background)
            return self._labels(hits, intr, rgb=rgb.reshape(intr.height, intr.width, 3))
        radiance = np.empty((len(hits.t), 3), dtype=np.float32)
        radiance[:] = srgb_to_linear(np.asarray(self.lighting.background, dtype=np.float64))
        m = hits.hit
        if np.any(m):
            sub = Hits(hits.t[m], hits.tri[m], hits.u[m], hits.v[m])
            radiance[m] = self.shade(dirs[m], sub)
        rgb = self.tone_map(radiance).reshape(intr.height, intr.width, 3)
        return self._labels(hits, intr, rgb=rgb)

    def tone_map(self, radiance: np.ndarray) -> np.ndarray:
        """Linear radiance -> 8-bit sRGB-ish: exposure, Reinhard with a white point, gamma 2.2."""
        x = np.maximum(radiance, 0.0).astype(np.float32) * np.float32(self.lighting.exposure)
        w2 = np.float32(self.lighting.white_point**2)
        mapped = x * (1.0 + x / w2) / (1.0 + x)
        return np.round(np.power(np.clip(mapped, 0.0, 1.0), np.float32(1.0 / GAMMA)) * np.float32(255.0)).astype(np.uint8)

    def albedo(self, hits: Hits) -> np.ndarray:
        """(N,3) linear albedo at hit points: part colour x bilinear texture (uvs wrapped, v up)."""
        part = self.tri_part[hits.tri]
        albedo = self.part_color_lin[part].copy()
        textured = self.part_textured[part]
        if np.any(textured):
            idx = np.nonzero(textured)[0]
            corners = self.faces[hits.tri[idx]]
            u, v = hits.u[idx].astype(np.float64)[:, None], hits.v[idx].astype(np.float64)[:, None]
            uv = (1.0 - u - v) * self.uvs[corners[:, 0]] + u * self.uvs[corners[:, 1]] + v * self.uvs[corners[:, 2]]
            for p in np.unique(part[idx]):
                sel = part[idx] == p
                tex = self.scene.parts[p].texture
                albedo[idx[sel]] *= srgb_to_linear(bilinear_lookup(tex, uv[sel]) / 255.0)
        return albedo

    def shade(self, dirs: np.ndarray, hits: Hits) -> np.ndarray:
        """(N,3) linear radiance seen along ``dirs`` at their hits (every ray must hit).

        The per-pixel arithmetic runs on float32 coordinate columns (x, y, z as separate contiguous
        arrays): on a busy CPU that is several times faster than (N,3) float64 rows.
        """
        if self.compiled_shading:
            return self._shade_kernels().radiance(dirs, hits.tri, hits.u, hits.v, self._occlude)
        L = self.lighting
        points, ng, ns, start = self._shading_frame(dirs, hits)
        # emissive surfaces show their own colour (below): no shadow or AO ray can change them
        part = self.tri_part[hits.tri]
        emissive = self.part_emissive[part]
        glow = emissive > 0
        contribs, to_light = self._unshadowed(points, ng, ns, glow)
        if L.shadows and contribs:
            self._shadow(contribs, to_light, start)
        irradiance = np.zeros(len(points), dtype=np.float32)
        for contrib in contribs:
            irradiance += contrib
        irradiance *= np.float32(self._light_scale)
        ambient = self._ambient(ng, ns, start, glow)
        radiance = self.albedo(hits).astype(np.float32) * (irradiance + ambient)[:, None]
        if np.any(glow):
            radiance[glow] = self.part_color_lin[part[glow]] * (emissive[glow] * L.emissive_gain)[:, None]
        return radiance

    def _shading_frame(self, dirs: np.ndarray, hits: Hits) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(hit points (N,3), geometric normals (3,N), shading normals (3,N), secondary-ray starts (N,3) float32), normals towards the viewer."""
        points = self.hit_points(hits)
        tri = hits.tri
        ng = self.face_normals[tri].T.astype(np.float32)  # (3,N)
        d = np.asarray(dirs, dtype=np.float32)
        facing = np.where(ng[0] * d[:, 0] + ng[1] * d[:, 1] + ng[2] * d[:, 2] > 0.0, np.float32(-1.0), np.float32(1.0))
        ng *= facing  # towards the viewer: surfaces are two-sided
        corners = self.corner_normals[tri].astype(np.float32)  # (N,3,3)
        u, v = hits.u.astype(np.float32), hits.v.astype(np.float32)
        w = 1.0 - u - v
        ns = (w[:, None] * corners[:, 0] + u[:, None] * corners[:, 1] + v[:, None] * corners[:, 2]).T * facing  # (3,N)
        ns_len = np.sqrt(ns[0] * ns[0] + ns[1] * ns[1] + ns[2] * ns[2])
        good = (ns_len > 1e-12) & (ns[0] * ng[0] + ns[1] * ng[1] + ns[2] * ng[2] > 0.0)
        ns = np.where(good, ns / np.where(good, ns_len, 1.0), ng)
        # secondary rays start just off the surface, on the viewer's side
        bias = 1e-4 * (1.0 + np.abs(points).max(axis=1))
        start = (points + ng.T.astype(np.float64) * bias[:, None]).astype(np.float32)
        return points, ng, ns, start

    def _unshadowed(self, points: np.ndarray, ng: np.ndarray, ns: np.ndarray, glow: np.ndarray) -> tuple[list[np.ndarray], list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        """Each light's unshadowed contribution per point and the vectors to it.

        Computed for every light first so that each light's share of the pixel is known before deciding
        where its shadow rays are worth casting.
        """
        lights = self.lights
        rmin2 = np.float32(self.lighting.min_light_distance**2)
        px, py, pz = (np.ascontiguousarray(c, dtype=np.float32) for c in points.T)
        to_light: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        contribs: list[np.ndarray] = []
        for k in range(len(lights.intensity)):
            lp, ln = lights.position[k].astype(np.float32), lights.normal[k].astype(np.float32)
            tx, ty, tz = lp[0] - px, lp[1] - py, lp[2] - pz
            r2 = tx * tx + ty * ty + tz * tz
            inv_r = 1.0 / np.sqrt(np.maximum(r2, np.float32(1e-20)))
            cos_p = (ns[0] * tx + ns[1] * ty + ns[2] * tz) * inv_r
            lobe = -(ln[0] * tx + ln[1] * ty + ln[2] * tz) * inv_r if np.any(ln) else np.ones_like(r2)
            # the geometric normal decides which side of the surface the light is on
            lit = (cos_p > 0.0) & (lobe > 0.0) & (ng[0] * tx + ng[1] * ty + ng[2] * tz > 0.0) & ~glow
            contribs.append(np.where(lit, np.float32(lights.intensity[k]) * lobe * cos_p / np.maximum(r2, rmin2), np.float32(0.0)))
            to_light.append((tx, ty, tz))
        return contribs, to_light

    def _shadow(self, contribs: list[np.ndarray], to_light: list[tuple[np.ndarray, np.ndarray, np.ndarray]], start: np.ndarray) -> None:
        """Zero, in place, each light's contribution where a shadow ray finds it hidden."""
        L = self.lighting
        n = len(start)
        # light culling: a light whose unshadowed share of the pixel's light (direct + ambient) is below
        # ``shadow_cull`` gets no shadow ray there and counts as visible (error at most that share)
        floor = None
        if L.shadow_cull > 0:
            floor = (np.sum(contribs, axis=0) + np.float32(L.ambient / self._light_scale)) * np.float32(L.shadow_cull)
        need = [c > 0.0 if floor is None else c > floor for c in contribs]
        blocked = [np.zeros(n, dtype=bool) for _ in contribs]

        def cast(k: int, where: np.ndarray) -> None:
            if np.any(where):
                idx = np.nonzero(where)[0]
                tx, ty, tz = to_light[k]
                blocked[k][idx] = self.occluded(start[idx], np.stack([tx[idx], ty[idx], tz[idx]], axis=1), 1.0 - 1e-4)

        for probes, rest in self._light_groups if L.shadow_probes else [([], list(range(len(contribs))))]:
            # adaptive shadows: the group's outermost samples first; where all of them agree (the whole
            # emitter visible, or all of it hidden) the samples between take their answer, elsewhere
            # (penumbrae) every sample gets its own ray
            for k in probes:
                cast(k, need[k])
            agree = np.zeros(n, dtype=bool)
            answer = np.zeros(n, dtype=bool)
            if probes:
                agree[:] = True
                answer[:] = blocked[probes[0]]
                for k in probes:
                    agree &= need[k] & (blocked[k] == answer)
            for k in rest:
                cast(k, need[k] & ~agree)
                blocked[k] |= need[k] & agree & answer
        for contrib, b in zip(contribs, blocked):
            contrib[b] = 0.0

    def _ambient(self, ng: np.ndarray, ns: np.ndarray, start: np.ndarray, glow: np.ndarray) -> np.ndarray:
        """Ambient term per point, scaled by the open fraction of its ambient-occlusion rays."""
        L = self.lighting
        n = len(start)
        ambient = np.full(n, L.ambient, dtype=np.float32)
        if len(self._ao_dirs) and L.ambient > 0:
            t1, t2 = _tangent_frame(ns.T.astype(np.float64))
            t1, t2 = t1.T.astype(np.float32), t2.T.astype(np.float32)
            open_frac = np.zeros(n, dtype=np.float32)
            for a, b, c in self._ao_dirs.astype(np.float32):
                ray = a * t1 + b * t2 + c * ns  # (3,N)
                ok = (ray[0] * ng[0] + ray[1] * ng[1] + ray[2] * ng[2] > 0.0) & ~glow
                free = np.ones(n, dtype=bool)
                if np.any(ok):
                    idx = np.nonzero(ok)[0]
                    free[idx] = ~self.occluded(start[idx], ray[:, idx].T, L.ao_distance)
                open_frac += free
            ambient *= open_frac / np.float32(len(self._ao_dirs))
        return ambient

    # ------------------------------------------------------------------ lights

    def _light_samples(self) -> LightSamples:
        """Fixed point samples on the open side of the emissive triangles (systematic over emitted power).

        A triangle emits towards the side where a short probe ray escapes: the bottom of a thin ceiling panel
        emits downwards, its top (pressed against the ceiling) not at all; a single-sheet emitter open on
        both sides faces the room centre.
        """
        n_samples = max(1, int(self.lighting.light_samples))
        emissive_tri = np.nonzero(self.part_emissive[self.tri_part] > 0)[0]
        lo, hi = self.scene.room_bbox[0], self.scene.room_bbox[1]
        centre = (np.asarray(lo, dtype=np.float64) + np.asarray(hi, dtype=np.float64)) / 2.0
        if len(emissive_tri):
            tri_v = self.vertices[self.faces[emissive_tri]]
            centroid = tri_v.mean(axis=1)
            n = self.face_normals[emissive_tri]
            probe = 0.1
            bias = 1e-4 * (1.0 + np.abs(centroid).max(axis=1, keepdims=True))
            open_pos = ~self.occluded(centroid + n * bias, n, probe)
            open_neg = ~self.occluded(centroid - n * bias, -n, probe)
            to_centre = np.einsum("nc,nc->n", n, centre - centroid) >= 0.0
            sign = np.where(open_pos & open_neg, np.where(to_centre, 1.0, -1.0), np.where(open_pos, 1.0, -1.0))
            keep = (open_pos | open_neg) & (self.tri_area[emissive_tri] > 0)
            emissive_tri, tri_v, n = emissive_tri[keep], tri_v[keep], n[keep] * sign[keep, None]
        if len(emissive_tri) == 0:
            # no usable emitter: four isotropic lights 0.3 m under the ceiling, a quarter of the room apart
            quarter = (np.asarray(hi) - np.asarray(lo)) / 4.0
            pos = np.array([[centre[0] + sx * quarter[0], centre[1] + sy * quarter[1], hi[2] - 0.3] for sx in (-1, 1) for sy in (-1, 1)])
            return LightSamples(pos, np.zeros_like(pos), np.full(4, 1.0))
        power = self.tri_area[emissive_tri] * self.part_emissive[self.tri_part[emissive_tri]]
        cdf = np.cumsum(power) / power.sum()
        picks = np.minimum(np.searchsorted(cdf, (np.arange(n_samples) + 0.5) / n_samples), len(cdf) - 1)
        # fixed low-discrepancy (R2 sequence) positions: deterministic, independent of the build seed, and
        # spread evenly over the emitter so few samples still give soft, even shadows
        g = 1.32471795724474602596
        seq = np.arange(1, n_samples + 1, dtype=np.float64)[:, None] * np.array([1.0 / g, 1.0 / g**2])
        r1, r2 = np.mod(0.5 + seq, 1.0).T
        s = np.sqrt(r1)
        bary = np.stack([1.0 - s, s * (1.0 - r2), s * r2], axis=1)
        pos = np.einsum("kj,kjc->kc", bary, tri_v[picks])
        normals = n[picks]
        pos = pos + normals * 5e-3  # just off the emitter, so the shadow ray ends before reaching it
        intensity = np.full(n_samples, power.sum() / n_samples)
        return LightSamples(pos, normals, intensity)

    def _probe_groups(self, n_probes: int, radius: float = 1.0) -> list[tuple[list[int], list[int]]]:
        """Light samples grouped by emitter (samples within ``radius`` metres of each other, chained), each
        group as (probe samples: its ``n_probes`` most spread-out, the rest). Groups no larger than the
        probe count are all probes (nothing to infer)."""
        pos = np.asarray(self.lights.position, dtype=np.float64)
        k = len(pos)
        group = np.arange(k)
        for i in range(k):  # single linkage: merge the groups of samples closer than radius
            for j in range(i + 1, k):
                if np.linalg.norm(pos[i] - pos[j]) < radius and group[i] != group[j]:
                    group[group == group[j]] = group[i]
        out = []
        for g in np.unique(group):
            members = [int(m) for m in np.flatnonzero(group == g)]
            if n_probes <= 0 or len(members) <= n_probes:
                out.append((members, []))
                continue
            d = np.linalg.norm(pos[members][:, None] - pos[members][None], axis=-1)
            i, j = np.unravel_index(int(np.argmax(d)), d.shape)
            probes = [members[i], members[j]] if i != j else [members[i]]
            while len(probes) < n_probes:  # farthest-point additions
                far = np.min(np.linalg.norm(pos[members][:, None] - pos[probes][None], axis=-1), axis=1)
                probes.append(members[int(np.argmax(far))])
            out.append((probes[:n_probes], [m for m in members if m not in probes[:n_probes]]))
        return out

    def _normalise_lights(self) -> float:
        """Scale so the median unshadowed irradiance on a plane 0.8 m above the floor is 1 (per scene,
        never per view, so every view of a room has the same exposure)."""
        lo, hi = np.asarray(self.scene.room_bbox[0], dtype=np.float64), np.asarray(self.scene.room_bbox[1], dtype=np.float64)
        gx = np.linspace(lo[0], hi[0], 18)[1:-1]
        gy = np.linspace(lo[1], hi[1], 18)[1:-1]
        xx, yy = np.meshgrid(gx, gy)
        pts = np.stack([xx.ravel(), yy.ravel(), np.full(xx.size, lo[2] + 0.8)], axis=1)
        up = np.array([0.0, 0.0, 1.0])
        e = np.zeros(len(pts))
        rmin2 = self.lighting.min_light_distance**2
        for pos, normal, inten in zip(self.lights.position, self.lights.normal, self.lights.intensity):
            to_light = pos - pts
            r2 = np.einsum("nc,nc->n", to_light, to_light)
            r = np.sqrt(r2)
            lobe = np.maximum(0.0, -(to_light @ normal) / r) if np.any(normal) else 1.0
            e += inten * lobe * np.maximum(0.0, to_light @ up / r) / np.maximum(r2, rmin2)
        med = float(np.median(e))
        return 1.0 / med if med > 0 else 1.0

    @staticmethod
    def _ao_pattern(n: int) -> np.ndarray:
        """(n,3) cosine-weighted hemisphere directions in a local (t1, t2, normal) frame (fixed spiral)."""
        if n <= 0:
            return np.zeros((0, 3))
        j = np.arange(n, dtype=np.float64)
        r = np.sqrt((j + 0.5) / n)
        phi = j * _GOLDEN_ANGLE + 0.3
        return np.stack([r * np.cos(phi), r * np.sin(phi), np.sqrt(1.0 - r * r)], axis=1)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def bilinear_lookup(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """(N,3) float texel values at uvs (N,2), bilinear, wrapping (repeat) in both directions.

    uv follows the OBJ convention: (0,0) is the bottom-left of the image, v grows upwards, so image row
    = (1 - v) * H. Texel centres sit at half-integer positions.
    """
    tex = np.asarray(texture)
    if tex.ndim == 2:
        tex = tex[:, :, None]
    if tex.shape[2] == 1:  # grey: the same value in R, G, B
        tex = np.repeat(tex, 3, axis=2)
    tex = tex[:, :, :3].astype(np.float64)
    h, w = tex.shape[:2]
    x = np.mod(uv[:, 0], 1.0) * w - 0.5
    y = (1.0 - np.mod(uv[:, 1], 1.0)) * h - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0 = x0.astype(np.int64) % w
    y0 = y0.astype(np.int64) % h
    x1, y1 = (x0 + 1) % w, (y0 + 1) % h
    return (
        tex[y0, x0] * (1 - fx) * (1 - fy) + tex[y0, x1] * fx * (1 - fy) + tex[y1, x0] * (1 - fx) * fy + tex[y1, x1] * fx * fy
    )
