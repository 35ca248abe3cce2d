"""Compiled RGB shading for the ray-cast renderer: the per-pixel arithmetic of ``SceneRaycaster.shade`` and
``tone_map`` as numba loops (``_shade_numba.py``), with the Embree calls (one batch per light sample and per
ambient-occlusion direction) left exactly as the numpy path makes them.

Why: profiling an RGB view (640x480, dense demo room) put about half of its time in numpy arithmetic between
the ray batches (shading frames, tangent frames, light terms, ray compaction with fancy indexing, tone
mapping), each a dozen full-size temporaries. The loops here keep a pixel's values in registers, write the
secondary rays straight into reused float32 buffers, and tone-map into the output image. They repeat the
reference arithmetic operation for operation, so images are identical to the numpy path's (tested).

``NERFSEG_SHADE_KERNEL=numpy`` (or ``SceneRaycaster(..., shade_kernel="numpy")``) selects the numpy
reference path; without numba the reference path runs.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from types import ModuleType

import numpy as np

from nerfseg.errors import InputError

#: an Embree occlusion query: (origins (M,3) f32, dirs (M,3) f32, tfar) -> (M,) int32, -1 where unblocked
Occlude = Callable[[np.ndarray, np.ndarray, float], np.ndarray]

_shade_module: ModuleType | None = None
KERNELS = ("auto", "numba", "numpy")
#: the gamma the texture linearisation in ``_shade_numba._albedo`` is compiled with (raycast.GAMMA)
KERNEL_GAMMA = 2.2


def _shade_impl() -> ModuleType:
    """The jitted loops, imported on first use (numba's import is not paid by label-only rendering)."""
    global _shade_module
    if _shade_module is None:
        from nerfseg.dataset_tools import _shade_numba

        _shade_module = _shade_numba
    return _shade_module


def use_compiled(choice: str = "auto") -> bool:
    """Whether the compiled shading runs for a raycaster built with ``shade_kernel=choice``.

    ``"auto"`` follows ``NERFSEG_SHADE_KERNEL`` (``numpy`` = reference path) and numba's availability;
    ``"numba"`` insists on numba (an error if it is missing); ``"numpy"`` is the reference path.
    """
    if choice not in KERNELS:
        raise InputError(None, f"shade_kernel={choice!r} is not one of {', '.join(KERNELS)}", key="shade_kernel")
    have = importlib.util.find_spec("numba") is not None
    if choice == "numba":
        if not have:
            raise InputError(None, "shade_kernel='numba' needs the numba package (pip install numba)", key="shade_kernel")
        return True
    if choice == "numpy":
        return False
    env = os.environ.get("NERFSEG_SHADE_KERNEL", "").strip().lower()
    if env and env not in KERNELS:
        raise InputError(None, f"NERFSEG_SHADE_KERNEL={env!r} is not one of {', '.join(KERNELS)}", key="NERFSEG_SHADE_KERNEL")
    return have and env != "numpy"


class _ShadeScratch(threading.local):
    """Per-thread reused work arrays, grown to the largest view seen: fresh multi-MiB arrays per view are
    fresh mmaps whose page faults cost as much as filling them."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        size = int(np.prod(shape))
        flat = self.arrays.get(name)
        if flat is None or flat.size < size or flat.dtype != dtype:
            flat = self.arrays[name] = np.empty(max(size, 1), dtype=dtype)
        return flat[:size].reshape(shape)


def _texture_atlas(textures: Sequence[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All part textures as one flat (H*W*3 each) array with per-part offset, height and width.

    A texture shared by several parts is stored once. uint8 textures stay uint8 (the kernel converts each
    texel to float64, as the reference does); any other dtype makes the atlas float64.
    """
    n = len(textures)
    off, h, w = np.zeros(n, np.int64), np.ones(n, np.int64), np.ones(n, np.int64)
    blocks: list[np.ndarray] = []
    block_of: dict[int, int] = {}  # id(texture) -> its block
    for p, tex in enumerate(textures):
        if tex is None:
            continue
        if id(tex) not in block_of:
            t = np.asarray(tex)
            t = t[:, :, None] if t.ndim == 2 else t[:, :, :3]
            block_of[id(tex)] = len(blocks)
            blocks.append(np.repeat(t, 3, axis=2) if t.shape[2] == 1 else t)  # grey: the same value in R, G, B
        h[p], w[p] = blocks[block_of[id(tex)]].shape[:2]
    starts = np.cumsum([0] + [t.size for t in blocks])
    for p, tex in enumerate(textures):
        if tex is not None:
            off[p] = starts[block_of[id(tex)]]
    dtype = np.uint8 if all(t.dtype == np.uint8 for t in blocks) else np.float64
    atlas = np.concatenate([t.astype(dtype).ravel() for t in blocks]) if blocks else np.zeros(3, dtype)
    return atlas, off, h, w


class ShadeKernels:
    """The compiled shading of one raycaster: its tables in the layout the loops want, built once.

    Inputs are the raycaster's own arrays (see ``SceneRaycaster``); ``light_groups`` are its adaptive-shadow
    groups ((probe samples, the rest) per emitter), ``ao_dirs`` its local AO directions.
    """

    def __init__(self, *, vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, face_normals: np.ndarray,
                 corner_normals: np.ndarray, tri_part: np.ndarray, part_emissive: np.ndarray,
                 part_color_lin: np.ndarray, part_textured: np.ndarray, textures: Sequence[np.ndarray | None],
                 light_position: np.ndarray, light_normal: np.ndarray, light_intensity: np.ndarray,
                 light_scale: float, light_groups: list[tuple[list[int], list[int]]], ao_dirs: np.ndarray,
                 lighting, gamma: float) -> None:  # noqa: ANN001 - raycast.Lighting (not imported: raycast imports this module)
        if gamma != KERNEL_GAMMA:
            raise ValueError(f"the compiled texture linearisation uses gamma {KERNEL_GAMMA}, not {gamma}")
        self.inv_gamma = np.float32(1.0 / gamma)
        self.k = _shade_impl()
        f64 = np.float64
        self.vertices = np.ascontiguousarray(vertices, dtype=f64)
        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        self.uvs = np.ascontiguousarray(uvs, dtype=np.float32)
        # float32 once here, as the reference converts them per pixel: the same values, half the bytes to gather
        self.face_normals = np.ascontiguousarray(face_normals, dtype=np.float32)
        self.corner_normals = np.ascontiguousarray(corner_normals, dtype=np.float32)
        self.tri_part = np.ascontiguousarray(tri_part, dtype=np.int64)
        emissive = np.asarray(part_emissive, dtype=f64)
        self.glow_tri = np.ascontiguousarray(emissive[self.tri_part] > 0)
        self.glow_scale = emissive * float(lighting.emissive_gain)
        self.color_lin = np.ascontiguousarray(part_color_lin, dtype=f64)
        self.textured = np.ascontiguousarray(part_textured, dtype=bool)
        self.atlas, self.tex_off, self.tex_h, self.tex_w = _texture_atlas([t if ok else None for t, ok in zip(textures, part_textured)])
        self.lpos = np.ascontiguousarray(np.asarray(light_position).astype(np.float32)).reshape(-1, 3)
        lnorm = np.asarray(light_normal).astype(np.float32).reshape(-1, 3)
        self.lnorm = np.ascontiguousarray(lnorm)
        self.lobed = np.ascontiguousarray(np.any(lnorm != 0, axis=1))
        self.intensity = np.asarray(light_intensity).astype(np.float32)
        self.light_scale = np.float32(light_scale)
        self.groups = [(np.asarray(p, dtype=np.int64), [int(r) for r in rest]) for p, rest in light_groups] if lighting.shadow_probes else [(np.zeros(0, np.int64), list(range(len(self.intensity))))]
        self.ao_dirs = np.asarray(ao_dirs).astype(np.float32).reshape(-1, 3)
        self.lighting = lighting
        self.rmin2 = np.float32(lighting.min_light_distance**2)
        self.ambient = np.float32(lighting.ambient)
        self.ambient_share = np.float32(lighting.ambient / light_scale)
        self.n_ao = len(self.ao_dirs) if lighting.ambient > 0 else 0
        self._scratch = _ShadeScratch()

    def _prepare(self, dirs: np.ndarray, tri: np.ndarray, u: np.ndarray, v: np.ndarray, idx: np.ndarray, occlude: Occlude) -> tuple:
        """Shading frames, light terms, shadow and AO rays of the shaded rays ``idx``; returns (emissive flags,
        light = irradiance x scale + ambient) per shaded ray, scratch arrays of this thread."""
        k, s = self.k, self._scratch
        n = len(idx)
        dirs = np.ascontiguousarray(dirs, dtype=np.float32)
        u = np.ascontiguousarray(u, dtype=np.float32)
        v = np.ascontiguousarray(v, dtype=np.float32)
        p32, ng, ns = s.get("p32", (3, n), np.float32), s.get("ng", (3, n), np.float32), s.get("ns", (3, n), np.float32)
        t1, t2 = s.get("t1", (3, n), np.float32), s.get("t2", (3, n), np.float32)
        start, glow = s.get("start", (n, 3), np.float32), s.get("glow", (n,), np.bool_)
        k.shading_frame(idx, dirs, tri, u, v, self.vertices, self.faces, self.face_normals, self.corner_normals, self.glow_tri, p32, ng, ns, t1, t2, start, glow)
        n_lights = len(self.intensity)
        contrib = s.get("contrib", (n_lights, n), np.float32)
        k.light_contributions(p32, ng, ns, glow, self.lpos, self.lnorm, self.lobed, self.intensity, self.rmin2, contrib)
        blocked = s.get("blocked", (n_lights, n), np.bool_)
        blocked[:] = False
        ray_o, ray_d, ray_i = s.get("ray_o", (n, 3), np.float32), s.get("ray_d", (n, 3), np.float32), s.get("ray_i", (n,), np.int64)
        if self.lighting.shadows and n_lights:
            self._shadows(start, p32, contrib, blocked, ray_o, ray_d, ray_i, occlude)
        occluded = s.get("ao_count", (n,), np.uint8)
        occluded[:] = 0
        for a, b, c in self.ao_dirs if self.n_ao else ():
            m = k.gather_ao_rays(a, b, c, t1, t2, ns, ng, glow, start, ray_o, ray_d, ray_i)
            if m:
                k.count_occluded(occlude(ray_o[:m], ray_d[:m], self.lighting.ao_distance), ray_i[:m], occluded)
        light = s.get("light", (n,), np.float32)
        k.light_sum(contrib, blocked, occluded, self.n_ao, self.ambient, self.light_scale, light)
        return glow, light

    def _shadows(self, start, p32, contrib, blocked, ray_o, ray_d, ray_i, occlude: Occlude) -> None:  # noqa: ANN001
        """Sets ``blocked`` like ``SceneRaycaster._shadow``: probes first, their agreement settles the rest."""
        k, s = self.k, self._scratch
        n = contrib.shape[1]
        need = s.get("need", contrib.shape, np.bool_)
        k.shadow_need(contrib, self.ambient_share, np.float32(self.lighting.shadow_cull), need)
        agree, answer = s.get("agree", (n,), np.bool_), s.get("answer", (n,), np.bool_)
        tfar = 1.0 - 1e-4

        def cast(light: int) -> None:
            m = k.gather_shadow_rays(need[light], agree, answer, start, p32, self.lpos, light, blocked[light], ray_o, ray_d, ray_i)
            if m:
                k.scatter_blocked(occlude(ray_o[:m], ray_d[:m], tfar), ray_i[:m], blocked[light])

        for probes, rest in self.groups:
            agree[:] = False
            for light in probes:
                cast(int(light))
            if len(probes):
                k.probe_agreement(need, blocked, probes, agree, answer)
            for light in rest:
                cast(light)

    def radiance(self, dirs: np.ndarray, tri: np.ndarray, u: np.ndarray, v: np.ndarray, occlude: Occlude) -> np.ndarray:
        """(N,3) float32 linear radiance along ``dirs`` at their hits (every ray must hit), as ``shade``."""
        tri = np.ascontiguousarray(tri, dtype=np.int64)
        u = np.ascontiguousarray(u, dtype=np.float32)
        v = np.ascontiguousarray(v, dtype=np.float32)
        idx = np.arange(len(tri), dtype=np.int64)
        glow, light = self._prepare(dirs, tri, u, v, idx, occlude)
        out = np.empty((len(tri), 3), dtype=np.float32)
        self._shaded_radiance(idx, tri, u, v, glow, light, out)
        return out

    def _shaded_radiance(self, idx: np.ndarray, tri: np.ndarray, u: np.ndarray, v: np.ndarray, glow: np.ndarray, light: np.ndarray, out: np.ndarray) -> None:
        """out (N,3) float32: radiance of the shaded rays ``idx`` from their light (the loop with this raycaster's tables)."""
        self.k.shaded_radiance(idx, tri, u, v, glow, light, self.tri_part, self.glow_scale, self.faces, self.uvs, self.color_lin, self.textured,
                               self.atlas, self.tex_off, self.tex_h, self.tex_w, out)

    def rgb(self, dirs: np.ndarray, tri: np.ndarray, u: np.ndarray, v: np.ndarray, occlude: Occlude, background: np.ndarray,
            pool: Executor | None = None, parts: int = 1) -> np.ndarray:
        """(P,3) uint8 tone-mapped colour of every primary ray (tri -1 = miss, coloured ``background``).

        With a ``pool``, the shaded pixels are cut into ``parts`` contiguous runs shaded on its threads, each
        with its own scratch buffers and its own Embree batches (``occlude`` must then not split batches over
        that same pool); every pixel gets the same rays and the same colour either way.
        """
        tri = np.ascontiguousarray(tri, dtype=np.int64)
        u = np.ascontiguousarray(u, dtype=np.float32)
        v = np.ascontiguousarray(v, dtype=np.float32)
        dirs = np.ascontiguousarray(dirs, dtype=np.float32)
        idx = np.flatnonzero(tri >= 0)
        out = np.empty((len(tri), 3), dtype=np.uint8)
        out[:] = np.asarray(background, dtype=np.uint8)
        L = self.lighting
        tone = (np.float32(L.exposure), np.float32(L.white_point**2), self.inv_gamma)

        def run(sub: np.ndarray) -> None:
            glow, light = self._prepare(dirs, tri, u, v, sub, occlude)
            rad = self._scratch.get("radiance", (len(sub), 3), np.float32)
            self._shaded_radiance(sub, tri, u, v, glow, light, rad)
            self.k.tone_rgb(sub, rad, *tone, out)

        if pool is None or parts <= 1:
            run(idx)
        else:
            bounds = np.linspace(0, len(idx), parts + 1).astype(int)
            list(pool.map(run, [idx[a:b] for a, b in zip(bounds[:-1], bounds[1:])]))
        return out
