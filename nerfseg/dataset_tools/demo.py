"""Seeded procedural demo scenes written in the real 3D-FRONT / 3D-FUTURE on-disk format.

Why a generator and not a fixture: 3D-FRONT cannot be redistributed (licence), yet the benchmark
must be buildable and testable anywhere. The demo writes exactly the files a real download has
(../shared/FRONT3D_FORMAT.md), so ``nerfseg build-dataset --demo N`` runs the same loader
(:mod:`nerfseg.dataset_tools.front3d`) as a real build; nothing downstream knows the difference.

Layout written under ``out_dir``::

    3D-FRONT/<house-uid>.json                 y-up houses with 1-2 rooms each
    3D-FUTURE-model/model_info.json           one list of {model_id, super-category, category, ...}
    3D-FUTURE-model/<jid>/raw_model.obj       + model.mtl (map_Kd texture.png) + texture.png (256x256 atlas)
    3D-FRONT-texture/<jid>/texture.png        floor / wall textures (128x128, tile seamlessly)
    demo_manifest.json                        what was generated: per room the objects and their z-up
                                              AABBs computed by the generator (tests compare the loader
                                              against it), and the sha256 of every file
    .nerfseg-demo                             marks the folder as ours (stale files are then removed)

Rooms: Bedroom, LivingRoom, DiningRoom, Library, MasterBedroom (cycled in that order; the first two
rooms already contain all ten classes), 3x3.5 m to 6x7 m, 2.6-3.0 m high, with floor,
four inner walls, baseboards, ceiling and one or two rectangular ceiling light panels (mesh type
``LightBand``: the loader marks them emissive, which is how the renderer finds the lights).
Furniture is built from boxes, cylinders and ellipsoids with UVs into a per-model texture atlas,
placed against walls, in corners or in groups (bed + nightstands, table + chairs, desk + chair,
sofa + coffee table + armchairs) so that no two floor objects' footprints come closer than 5 cm.
Each model's (super-category, category) label is one of the real 3D-FUTURE pairs of its shape's family, drawn with
the real model counts (nerfseg/data/3d_future_category_pairs.tsv) from the model's own seed, so the loader meets
the real release's spellings. Everything is drawn from ``numpy.random.default_rng([seed, house])``: the same seed writes
byte-identical files, and a larger demo starts with the same houses as a smaller one (except the
smaller one's last house when it had to be cut to one room).
"""

from __future__ import annotations

import hashlib
import math
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import distance_transform_edt

from nerfseg.dataset_tools.boxes import rot_z, yaw_to_quat_xyzw, yup_to_zup, zup_to_yup
from nerfseg.dataset_tools.obj import format_obj
from nerfseg import spec
from nerfseg.errors import InputError
from nerfseg.io import dumps_json, encode_png, write_bytes_atomic

GENERATOR_VERSION = "1"
ROOM_TYPES = ("Bedroom", "LivingRoom", "DiningRoom", "Library", "MasterBedroom")
FRONT3D_DIR = "3D-FRONT"
FUTURE_DIR = "3D-FUTURE-model"
TEXTURE_DIR = "3D-FRONT-texture"
MANIFEST = "demo_manifest.json"
MARKER = ".nerfseg-demo"
ATLAS_SIZE = 256  # furniture texture.png: a 2x2 atlas of 128x128 materials
ARCH_TEXTURE_SIZE = 128  # floor / wall textures
FAKE_TEXTURE_URL = "https://demo.nerfseg.invalid/texture/{jid}/texture.png"  # never downloaded
WALL_GAP = 0.03  # furniture backs stand this far from the wall (the baseboard is 1.5 cm thick)
MARGIN = 0.05  # minimum gap between the footprints of two floor objects
MIN_FREE_RADIUS = 0.45  # a disc of this radius must stay free of floor objects (camera room)
MAX_COVER = 0.5  # floor objects may cover at most this fraction of the floor


@dataclass(frozen=True)
class DemoPaths:
    """Where :func:`write_demo_dataset` put the three 3D-FRONT / 3D-FUTURE folders."""

    front3d_dir: Path
    future_dir: Path
    texture_dir: Path
    manifest: Path | None = None


# =============================================================================================
# Procedural textures (vectorised numpy; periodic so they tile without seams)


def _noise(rng: np.random.Generator, n: int, cells: int) -> np.ndarray:
    """(n, n) smooth periodic value noise in [0, 1] with ``cells`` lattice cells per side."""
    g = rng.random((cells, cells))
    if cells == n:
        return g
    t = np.arange(n) * (cells / n)
    i0 = t.astype(np.int64)
    i1 = (i0 + 1) % cells
    f = t - i0
    f = f * f * (3.0 - 2.0 * f)
    rows = g[i0] * (1 - f)[:, None] + g[i1] * f[:, None]  # (n, cells): interpolate along y first
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i1] * f[None, :]


def _fbm(rng: np.random.Generator, n: int, cells: int = 4, octaves: int = 4) -> np.ndarray:
    out = np.zeros((n, n))
    amp, total = 1.0, 0.0
    for k in range(octaves):
        out += amp * _noise(rng, n, min(n, cells * 2**k))
        total += amp
        amp *= 0.5
    return out / total


def _rgb(base: np.ndarray, shade: np.ndarray) -> np.ndarray:
    """(n, n) shade factor times an RGB base colour in [0, 1] -> uint8 image."""
    img = np.clip(shade[..., None] * np.asarray(base, dtype=np.float64)[None, None, :], 0.0, 1.0)
    return (img * 255.0 + 0.5).astype(np.uint8)


def _tex_wood(rng: np.random.Generator, n: int, base: np.ndarray) -> np.ndarray:
    y, x = np.mgrid[0:n, 0:n] / n
    warp = _fbm(rng, n, 2, 3)
    rings = rng.uniform(6, 14)
    grain = 0.5 + 0.5 * np.sin(2 * np.pi * (y * rings + 3.0 * warp + 0.3 * x))
    fine = _noise(rng, n, min(n, 64))
    return _rgb(base, 0.72 + 0.22 * grain + 0.10 * fine)


def _tex_fabric(rng: np.random.Generator, n: int, base: np.ndarray) -> np.ndarray:
    y, x = np.mgrid[0:n, 0:n] / n
    k = rng.choice([16, 32])
    weave = 0.5 + 0.5 * np.sin(2 * np.pi * k * x) * np.sin(2 * np.pi * k * y)
    blotch = _fbm(rng, n, 4, 3)
    return _rgb(base, 0.78 + 0.10 * weave + 0.20 * blotch)


def _tex_metal(rng: np.random.Generator, n: int, base: np.ndarray) -> np.ndarray:
    brushed = np.repeat(rng.random((1, n)), n, axis=0)
    return _rgb(base, 0.85 + 0.10 * brushed + 0.08 * _noise(rng, n, 4))


def _tex_leaves(rng: np.random.Generator, n: int, base: np.ndarray) -> np.ndarray:
    blobs = _fbm(rng, n, 8, 3)
    veins = (_noise(rng, n, min(n, 32)) > 0.7).astype(np.float64)
    return _rgb(base, 0.55 + 0.6 * blobs - 0.15 * veins)


def _tex_books(rng: np.random.Generator, n: int, base: np.ndarray) -> np.ndarray:
    """Vertical stripes of random colours: book spines (the shelf's books sample it)."""
    widths = rng.integers(3, 10, size=n)
    edges = np.cumsum(widths)
    stripe = np.searchsorted(edges, np.arange(n), side="right")
    palette = rng.uniform(0.15, 0.9, size=(len(widths) + 1, 3))
    cols = palette[stripe]
    shade = 0.85 + 0.15 * _noise(rng, n, 8)
    img = np.clip(cols[None, :, :] * shade[..., None], 0, 1)
    return (img * 255 + 0.5).astype(np.uint8)


def _tex_keys(rng: np.random.Generator, n: int, base: np.ndarray) -> np.ndarray:
    """Piano keys: white keys with dark gaps and black keys in the 2-3 pattern."""
    x = np.arange(n)
    key_w = max(2, n // 26)
    white = np.where(x % key_w == 0, 0.35, 0.95)
    img = np.repeat(white[None, :], n, axis=0)
    octave = (x // key_w) % 7
    black = np.isin(octave, [0, 1, 3, 4, 5]) & ((x % key_w) >= key_w * 2 // 3)
    img[: n // 2, :] = np.where(black[None, :], 0.08, img[: n // 2, :])
    return _rgb(np.ones(3), img * (0.95 + 0.05 * _noise(rng, n, 4)))


def _tex_tiles(rng: np.random.Generator, n: int, base: np.ndarray) -> np.ndarray:
    k = int(rng.choice([2, 4]))
    cell = n // k
    y, x = np.mgrid[0:n, 0:n]
    grout = ((x % cell) < 2) | ((y % cell) < 2)
    tint = 0.9 + 0.12 * rng.random((k, k))[y // cell, x // cell]
    shade = tint * (0.9 + 0.12 * _fbm(rng, n, 8, 3))
    shade = np.where(grout, 0.55, shade)
    return _rgb(base, shade)


def _tex_parquet(rng: np.random.Generator, n: int, base: np.ndarray) -> np.ndarray:
    rows = int(rng.choice([4, 8]))
    h = n // rows
    y, x = np.mgrid[0:n, 0:n]
    row = y // h
    offset = (rng.integers(0, n, size=rows))[row]
    plank_len = n // 2
    plank = ((x + offset) // plank_len) % 2 + 2 * row
    tint = 0.8 + 0.25 * rng.random(rows * 2 + 2)[plank]
    grain = 0.5 + 0.5 * np.sin(2 * np.pi * (y / n * rows * 6 + 2.0 * _fbm(rng, n, 4, 2)))
    seam = ((y % h) == 0) | (((x + offset) % plank_len) == 0)
    return _rgb(base, np.where(seam, 0.5, tint * (0.85 + 0.15 * grain)))


def _tex_plaster(rng: np.random.Generator, n: int, base: np.ndarray) -> np.ndarray:
    return _rgb(base, 0.9 + 0.1 * _fbm(rng, n, 4, 4) + 0.04 * _noise(rng, n, min(n, 64)))


_TEXTURES: dict[str, Callable[[np.random.Generator, int, np.ndarray], np.ndarray]] = {
    "wood": _tex_wood,
    "fabric": _tex_fabric,
    "metal": _tex_metal,
    "leaves": _tex_leaves,
    "books": _tex_books,
    "keys": _tex_keys,
    "plaster": _tex_plaster,
}

WOODS = np.array([[0.55, 0.36, 0.20], [0.72, 0.53, 0.33], [0.40, 0.26, 0.16], [0.80, 0.68, 0.50], [0.30, 0.20, 0.14], [0.62, 0.45, 0.30]])
FABRICS = np.array([[0.55, 0.58, 0.62], [0.30, 0.36, 0.50], [0.62, 0.30, 0.28], [0.80, 0.76, 0.66], [0.35, 0.48, 0.38], [0.25, 0.25, 0.28], [0.85, 0.60, 0.30]])
PAINTS = np.array([[0.92, 0.92, 0.90], [0.20, 0.22, 0.25], [0.70, 0.78, 0.82], [0.85, 0.80, 0.70], [0.45, 0.55, 0.50]])
METALS = np.array([[0.75, 0.75, 0.78], [0.25, 0.25, 0.27], [0.80, 0.66, 0.40]])


def _pick(rng: np.random.Generator, table: np.ndarray) -> np.ndarray:
    return np.clip(table[rng.integers(len(table))] * rng.uniform(0.9, 1.1, size=3), 0, 1)


def _atlas(rng: np.random.Generator, slots: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """2x2 atlas (ATLAS_SIZE^2): slot k at column k % 2, row k // 2 (image rows, top first)."""
    q = ATLAS_SIZE // 2
    img = np.zeros((ATLAS_SIZE, ATLAS_SIZE, 3), dtype=np.uint8)
    for k in range(4):
        kind, base = slots[k] if k < len(slots) else slots[0]
        r, c = divmod(k, 2)
        img[r * q : (r + 1) * q, c * q : (c + 1) * q] = _TEXTURES[kind](rng, q, base)
    return img


# =============================================================================================
# Procedural meshes (model frame: y-up, metres, front = +z, base at y = 0)


class _Mesh:
    """Accumulates closed primitives with UVs into one atlas slot each."""

    def __init__(self, rng: np.random.Generator, ref_size: float):
        self.rng = rng
        self.ref = max(ref_size, 1e-3)
        self.verts: list[np.ndarray] = []
        self.faces: list[np.ndarray] = []
        self.uvs: list[np.ndarray] = []
        self.count = 0

    def _slot_uv(self, local: np.ndarray, slot: int) -> np.ndarray:
        """Map uvs in metres into the atlas slot: scaled by the model size, randomly offset, padded."""
        uv = local / self.ref
        span = uv.max(axis=0) - uv.min(axis=0)
        uv = uv - uv.min(axis=0) + self.rng.uniform(0, np.clip(1 - span, 0, None))
        uv = np.clip(uv, 0.0, 1.0)
        pad = 0.02
        col, row = slot % 2, slot // 2  # image row 0 is the top half, i.e. v in [0.5, 1]
        u = 0.5 * col + 0.5 * (pad + (1 - 2 * pad) * uv[:, 0])
        v = 0.5 * (1 - row) + 0.5 * (pad + (1 - 2 * pad) * uv[:, 1])
        return np.column_stack([u, v])

    def _add(self, v: np.ndarray, f: np.ndarray, uv: np.ndarray, centre: np.ndarray | None = None) -> None:
        if centre is not None:  # convex primitive: orient every triangle away from its centre
            tri = v[f]
            n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            flip = (n * (tri.mean(axis=1) - centre)).sum(axis=1) < 0
            f = np.where(flip[:, None], f[:, ::-1], f)
        self.verts.append(v)
        self.faces.append(f + self.count)
        self.uvs.append(uv)
        self.count += len(v)

    def box(self, lo: tuple[float, float, float], hi: tuple[float, float, float], slot: int, yaw: float = 0.0, pivot: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> None:
        """Axis-aligned box [lo, hi] (optionally turned by ``yaw`` about the y axis through ``pivot``)."""
        lo_a, hi_a = np.asarray(lo, float), np.asarray(hi, float)
        verts, faces, uvs = [], [], []
        for a in range(3):
            b, c = (a + 1) % 3, (a + 2) % 3
            for s in (-1, 1):
                quad = [(0, 0), (1, 0), (1, 1), (0, 1)] if s > 0 else [(0, 0), (0, 1), (1, 1), (1, 0)]
                pts = np.zeros((4, 3))
                pts[:, a] = hi_a[a] if s > 0 else lo_a[a]
                for k, (ib, ic) in enumerate(quad):
                    pts[k, b] = hi_a[b] if ib else lo_a[b]
                    pts[k, c] = hi_a[c] if ic else lo_a[c]
                local = np.column_stack([pts[:, b] - lo_a[b], pts[:, c] - lo_a[c]])
                base = 4 * len(verts)
                verts.append(pts)
                uvs.append(self._slot_uv(local, slot))
                faces.append(np.array([[base, base + 1, base + 2], [base, base + 2, base + 3]]))
        v = np.concatenate(verts)
        if yaw:
            p = np.asarray(pivot, float)
            c_, s_ = math.cos(yaw), math.sin(yaw)
            rel = v - p
            v = np.column_stack([rel[:, 0] * c_ + rel[:, 2] * s_, rel[:, 1], -rel[:, 0] * s_ + rel[:, 2] * c_]) + p
        self._add(v, np.concatenate(faces), np.concatenate(uvs), centre=v.mean(axis=0))

    def cylinder(self, x: float, z: float, y0: float, y1: float, r0: float, r1: float | None, slot: int, seg: int = 16) -> None:
        """Capped (truncated) cylinder along y, bottom radius r0 at y0, top radius r1 at y1."""
        r1 = r0 if r1 is None else r1
        phi = np.linspace(0, 2 * np.pi, seg + 1)
        ring0 = np.column_stack([x + r0 * np.cos(phi), np.full(seg + 1, y0), z + r0 * np.sin(phi)])
        ring1 = np.column_stack([x + r1 * np.cos(phi), np.full(seg + 1, y1), z + r1 * np.sin(phi)])
        rmax = max(r0, r1)
        side_v = np.concatenate([ring0, ring1])
        side_uv = np.column_stack([np.concatenate([phi, phi]) * rmax, np.concatenate([np.zeros(seg + 1), np.full(seg + 1, y1 - y0)])])
        i = np.arange(seg)
        side_f = np.concatenate([np.column_stack([i, i + seg + 2, i + 1]), np.column_stack([i, i + seg + 1, i + seg + 2])])
        centre = np.array([x, (y0 + y1) / 2.0, z])
        self._add(side_v, side_f, self._slot_uv(side_uv, slot), centre=centre)
        for ring, y in ((ring0, y0), (ring1, y1)):
            cap_v = np.vstack([ring[:seg], [[x, y, z]]])
            cap_uv = cap_v[:, [0, 2]] - np.array([x - rmax, z - rmax])
            cap_f = np.column_stack([np.full(seg, seg), i, (i + 1) % seg])
            self._add(cap_v, cap_f, self._slot_uv(cap_uv, slot), centre=centre)

    def ellipsoid(self, c: tuple[float, float, float], radii: tuple[float, float, float], slot: int, nlat: int = 6, nlon: int = 10) -> None:
        th = np.linspace(0, np.pi, nlat + 1)
        ph = np.linspace(0, 2 * np.pi, nlon + 1)
        T, P = np.meshgrid(th, ph, indexing="ij")
        v = np.column_stack([(np.sin(T) * np.cos(P)).ravel() * radii[0], np.cos(T).ravel() * radii[1], (np.sin(T) * np.sin(P)).ravel() * radii[2]]) + np.asarray(c)
        uv = np.column_stack([P.ravel() * max(radii), T.ravel() * max(radii)])
        idx = np.arange((nlat + 1) * (nlon + 1)).reshape(nlat + 1, nlon + 1)
        a, b, cc, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, 1:].ravel(), idx[1:, :-1].ravel()
        f = np.concatenate([np.column_stack([a, b, cc]), np.column_stack([a, cc, d])])
        tri = v[f]
        area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
        self._add(v, f[area > 1e-12], self._slot_uv(uv, slot), centre=np.asarray(c, float))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.concatenate(self.verts), np.concatenate(self.faces).astype(np.int64), np.concatenate(self.uvs)


@dataclass
class _Model:
    """One generated 3D-FUTURE model (before it gets a jid)."""

    category: str | None
    super_category: str
    title: str
    vertices: np.ndarray  # (V,3) model frame, y-up
    faces: np.ndarray
    uvs: np.ndarray
    slots: list[tuple[str, np.ndarray]]  # atlas recipe: (texture kind, base colour) per slot
    texture_seed: int
    mount: str = "floor"  # "floor" | "ceiling"
    jid: str = ""
    uid: str = ""

    def texture(self) -> np.ndarray:
        """The atlas, drawn only for models that are written (layout retries discard many models)."""
        return _atlas(np.random.default_rng(self.texture_seed), self.slots)

    @property
    def lo(self) -> np.ndarray:
        return self.vertices.min(axis=0)

    @property
    def hi(self) -> np.ndarray:
        return self.vertices.max(axis=0)


#: Shape family of each pair a builder asks for -> the real (super-category, category) pairs that shape may carry.
#: Every pair of nerfseg/data/3d_future_category_pairs.tsv is in exactly one family, so every real pair reaches the
#: loader; within a family a model's label is drawn with the real model counts as weights (docs/front3d.md).
_FAMILY_OF_SHAPE: dict[tuple[str, str | None], str] = {
    ("Bed", "King-size Bed"): "bed",
    ("Bed", "Double Bed"): "bed",
    ("Bed", "Single bed"): "bed",
    ("Cabinet/Shelf/Desk", "Nightstand"): "nightstand",
    ("Cabinet/Shelf/Desk", "Wardrobe"): "wardrobe",
    ("Cabinet/Shelf/Desk", "TV Stand"): "tv stand",
    ("Cabinet/Shelf/Desk", "Sideboard / Side Cabinet / Console Table"): "sideboard",
    ("Cabinet/Shelf/Desk", "Drawer Chest / Corner cabinet"): "chest",
    ("Cabinet/Shelf/Desk", "Wine Cabinet"): "wine",
    ("Cabinet/Shelf/Desk", "Bookcase / jewelry Armoire"): "shelf",
    ("Cabinet/Shelf/Desk", "Shelf"): "shelf",
    ("Cabinet/Shelf/Desk", "Desk"): "desk",
    ("Table", "Dining Table"): "dining table",
    ("Table", "Coffee Table"): "coffee table",
    ("Table", "Round End Table"): "end table",
    ("Table", "Dressing Table"): "dressing table",
    ("Chair", "Dining Chair"): "chair",
    ("Chair", "Dressing Chair"): "chair",
    ("Chair", "Lounge Chair / Cafe Chair / Office Chair"): "office chair",
    ("Pier/Stool", "Footstool / Sofastool / Bed End Stool / Stool"): "stool",
    ("Sofa", "armchair"): "armchair",
    ("Sofa", "Loveseat Sofa"): "sofa",
    ("Sofa", "Three-Seat / Multi-seat Sofa"): "sofa",
    ("Lighting", "Floor Lamp"): "floor lamp",
    ("Lighting", "Pendant Lamp"): "pendant lamp",
    ("Lighting", "Ceiling Lamp"): "ceiling lamp",
    ("Others", None): "others",
}
_FAMILY_PAIRS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "bed": (("Bed", "King-size Bed"), ("Bed", "Bed Frame"), ("Bed", "Single bed"), ("Bed", "Kids Bed"), ("Bed", "Bunk Bed"), ("Bed", "Double Bed"), ("Bed", None)),
    "nightstand": (("Cabinet/Shelf/Desk", "Nightstand"),),
    "wardrobe": (("Cabinet/Shelf/Desk", "Wardrobe"),),
    "tv stand": (("Cabinet/Shelf/Desk", "TV Stand"),),
    "sideboard": (("Cabinet/Shelf/Desk", "Sideboard / Side Cabinet / Console Table"), ("Cabinet/Shelf/Desk", "Sideboard / Side Cabinet / Console"), ("Table", "Sideboard / Side Cabinet / Console Table")),
    "chest": (("Cabinet/Shelf/Desk", "Drawer Chest / Corner cabinet"), ("Cabinet/Shelf/Desk", "Children Cabinet"), ("Cabinet/Shelf/Desk", "Shoe Cabinet")),
    "wine": (("Cabinet/Shelf/Desk", "Wine Cabinet"), ("Cabinet/Shelf/Desk", "Wine Cooler")),
    "shelf": (("Cabinet/Shelf/Desk", "Bookcase / jewelry Armoire"), ("Cabinet/Shelf/Desk", "Shelf")),
    "desk": (("Table", "Desk"),),
    "dining table": (("Table", "Dining Table"), ("Table", "Bar"), ("Table", None)),
    "coffee table": (("Cabinet/Shelf/Desk", "Coffee Table"), ("Cabinet/Shelf/Desk", "Tea Table")),
    "end table": (("Cabinet/Shelf/Desk", "Corner/Side Table"), ("Cabinet/Shelf/Desk", "Round End Table")),
    "dressing table": (("Table", "Dressing Table"),),
    "chair": (("Chair", "Dining Chair"), ("Chair", "Dressing Chair"), ("Chair", "Classic Chinese Chair"), ("Chair", "Folding chair"), ("Chair", "Barstool"), ("Chair", "Hanging Chair")),
    "office chair": (("Chair", "Lounge Chair / Cafe Chair / Office Chair"), ("Chair", "Lounge Chair / Book-chair / Computer Chair")),
    "stool": (("Pier/Stool", "Footstool / Sofastool / Bed End Stool / Stool"), ("Sofa", "Footstool / Sofastool / Bed End Stool / Stool")),
    "armchair": (("Sofa", "armchair"),),
    "sofa": (
        ("Sofa", "Three-Seat / Multi-seat Sofa"), ("Sofa", "Loveseat Sofa"), ("Sofa", "Lazy Sofa"), ("Sofa", "L-shaped Sofa"), ("Sofa", "Chaise Longue Sofa"),
        ("Sofa", "Three-Seat / Multi-person sofa"), ("Sofa", "U-shaped Sofa"), ("Sofa", "Two-seat Sofa"), ("Bed", "Couch Bed"),
    ),
    "floor lamp": (("Lighting", "Floor Lamp"),),
    "pendant lamp": (("Lighting", "Pendant Lamp"), ("Lighting", "Wall Lamp")),
    "ceiling lamp": (("Lighting", "Ceiling Lamp"),),
    "others": (("Others", None),),
}


@lru_cache(maxsize=1)
def _pair_weights() -> dict[str, tuple[list[tuple[str, str | None]], np.ndarray]]:
    """Per family: its real pairs and their model counts as probabilities (nerfseg/data/3d_future_category_pairs.tsv)."""
    counts = {(sup, cat): n for sup, cat, n in spec.real_category_pairs()}
    out = {}
    for family, pairs in _FAMILY_PAIRS.items():
        w = np.array([counts[p] for p in pairs], dtype=np.float64)
        out[family] = (list(pairs), w / w.sum())
    return out


def _real_pair(shape_pair: tuple[str, str | None], seed: int) -> tuple[str, str | None]:
    """The (super-category, category) label of a model of this shape, drawn with the real frequencies of its family.

    Drawn from the model's own seed, not the layout stream: the geometry of every demo room stays the same
    whatever label its models get."""
    pairs, p = _pair_weights()[_FAMILY_OF_SHAPE[shape_pair]]
    return pairs[int(np.random.default_rng([seed, 0x9A1B]).choice(len(pairs), p=p))]


def _finish(rng: np.random.Generator, mesh: _Mesh, slots: list[tuple[str, np.ndarray]], category: str | None, super_category: str, title: str, mount: str = "floor") -> _Model:
    v, f, uv = mesh.arrays()
    seed = int(rng.integers(2**62))
    super_category, category = _real_pair((super_category, category), seed)
    return _Model(category, super_category, title, v, f, uv, slots, seed, mount)


def _legs(m: _Mesh, w: float, d: float, h: float, t: float, inset: float, slot: int, round_: bool = False) -> None:
    for sx in (-1, 1):
        for sz in (-1, 1):
            x = sx * (w / 2 - inset - t / 2)
            z = sz * (d / 2 - inset - t / 2)
            if round_:
                m.cylinder(x, z, 0.0, h, t / 2, None, slot, seg=8)
            else:
                m.box((x - t / 2, 0.0, z - t / 2), (x + t / 2, h, z + t / 2), slot)


def _u(rng: np.random.Generator, a: float, b: float) -> float:
    return float(rng.uniform(a, b))


# --- beds, nightstands ----------------------------------------------------------------------
def _bed(rng: np.random.Generator, category: str) -> _Model:
    w = {"King-size Bed": _u(rng, 1.85, 2.0), "Double Bed": _u(rng, 1.45, 1.65), "Single bed": _u(rng, 0.95, 1.15)}[category]
    d = _u(rng, 2.0, 2.15)
    m = _Mesh(rng, max(w, d))
    leg = 0.08
    _legs(m, w, d, leg, 0.06, 0.02, 0)
    m.box((-w / 2, leg, -d / 2), (w / 2, 0.34, d / 2), 0)  # frame
    m.box((-w / 2 + 0.03, 0.34, -d / 2 + 0.06), (w / 2 - 0.03, 0.56, d / 2 - 0.03), 1)  # mattress
    m.box((-w / 2, leg, -d / 2), (w / 2, _u(rng, 0.95, 1.2), -d / 2 + 0.07), 0)  # headboard
    m.box((-w / 2 + 0.01, 0.40, -d / 2 + 0.6), (w / 2 - 0.01, 0.60, d / 2 - 0.01), 2)  # duvet
    n_p = 1 if w < 1.3 else 2
    pw = (w - 0.2) / n_p
    for k in range(n_p):
        x0 = -w / 2 + 0.1 + k * pw
        m.box((x0 + 0.03, 0.56, -d / 2 + 0.12), (x0 + pw - 0.03, 0.68, -d / 2 + 0.5), 3)  # pillows
    slots = [("wood", _pick(rng, WOODS)), ("fabric", np.array([0.9, 0.9, 0.88])), ("fabric", _pick(rng, FABRICS)), ("fabric", _pick(rng, FABRICS) * 0.5 + 0.45)]
    return _finish(rng, m, slots, category, "Bed", category.lower())


def _nightstand(rng: np.random.Generator) -> _Model:
    w, d, h = _u(rng, 0.42, 0.55), _u(rng, 0.36, 0.45), _u(rng, 0.45, 0.6)
    m = _Mesh(rng, max(w, h))
    _legs(m, w, d, 0.06, 0.035, 0.02, 0)
    m.box((-w / 2, 0.06, -d / 2), (w / 2, h, d / 2), 0)
    n = 2
    dh = (h - 0.06 - 0.04) / n
    for k in range(n):
        y0 = 0.08 + k * dh
        m.box((-w / 2 + 0.02, y0 + 0.01, d / 2), (w / 2 - 0.02, y0 + dh - 0.01, d / 2 + 0.012), 1)
        m.box((-0.05, y0 + dh / 2 - 0.008, d / 2 + 0.012), (0.05, y0 + dh / 2 + 0.008, d / 2 + 0.03), 2)
    return _finish(rng, m, [("wood", _pick(rng, WOODS)), ("wood", _pick(rng, WOODS)), ("metal", _pick(rng, METALS))], "Nightstand", "Cabinet/Shelf/Desk", "nightstand")


# --- cabinets ---------------------------------------------------------------------------------
def _cabinet_body(rng: np.random.Generator, w: float, d: float, h: float, doors: int, drawers: int, leg: float, category: str, title: str) -> _Model:
    m = _Mesh(rng, max(w, h))
    if leg > 0:
        _legs(m, w, d, leg, 0.04, 0.03, 2)
    else:
        m.box((-w / 2 + 0.03, 0.0, -d / 2 + 0.03), (w / 2 - 0.03, 0.06, d / 2 - 0.03), 0)  # plinth
        leg = 0.06
    m.box((-w / 2, leg, -d / 2), (w / 2, h, d / 2), 0)
    front = d / 2
    if drawers:
        dh = (h - leg - 0.02) / drawers
        for k in range(drawers):
            y0 = leg + 0.01 + k * dh
            m.box((-w / 2 + 0.02, y0 + 0.01, front), (w / 2 - 0.02, y0 + dh - 0.01, front + 0.015), 1)
            m.box((-0.06, y0 + dh / 2 - 0.01, front + 0.015), (0.06, y0 + dh / 2 + 0.01, front + 0.035), 2)
    if doors:
        dw = (w - 0.02) / doors
        for k in range(doors):
            x0 = -w / 2 + 0.01 + k * dw
            m.box((x0 + 0.005, leg + 0.02, front), (x0 + dw - 0.005, h - 0.02, front + 0.015), 1)
            hx = x0 + (dw - 0.06 if k % 2 == 0 else 0.06)
            hy = leg + (h - leg) * 0.5
            m.box((hx - 0.01, hy - 0.1, front + 0.015), (hx + 0.01, hy + 0.1, front + 0.035), 2)
    wood = _pick(rng, WOODS)
    second = wood if rng.random() < 0.5 else _pick(rng, PAINTS)
    return _finish(rng, m, [("wood", wood), ("wood" if second is wood else "plaster", second), ("metal", _pick(rng, METALS))], category, "Cabinet/Shelf/Desk", title)


def _wardrobe(rng: np.random.Generator) -> _Model:
    w = _u(rng, 1.2, 1.9)
    return _cabinet_body(rng, w, _u(rng, 0.55, 0.62), _u(rng, 1.95, 2.2), 2 if w < 1.5 else 3, 0, 0.0, "Wardrobe", "wardrobe")


def _tv_stand(rng: np.random.Generator) -> _Model:
    return _cabinet_body(rng, _u(rng, 1.4, 1.9), _u(rng, 0.38, 0.45), _u(rng, 0.45, 0.55), 0, 2, 0.1, "TV Stand", "tv stand")


def _sideboard(rng: np.random.Generator) -> _Model:
    return _cabinet_body(rng, _u(rng, 1.3, 1.7), _u(rng, 0.42, 0.5), _u(rng, 0.75, 0.9), 3, 0, 0.12, "Sideboard / Side Cabinet / Console Table", "sideboard")


def _drawer_chest(rng: np.random.Generator) -> _Model:
    return _cabinet_body(rng, _u(rng, 0.8, 1.0), _u(rng, 0.42, 0.5), _u(rng, 0.9, 1.2), 0, int(rng.integers(4, 6)), 0.0, "Drawer Chest / Corner cabinet", "drawer chest")


def _wine_cabinet(rng: np.random.Generator) -> _Model:
    return _cabinet_body(rng, _u(rng, 0.7, 0.9), _u(rng, 0.38, 0.45), _u(rng, 1.7, 1.9), 2, 0, 0.0, "Wine Cabinet", "wine cabinet")


def _bookshelf(rng: np.random.Generator) -> _Model:
    w, d, h = _u(rng, 0.8, 1.2), _u(rng, 0.28, 0.36), _u(rng, 1.8, 2.05)
    m = _Mesh(rng, h)
    t = 0.025
    m.box((-w / 2, 0, -d / 2), (-w / 2 + t, h, d / 2), 0)
    m.box((w / 2 - t, 0, -d / 2), (w / 2, h, d / 2), 0)
    m.box((-w / 2, 0, -d / 2), (w / 2, h, -d / 2 + 0.012), 0)
    m.box((-w / 2 + t, 0, -d / 2), (w / 2 - t, 0.08, d / 2), 0)
    m.box((-w / 2 + t, h - t, -d / 2), (w / 2 - t, h, d / 2), 0)
    n = int(rng.integers(4, 6))
    gap = (h - 0.08 - t) / n
    for k in range(1, n):
        y = 0.08 + k * gap
        m.box((-w / 2 + t, y - t / 2, -d / 2), (w / 2 - t, y + t / 2, d / 2), 0)
    for k in range(n):  # books on each shelf, with random gaps
        y0 = 0.08 + k * gap + (t / 2 if k else 0.0)
        x = -w / 2 + t + 0.01
        while True:
            bw = _u(rng, 0.02, 0.05)
            if x + bw > w / 2 - t - 0.01:
                break
            if rng.random() < 0.85:
                bh = min(gap - t - 0.02, _u(rng, 0.16, 0.3))
                bd = _u(rng, 0.16, min(0.24, d - 0.04))
                m.box((x, y0, d / 2 - 0.02 - bd), (x + bw - 0.002, y0 + bh, d / 2 - 0.02), 3)
            x += bw + (0.05 if rng.random() < 0.08 else 0.0)
    category = "Bookcase / jewelry Armoire" if rng.random() < 0.6 else "Shelf"
    return _finish(rng, m, [("wood", _pick(rng, WOODS)), ("wood", _pick(rng, WOODS)), ("metal", _pick(rng, METALS)), ("books", np.ones(3))], category, "Cabinet/Shelf/Desk", "bookshelf")


# --- desks, tables ----------------------------------------------------------------------------
def _desk(rng: np.random.Generator) -> _Model:
    w, d, h = _u(rng, 1.1, 1.5), _u(rng, 0.55, 0.7), _u(rng, 0.73, 0.76)
    m = _Mesh(rng, w)
    m.box((-w / 2, h - 0.03, -d / 2), (w / 2, h, d / 2), 0)
    pw = 0.4
    m.box((w / 2 - pw, 0.0, -d / 2 + 0.02), (w / 2 - 0.01, h - 0.03, d / 2 - 0.02), 1)  # drawer pedestal
    for k in range(3):
        y0 = 0.04 + k * (h - 0.1) / 3
        m.box((w / 2 - pw + 0.02, y0 + 0.01, d / 2 - 0.02), (w / 2 - 0.03, y0 + (h - 0.1) / 3 - 0.01, d / 2 - 0.005), 1)
        m.box((w / 2 - pw / 2 - 0.05, y0 + (h - 0.1) / 6 - 0.008, d / 2 - 0.005), (w / 2 - pw / 2 + 0.05, y0 + (h - 0.1) / 6 + 0.008, d / 2 + 0.012), 2)
    for z in (-d / 2 + 0.03, d / 2 - 0.07):
        m.box((-w / 2 + 0.03, 0, z), (-w / 2 + 0.07, h - 0.03, z + 0.04), 2)
    m.box((-w / 2 + 0.03, 0.05, -d / 2 + 0.03), (-w / 2 + 0.07, 0.09, d / 2 - 0.03), 2)
    return _finish(rng, m, [("wood", _pick(rng, WOODS)), ("plaster", _pick(rng, PAINTS)), ("metal", _pick(rng, METALS))], "Desk", "Cabinet/Shelf/Desk", "desk")


def _table(rng: np.random.Generator, w: float, d: float, h: float, category: str, title: str, shelf: bool = False) -> _Model:
    m = _Mesh(rng, w)
    top = 0.04
    m.box((-w / 2, h - top, -d / 2), (w / 2, h, d / 2), 0)
    leg = _u(rng, 0.04, 0.07)
    round_legs = bool(rng.random() < 0.4)
    _legs(m, w, d, h - top, leg, 0.05, 1, round_=round_legs)
    for sz in (-1, 1):  # aprons
        m.box((-w / 2 + 0.06, h - top - 0.08, sz * (d / 2 - 0.07) - 0.01), (w / 2 - 0.06, h - top, sz * (d / 2 - 0.07) + 0.01), 1)
    if shelf:
        m.box((-w / 2 + 0.06, 0.1, -d / 2 + 0.06), (w / 2 - 0.06, 0.13, d / 2 - 0.06), 0)
    wood = _pick(rng, WOODS)
    return _finish(rng, m, [("wood", wood), ("wood", wood * 0.8), ("metal", _pick(rng, METALS))], category, "Table", title)


def _dining_table(rng: np.random.Generator) -> _Model:
    return _table(rng, _u(rng, 1.4, 1.9), _u(rng, 0.8, 1.0), _u(rng, 0.74, 0.77), "Dining Table", "dining table")


def _coffee_table(rng: np.random.Generator) -> _Model:
    return _table(rng, _u(rng, 0.9, 1.3), _u(rng, 0.5, 0.7), _u(rng, 0.38, 0.45), "Coffee Table", "coffee table", shelf=True)


def _round_end_table(rng: np.random.Generator) -> _Model:
    r, h = _u(rng, 0.22, 0.3), _u(rng, 0.5, 0.6)
    m = _Mesh(rng, max(2 * r, h))
    m.cylinder(0, 0, 0, 0.03, _u(rng, 0.14, 0.18), None, 1, seg=20)
    m.cylinder(0, 0, 0.03, h - 0.03, 0.03, None, 1, seg=10)
    m.cylinder(0, 0, h - 0.03, h, r, None, 0, seg=24)
    return _finish(rng, m, [("wood", _pick(rng, WOODS)), ("metal", _pick(rng, METALS))], "Round End Table", "Table", "round end table")


def _dressing_table(rng: np.random.Generator) -> _Model:
    w, d, h = _u(rng, 0.9, 1.2), _u(rng, 0.4, 0.5), 0.75
    m = _Mesh(rng, max(w, h + 0.7))
    m.box((-w / 2, h - 0.03, -d / 2), (w / 2, h, d / 2), 0)
    _legs(m, w, d, h - 0.03, 0.04, 0.03, 0)
    m.box((-w / 2 + 0.05, h - 0.18, d / 2 - 0.05), (w / 2 - 0.05, h - 0.03, d / 2 - 0.03), 1)  # drawer front
    m.box((-0.3, h, -d / 2 + 0.01), (0.3, h + _u(rng, 0.6, 0.8), -d / 2 + 0.04), 2)  # mirror
    return _finish(rng, m, [("wood", _pick(rng, PAINTS)), ("wood", _pick(rng, WOODS)), ("metal", np.array([0.85, 0.88, 0.9]))], "Dressing Table", "Table", "dressing table")


# --- seating ----------------------------------------------------------------------------------
def _chair(rng: np.random.Generator, category: str = "Dining Chair", super_category: str = "Chair") -> _Model:
    w, d = _u(rng, 0.42, 0.47), _u(rng, 0.45, 0.52)
    sh, bh = _u(rng, 0.44, 0.47), _u(rng, 0.82, 0.95) if category == "Dining Chair" else _u(rng, 0.7, 0.8)
    m = _Mesh(rng, bh)
    t = 0.035
    _legs(m, w, d, sh - 0.05, t, 0.01, 0, round_=bool(rng.random() < 0.3))
    m.box((-w / 2, sh - 0.05, -d / 2), (w / 2, sh, d / 2), 1)  # seat
    for sx in (-1, 1):
        m.box((sx * (w / 2 - 0.01 - t / 2) - t / 2, sh, -d / 2 + 0.01), (sx * (w / 2 - 0.01 - t / 2) + t / 2, bh, -d / 2 + 0.01 + t), 0)
    m.box((-w / 2 + 0.01, bh - 0.2, -d / 2 + 0.01), (w / 2 - 0.01, bh - 0.02, -d / 2 + 0.01 + t), 1 if rng.random() < 0.5 else 0)
    return _finish(rng, m, [("wood", _pick(rng, WOODS)), ("fabric", _pick(rng, FABRICS))], category, super_category, category.lower())


def _office_chair(rng: np.random.Generator) -> _Model:
    w, d, sh = _u(rng, 0.5, 0.58), _u(rng, 0.5, 0.56), _u(rng, 0.45, 0.5)
    m = _Mesh(rng, 1.0)
    r = max(w, d) / 2 - 0.02
    for k in range(5):
        m.box((0.0, 0.03, -0.02), (r, 0.07, 0.02), 2, yaw=2 * np.pi * k / 5 + 0.3)
    m.cylinder(0, 0, 0.07, sh - 0.08, 0.025, None, 2, seg=10)
    m.box((-w / 2, sh - 0.08, -d / 2 + 0.02), (w / 2, sh, d / 2), 1)
    m.box((-w / 2 + 0.03, sh, -d / 2), (w / 2 - 0.03, sh + _u(rng, 0.45, 0.6), -d / 2 + 0.07), 1)
    for sx in (-1, 1):
        m.box((sx * (w / 2 - 0.03) - 0.025, sh, -0.12), (sx * (w / 2 - 0.03) + 0.025, sh + 0.22, 0.1), 2)
    return _finish(rng, m, [("metal", _pick(rng, METALS)), ("fabric", _pick(rng, FABRICS)), ("metal", _pick(rng, METALS) * 0.4)], "Lounge Chair / Cafe Chair / Office Chair", "Chair", "office chair")


def _stool(rng: np.random.Generator) -> _Model:
    r, h = _u(rng, 0.17, 0.22), _u(rng, 0.42, 0.47)
    m = _Mesh(rng, h)
    _legs(m, 2 * r * 0.9, 2 * r * 0.9, h - 0.05, 0.03, 0.0, 0)
    m.cylinder(0, 0, h - 0.05, h, r, None, 1, seg=20)
    return _finish(rng, m, [("wood", _pick(rng, WOODS)), ("fabric", _pick(rng, FABRICS))], "Footstool / Sofastool / Bed End Stool / Stool", "Pier/Stool", "stool")


def _sofa(rng: np.random.Generator, seats: int) -> _Model:
    w = {1: _u(rng, 0.75, 0.9), 2: _u(rng, 1.45, 1.65), 3: _u(rng, 1.95, 2.35)}[seats]
    d, h = _u(rng, 0.82, 0.95), _u(rng, 0.78, 0.88)
    m = _Mesh(rng, max(w, d))
    leg = 0.1
    _legs(m, w, d, leg, 0.05, 0.04, 2)
    arm = _u(rng, 0.12, 0.2)
    back = 0.2
    m.box((-w / 2, leg, -d / 2), (w / 2, 0.42, d / 2), 0)  # base
    m.box((-w / 2, leg, -d / 2), (w / 2, h, -d / 2 + back), 0)  # back
    ah = _u(rng, 0.58, 0.66)
    for sx in (-1, 1):
        x0, x1 = (-w / 2, -w / 2 + arm) if sx < 0 else (w / 2 - arm, w / 2)
        m.box((x0, leg, -d / 2), (x1, ah, d / 2), 0)
    cw = (w - 2 * arm) / seats
    for k in range(seats):
        x0 = -w / 2 + arm + k * cw
        m.box((x0 + 0.005, 0.42, -d / 2 + back), (x0 + cw - 0.005, 0.54, d / 2 - 0.01), 1)  # seat cushion
        m.box((x0 + 0.01, 0.54, -d / 2 + back), (x0 + cw - 0.01, h - 0.04, -d / 2 + back + 0.16), 1)  # back cushion
    if seats >= 2 and rng.random() < 0.7:
        for sx in (-1, 1):
            x = sx * (w / 2 - arm - 0.22)
            m.box((x - 0.2, 0.54, -d / 2 + back + 0.16), (x + 0.2, 0.92 * h, -d / 2 + back + 0.3), 3, yaw=sx * 0.25, pivot=(x, 0, -d / 2 + back + 0.23))
    cat = {1: "armchair", 2: "Loveseat Sofa", 3: "Three-Seat / Multi-seat Sofa"}[seats]
    fab = _pick(rng, FABRICS)
    return _finish(rng, m, [("fabric", fab), ("fabric", np.clip(fab * 1.1, 0, 1)), ("metal", _pick(rng, METALS)), ("fabric", _pick(rng, FABRICS))], cat, "Sofa", cat.lower())


# --- lamps ------------------------------------------------------------------------------------
def _floor_lamp(rng: np.random.Generator) -> _Model:
    hp = _u(rng, 1.3, 1.55)
    m = _Mesh(rng, hp + 0.35)
    m.cylinder(0, 0, 0.0, 0.03, _u(rng, 0.13, 0.17), None, 0, seg=20)
    m.cylinder(0, 0, 0.03, hp, 0.012, None, 0, seg=8)
    rb = _u(rng, 0.19, 0.24)
    m.cylinder(0, 0, hp - 0.05, hp + _u(rng, 0.26, 0.34), rb, rb * _u(rng, 0.6, 0.8), 1, seg=20)
    return _finish(rng, m, [("metal", _pick(rng, METALS)), ("fabric", np.array([0.95, 0.92, 0.82]))], "Floor Lamp", "Lighting", "floor lamp")


def _pendant_lamp(rng: np.random.Generator, drop: float) -> _Model:
    """Pendant lamp hanging ``drop`` metres from its ceiling canopy to the bottom of its shade."""
    sh = _u(rng, 0.18, 0.28)
    r = _u(rng, 0.16, 0.28)
    m = _Mesh(rng, drop)
    m.cylinder(0, 0, 0.0, sh, r, r * _u(rng, 0.3, 0.6), 1, seg=20)
    m.cylinder(0, 0, sh, drop - 0.02, 0.006, None, 0, seg=6)
    m.cylinder(0, 0, drop - 0.02, drop, 0.06, None, 0, seg=12)
    return _finish(rng, m, [("metal", _pick(rng, METALS)), ("metal", _pick(rng, METALS) * 0.5 + 0.45)], "Pendant Lamp", "Lighting", "pendant lamp", mount="ceiling")


def _ceiling_lamp(rng: np.random.Generator) -> _Model:
    r, h = _u(rng, 0.2, 0.3), _u(rng, 0.06, 0.1)
    m = _Mesh(rng, 2 * r)
    m.cylinder(0, 0, 0.0, h, r * 0.9, r, 1, seg=24)
    m.cylinder(0, 0, h, h + 0.02, r * 0.4, None, 0, seg=12)
    return _finish(rng, m, [("metal", _pick(rng, METALS)), ("fabric", np.array([0.97, 0.96, 0.92]))], "Ceiling Lamp", "Lighting", "ceiling lamp", mount="ceiling")


# --- other furniture --------------------------------------------------------------------------
def _plant(rng: np.random.Generator) -> _Model:
    pr, ph = _u(rng, 0.13, 0.2), _u(rng, 0.25, 0.4)
    top = _u(rng, 0.8, 1.5)
    m = _Mesh(rng, top)
    m.cylinder(0, 0, 0, ph, pr * 0.75, pr, 0, seg=16)
    m.cylinder(0, 0, ph, top * 0.6, 0.02, None, 1, seg=6)
    for _ in range(int(rng.integers(3, 6))):
        c = (_u(rng, -pr, pr) * 0.8, _u(rng, max(ph + 0.15, top * 0.45), top - 0.15), _u(rng, -pr, pr) * 0.8)
        rr = (_u(rng, 0.12, 0.22), _u(rng, 0.1, 0.15), _u(rng, 0.12, 0.22))
        m.ellipsoid(c, rr, 3)
    return _finish(rng, m, [("plaster", _pick(rng, PAINTS)), ("wood", WOODS[2]), ("metal", METALS[0]), ("leaves", np.array([0.25, 0.55, 0.22]) * _u(rng, 0.8, 1.2))], None, "Others", "plant")


def _piano(rng: np.random.Generator) -> _Model:
    w, d, h = _u(rng, 1.42, 1.55), _u(rng, 0.55, 0.62), _u(rng, 1.15, 1.3)
    m = _Mesh(rng, w)
    m.box((-w / 2, 0.0, -d / 2), (w / 2, h, -d / 2 + 0.35), 0)  # body
    m.box((-w / 2, 0.62, -d / 2 + 0.35), (w / 2, 0.7, d / 2 - 0.05), 0)  # key bed
    m.box((-w / 2 + 0.06, 0.7, -d / 2 + 0.35), (w / 2 - 0.06, 0.73, d / 2 - 0.08), 1)  # keys
    for sx in (-1, 1):
        m.box((sx * (w / 2 - 0.04) - 0.04, 0.0, -d / 2 + 0.35), (sx * (w / 2 - 0.04) + 0.04, 0.7, d / 2 - 0.05), 0)  # cheeks / legs
    dark = np.array([0.08, 0.07, 0.07]) if rng.random() < 0.6 else _pick(rng, WOODS)
    return _finish(rng, m, [("wood", dark), ("keys", np.ones(3))], None, "Others", "piano")


# =============================================================================================
# Room layout (room-local z-up frame: floor [0, Lx] x [0, Ly] at z = 0)

WALL_YAW = {"N": 0.0, "S": math.pi, "E": -math.pi / 2, "W": math.pi / 2}  # the model's front faces the room


@dataclass
class _Item:
    model: _Model
    x: float
    y: float
    z: float
    yaw: float
    scale: float
    fp: np.ndarray  # (4,) world footprint [xmin, ymin, xmax, ymax]
    zr: tuple[float, float]
    optional: bool = False

    def world_vertices(self) -> np.ndarray:
        v = yup_to_zup(self.model.vertices * self.scale)
        return v @ rot_z(self.yaw).T + np.array([self.x, self.y, self.z])


def _fp_rel(model: _Model, yaw: float, scale: float) -> np.ndarray:
    """Footprint of a model relative to its placement point, for a yaw about z-up."""
    lo, hi = model.lo * scale, model.hi * scale
    # model (x, z_yup) -> z-up local (x, -z): the rectangle [lo.x, hi.x] x [-hi.z, -lo.z]
    corners = np.array([[lo[0], -hi[2]], [hi[0], -hi[2]], [hi[0], -lo[2]], [lo[0], -lo[2]]])
    c, s = math.cos(yaw), math.sin(yaw)
    xy = corners @ np.array([[c, s], [-s, c]])
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)])


class _Layout:
    def __init__(self, rng: np.random.Generator, lx: float, ly: float, h: float):
        self.rng, self.lx, self.ly, self.h = rng, lx, ly, h
        self.items: list[_Item] = []
        self.zones: list[tuple[np.ndarray, int]] = []  # clearance rectangles in front of furniture (owner item)
        self.panels: list[np.ndarray] = []  # ceiling light panels (xy rects)

    # -- tests
    def _inside(self, fp: np.ndarray) -> bool:
        g = WALL_GAP - 1e-9
        return bool(fp[0] >= g and fp[1] >= g and fp[2] <= self.lx - g and fp[3] <= self.ly - g)

    @staticmethod
    def _hit(a: np.ndarray, b: np.ndarray, margin: float) -> bool:
        return bool(a[0] < b[2] + margin and b[0] < a[2] + margin and a[1] < b[3] + margin and b[1] < a[3] + margin)

    def fits(self, fp: np.ndarray) -> bool:
        """Inside the room (WALL_GAP from the walls), MARGIN away from every floor item, outside the
        clearance zones kept free in front of wardrobes, shelves, beds and behind seats."""
        if not self._inside(fp):
            return False
        if any(it.model.mount == "floor" and self._hit(fp, it.fp, MARGIN) for it in self.items):
            return False
        return not any(self._hit(fp, z, 0.0) for z, _ in self.zones)

    # -- placing
    def make(self, model: _Model, x: float, y: float, yaw: float, scale: float, optional: bool, z: float = 0.0) -> _Item:
        fp = _fp_rel(model, yaw, scale) + np.array([x, y, x, y])
        lo_z, hi_z = model.lo[1] * scale + z, model.hi[1] * scale + z
        return _Item(model, x, y, z, yaw, scale, fp, (lo_z, hi_z), optional)

    def add(self, item: _Item, clearance: float = 0.0) -> int:
        self.items.append(item)
        idx = len(self.items) - 1
        if clearance > 0:
            f = item.fp
            dx, dy = round(math.sin(item.yaw)), round(-math.cos(item.yaw))  # front direction
            if dy < 0:
                zone = np.array([f[0], f[1] - clearance, f[2], f[1]])
            elif dy > 0:
                zone = np.array([f[0], f[3], f[2], f[3] + clearance])
            elif dx < 0:
                zone = np.array([f[0] - clearance, f[1], f[0], f[3]])
            else:
                zone = np.array([f[2], f[1], f[2] + clearance, f[3]])
            self.zones.append((zone, idx))
        return idx

    def at_wall(self, model: _Model, wall: str, t: float, scale: float, optional: bool) -> _Item:
        """Item with its back against ``wall`` and its centre at ``t`` along the wall."""
        yaw = WALL_YAW[wall]
        r = _fp_rel(model, yaw, scale)
        if wall == "N":
            return self.make(model, t - (r[0] + r[2]) / 2, self.ly - WALL_GAP - r[3], yaw, scale, optional)
        if wall == "S":
            return self.make(model, t - (r[0] + r[2]) / 2, WALL_GAP - r[1], yaw, scale, optional)
        if wall == "E":
            return self.make(model, self.lx - WALL_GAP - r[2], t - (r[1] + r[3]) / 2, yaw, scale, optional)
        return self.make(model, WALL_GAP - r[0], t - (r[1] + r[3]) / 2, yaw, scale, optional)

    def wall_len(self, wall: str) -> float:
        return self.lx if wall in ("N", "S") else self.ly

    def beside(self, anchor: _Item, model: _Model, side: int, gap: float, scale: float, optional: bool) -> _Item:
        """Item on the left (-1) / right (+1) of ``anchor`` along the same wall, backs aligned."""
        yaw = anchor.yaw
        r = _fp_rel(model, yaw, scale)
        ax, ay = round(math.cos(yaw)), round(math.sin(yaw))  # anchor's local +x in the world
        f = anchor.fp
        if ax != 0:  # along x
            s = side * ax
            x = (f[2] + gap - r[0]) if s > 0 else (f[0] - gap - r[2])
            back_y = f[3] if round(-math.cos(yaw)) < 0 else f[1]
            y = back_y - r[3] if round(-math.cos(yaw)) < 0 else back_y - r[1]
        else:
            s = side * ay
            y = (f[3] + gap - r[1]) if s > 0 else (f[1] - gap - r[3])
            back_x = f[2] if round(math.sin(yaw)) < 0 else f[0]
            x = back_x - r[2] if round(math.sin(yaw)) < 0 else back_x - r[0]
        return self.make(model, x, y, yaw, scale, optional)

    def facing(self, anchor: _Item, model: _Model, gap: float, scale: float, optional: bool, turn: float = math.pi) -> _Item:
        """Item in front of ``anchor`` (its front side), turned by ``turn`` relative to the anchor."""
        yaw = anchor.yaw + turn
        r = _fp_rel(model, yaw, scale)
        f = anchor.fp
        dx, dy = round(math.sin(anchor.yaw)), round(-math.cos(anchor.yaw))
        cx, cy = (f[0] + f[2]) / 2, (f[1] + f[3]) / 2
        if dy < 0:
            return self.make(model, cx - (r[0] + r[2]) / 2, f[1] - gap - r[3], yaw, scale, optional)
        if dy > 0:
            return self.make(model, cx - (r[0] + r[2]) / 2, f[3] + gap - r[1], yaw, scale, optional)
        if dx < 0:
            return self.make(model, f[0] - gap - r[2], cy - (r[1] + r[3]) / 2, yaw, scale, optional)
        return self.make(model, f[2] + gap - r[0], cy - (r[1] + r[3]) / 2, yaw, scale, optional)

    # -- strategies (each tries a few random positions; returns False when nothing fits)
    def _walls(self, prefer_long: bool = False) -> list[str]:
        walls = ["N", "S", "E", "W"]
        self.rng.shuffle(walls)
        if prefer_long:
            walls.sort(key=lambda w: -self.wall_len(w))
        return walls

    def place_wall(self, model: _Model, optional: bool, clearance: float = 0.5, tries: int = 24, walls: list[str] | None = None) -> _Item | None:
        scale = _u(self.rng, 0.96, 1.04)
        for k in range(tries):
            wall = (walls or self._walls())[k % len(walls or "NSEW")]
            length = self.wall_len(wall)
            t = _u(self.rng, 0.3, length - 0.3)
            it = self.at_wall(model, wall, t, scale, optional)
            if self.fits(it.fp):
                self.add(it, clearance)
                return it
        return None

    def place_corner(self, model: _Model, optional: bool, tries: int = 12) -> _Item | None:
        scale = _u(self.rng, 0.95, 1.05)
        for _ in range(tries):
            cx, cy = int(self.rng.integers(2)), int(self.rng.integers(2))
            g = WALL_GAP + _u(self.rng, 0.02, 0.15)
            # face the room centre (front = (sin yaw, -cos yaw)), i.e. sit diagonally in the corner
            ang = math.atan2(self.ly / 2 - (0.0 if cy == 0 else self.ly), self.lx / 2 - (0.0 if cx == 0 else self.lx))
            yaw = ang + math.pi / 2
            r = _fp_rel(model, yaw, scale)
            x = (g - r[0]) if cx == 0 else (self.lx - g - r[2])
            y = (g - r[1]) if cy == 0 else (self.ly - g - r[3])
            it = self.make(model, x, y, yaw, scale, optional)
            if self.fits(it.fp):
                self.add(it)
                return it
        return None

    def place_ceiling(self, model: _Model, x: float, y: float, optional: bool) -> _Item | None:
        scale = 1.0
        top = model.hi[1]
        z = self.h - 0.005 - top * scale
        for k in range(40):
            jx, jy = (0.0, 0.0) if k == 0 else (_u(self.rng, -1, 1) * 0.15 * k ** 0.5, _u(self.rng, -1, 1) * 0.15 * k ** 0.5)
            it = self.make(model, x + jx, y + jy, 0.0, scale, optional, z=z)
            if not self._inside(it.fp) or any(self._hit(it.fp, p, 0.1) for p in self.panels):
                continue
            clash = False
            for o in self.items:
                if self._hit(it.fp, o.fp, 0.05) and not (o.zr[1] + 0.3 <= it.zr[0] or it.zr[1] <= o.zr[0]):
                    clash = True
                    break
            if not clash:
                self.add(it)
                return it
        return None

    # -- free floor for cameras
    def free_ok(self) -> bool:
        res = 0.05
        nx, ny = max(1, int(self.lx / res)), max(1, int(self.ly / res))
        xs, ys = (np.arange(nx) + 0.5) * res, (np.arange(ny) + 0.5) * res
        occ = np.zeros((nx, ny), dtype=bool)
        for it in self.items:
            if it.model.mount != "floor":
                continue
            f = it.fp
            occ |= ((xs[:, None] >= f[0]) & (xs[:, None] <= f[2])) & ((ys[None, :] >= f[1]) & (ys[None, :] <= f[3]))
        if occ.mean() > MAX_COVER:
            return False
        free = np.pad(~occ, 1, constant_values=False)
        return bool(distance_transform_edt(free).max() * res >= MIN_FREE_RADIUS)


def _pendant_drop(h: float, rng: np.random.Generator) -> float:
    return h - _u(rng, 1.75, 1.95)


def _room_plan(layout: _Layout, room_type: str, rng: np.random.Generator) -> bool:
    """Fill ``layout``; False when a required item did not fit (the caller draws a new room)."""
    L = layout
    cx, cy = L.lx / 2, L.ly / 2

    def need(x: object) -> bool:
        return x is not None and x is not False

    if room_type in ("Bedroom", "MasterBedroom"):
        bed_cat = "King-size Bed" if room_type == "MasterBedroom" else ("Double Bed" if rng.random() < 0.7 else "Single bed")
        if not need(_bed_group(L, _bed(rng, bed_cat), _nightstand(rng), 2 if room_type == "MasterBedroom" or rng.random() < 0.7 else 1)):
            return False
        if not need(L.place_wall(_wardrobe(rng), False, clearance=0.6)):
            return False
        if room_type == "Bedroom":
            if not need(_front_group(L, _desk(rng), _office_chair(rng) if rng.random() < 0.5 else _chair(rng))):
                return False
            if not need(L.place_corner(_plant(rng), False)):
                return False
            if rng.random() < 0.4:
                L.place_wall(_bookshelf(rng), True)
            if rng.random() < 0.4:
                L.place_corner(_floor_lamp(rng), True)
        else:
            if not need(_front_group(L, _dressing_table(rng), _stool(rng) if rng.random() < 0.5 else _chair(rng, "Dressing Chair"))):
                return False
            if rng.random() < 0.7:
                L.place_wall(_tv_stand(rng), True)
            L.place_corner(_plant(rng), True)
            L.place_corner(_floor_lamp(rng), True)
            if rng.random() < 0.5:
                L.place_wall(_drawer_chest(rng), True)
        lamp = _ceiling_lamp(rng) if rng.random() < 0.6 else _pendant_lamp(rng, min(0.7, _pendant_drop(L.h, rng)))
        return need(L.place_ceiling(lamp, cx, cy, False))
    if room_type == "LivingRoom":
        sofa = _sofa_group(L, rng)
        if sofa is None:
            return False
        tv = L.place_wall(_tv_stand(rng), False, clearance=0.4, walls=[{"N": "S", "S": "N", "E": "W", "W": "E"}[_wall_of(sofa)]] + L._walls())
        if tv is None:
            return False
        if not need(L.place_wall(_bookshelf(rng), False)):
            return False
        if not need(L.place_corner(_plant(rng), False)):
            return False
        L.place_corner(_floor_lamp(rng), True)
        if rng.random() < 0.35:
            L.place_wall(_piano(rng), True, clearance=0.6)
        return need(L.place_ceiling(_ceiling_lamp(rng), cx, cy, False))
    if room_type == "DiningRoom":
        table = _dining_group(L, rng)
        if table is None:
            return False
        if not need(L.place_wall(_sideboard(rng), False)):
            return False
        if rng.random() < 0.6:
            L.place_wall(_wine_cabinet(rng), True)
        if not need(L.place_corner(_plant(rng), False)):
            return False
        if rng.random() < 0.3:
            L.place_wall(_drawer_chest(rng), True)
        tx, ty = (table.fp[0] + table.fp[2]) / 2, (table.fp[1] + table.fp[3]) / 2
        return need(L.place_ceiling(_pendant_lamp(rng, _pendant_drop(L.h, rng)), tx, ty, False))
    if room_type == "Library":
        if not need(_front_group(L, _desk(rng), _office_chair(rng))):
            return False
        shelf = _bookshelf(rng)
        n_shelves = int(rng.integers(2, 4))
        first = L.place_wall(shelf, False)
        if first is None:
            return False
        for _ in range(n_shelves - 1):  # a row of identical shelves: several instances of one model
            side = int(rng.choice([-1, 1]))
            for s in (side, -side):
                it = L.beside(L.items[-1] if L.items[-1].model is shelf else first, shelf, s, _u(rng, 0.06, 0.1), first.scale, True)
                if L.fits(it.fp):
                    L.add(it, 0.5)
                    break
        arm = L.place_corner(_sofa(rng, 1), False)
        if arm is None:
            return False
        if rng.random() < 0.5:
            L.place_corner(_round_end_table(rng), True)
        L.place_corner(_floor_lamp(rng), True)
        if rng.random() < 0.4:
            L.place_wall(_piano(rng), True, clearance=0.6)
        else:
            L.place_corner(_plant(rng), True)
        return need(L.place_ceiling(_ceiling_lamp(rng), cx, cy, False))
    raise ValueError(f"unknown demo room type {room_type!r}")


def _wall_of(item: _Item) -> str:
    best = min(WALL_YAW, key=lambda w: abs(math.remainder(item.yaw - WALL_YAW[w], 2 * math.pi)))
    return best


def _bed_group(L: _Layout, bed: _Model, ns: _Model, n_ns: int) -> bool:
    for _ in range(30):
        wall = L._walls(prefer_long=L.rng.random() < 0.5)[0]
        scale = _u(L.rng, 0.97, 1.03)
        t = _u(L.rng, 1.0, L.wall_len(wall) - 1.0)
        b = L.at_wall(bed, wall, t, scale, False)
        if not L.fits(b.fp):
            continue
        sides = [-1, 1] if n_ns == 2 else [int(L.rng.choice([-1, 1]))]
        stands = [L.beside(b, ns, s, _u(L.rng, 0.06, 0.12), 1.0, False) for s in sides]
        if all(L.fits(s.fp) for s in stands) and not (len(stands) == 2 and L._hit(stands[0].fp, stands[1].fp, MARGIN)):
            L.add(b, clearance=0.6)
            for s in stands:
                L.add(s)
            return True
    return False


def _front_group(L: _Layout, main: _Model, seat: _Model) -> bool:
    """A wall piece with a seat in front of it facing it (desk + chair, dressing table + stool)."""
    for _ in range(30):
        it = L.place_wall(main, False, clearance=0.0, tries=1)
        if it is None:
            continue
        idx = len(L.items) - 1
        chair = L.facing(it, seat, _u(L.rng, 0.08, 0.15), 1.0, False)
        if L.fits(chair.fp):
            L.add(chair, 0.0)
            L.zones.append((_zone_behind(chair, 0.4), len(L.items) - 1))
            return True
        L.items.pop(idx)
    return False


def _zone_behind(item: _Item, depth: float) -> np.ndarray:
    f = item.fp
    dx, dy = round(math.sin(item.yaw)), round(-math.cos(item.yaw))
    # the seat faces the desk, so its free space is behind it (where the sitter's legs and walkway are)
    dx, dy = -dx, -dy
    if dy < 0:
        return np.array([f[0], f[1] - depth, f[2], f[1]])
    if dy > 0:
        return np.array([f[0], f[3], f[2], f[3] + depth])
    if dx < 0:
        return np.array([f[0] - depth, f[1], f[0], f[3]])
    return np.array([f[2], f[1], f[2] + depth, f[3]])


def _sofa_group(L: _Layout, rng: np.random.Generator) -> _Item | None:
    sofa_m = _sofa(rng, 3 if rng.random() < 0.7 else 2)
    table_m = _coffee_table(rng)
    arm_m = _sofa(rng, 1)
    end_m = _round_end_table(rng) if rng.random() < 0.6 else None
    for _ in range(30):
        wall = L._walls(prefer_long=True)[int(rng.integers(2))]
        t = _u(rng, 1.3, L.wall_len(wall) - 1.3)
        s = L.at_wall(sofa_m, wall, t, _u(rng, 0.97, 1.03), False)
        if not L.fits(s.fp):
            continue
        tab = L.facing(s, table_m, _u(rng, 0.35, 0.45), 1.0, False, turn=0.0)
        if not L.fits(tab.fp):
            continue
        L.add(s)
        L.add(tab)
        n_arm = int(rng.integers(1, 3))
        ax = round(math.cos(tab.yaw)) != 0  # the coffee table's long axis runs along x
        ends = ["+x", "-x"] if ax else ["+y", "-y"]
        if rng.random() < 0.5:
            ends.reverse()
        for direction in ends[:n_arm]:  # armchairs at the ends of the coffee table, facing it
            arm = _next_to(L, tab.fp, arm_m, direction, _u(rng, 0.25, 0.4), 1.0, True)
            if L.fits(arm.fp):
                L.add(arm)
        if end_m is not None:
            for side in (1, -1):
                e = L.beside(s, end_m, side, _u(rng, 0.06, 0.12), 1.0, True)
                if L.fits(e.fp):
                    L.add(e)
                    break
        return s
    return None


#: yaw that makes an item placed on that side of an anchor face back toward it (front = (sin, -cos))
FACE_BACK = {"+x": -math.pi / 2, "-x": math.pi / 2, "+y": 0.0, "-y": math.pi}


def _next_to(L: _Layout, fp: np.ndarray, model: _Model, direction: str, gap: float, scale: float, optional: bool, offset: float = 0.0) -> _Item:
    """Item beyond the ``direction`` edge of footprint ``fp`` (gap metres away), facing it, centred
    on its centre line shifted by ``offset`` (dining chairs, armchairs)."""
    yaw = FACE_BACK[direction]
    r = _fp_rel(model, yaw, scale)
    cx, cy = (fp[0] + fp[2]) / 2 + offset, (fp[1] + fp[3]) / 2 + offset
    if direction == "+x":
        return L.make(model, fp[2] + gap - r[0], cy - (r[1] + r[3]) / 2, yaw, scale, optional)
    if direction == "-x":
        return L.make(model, fp[0] - gap - r[2], cy - (r[1] + r[3]) / 2, yaw, scale, optional)
    if direction == "+y":
        return L.make(model, cx - (r[0] + r[2]) / 2, fp[3] + gap - r[1], yaw, scale, optional)
    return L.make(model, cx - (r[0] + r[2]) / 2, fp[1] - gap - r[3], yaw, scale, optional)


def _dining_group(L: _Layout, rng: np.random.Generator) -> _Item | None:
    table_m = _dining_table(rng)
    chair_m = _chair(rng)
    for _ in range(20):
        yaw = 0.0 if L.lx >= L.ly else math.pi / 2
        r = _fp_rel(table_m, yaw, 1.0)
        x = L.lx / 2 + _u(rng, -0.3, 0.3) - (r[0] + r[2]) / 2
        y = L.ly / 2 + _u(rng, -0.3, 0.3) - (r[1] + r[3]) / 2
        tab = L.make(table_m, x, y, yaw, 1.0, False)
        if not L.fits(tab.fp):
            continue
        f = tab.fp
        long_x = (f[2] - f[0]) >= (f[3] - f[1])
        length = (f[2] - f[0]) if long_x else (f[3] - f[1])
        n_side = 3 if length >= 1.65 else 2
        gap = _u(rng, 0.08, 0.14)
        sides, end_dirs = (("+y", "-y"), ("+x", "-x")) if long_x else (("+x", "-x"), ("+y", "-y"))
        chairs = [
            _next_to(L, f, chair_m, d, gap, 1.0, False, offset=(k + 0.5) / n_side * length - length / 2) for d in sides for k in range(n_side)
        ]
        ends = [_next_to(L, f, chair_m, d, gap, 1.0, True) for d in end_dirs]
        if not all(L.fits(c.fp) for c in chairs):
            continue
        L.add(tab)
        for c in chairs:
            L.add(c)
        if rng.random() < 0.6:
            for e in ends:
                if L.fits(e.fp):
                    L.add(e)
        return tab
    return None


# =============================================================================================
# Architecture (written y-up, as 3D-FRONT)


def _quad_mesh(corners_zup: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One quad (4 corners, counter-clockwise seen from its front) -> y-up xyz, normals, uv, faces."""
    n = np.cross(corners_zup[1] - corners_zup[0], corners_zup[2] - corners_zup[0])
    n = n / np.linalg.norm(n)
    xyz = zup_to_yup(corners_zup)
    return xyz, np.repeat(zup_to_yup(n)[None], 4, axis=0), uv, np.array([0, 1, 2, 0, 2, 3])


def _merge_quads(quads: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    xyz, nrm, uv, faces, off = [], [], [], [], 0
    for q in quads:
        xyz.append(q[0])
        nrm.append(q[1])
        uv.append(q[2])
        faces.append(q[3] + off)
        off += len(q[0])
    return np.concatenate(xyz), np.concatenate(nrm), np.concatenate(uv), np.concatenate(faces)


def _flat(a: np.ndarray, digits: int = 5) -> list[float]:
    out = np.round(np.asarray(a, dtype=np.float64).reshape(-1), digits)
    out[out == 0] = 0.0  # no negative zeros
    return out.tolist()


# =============================================================================================
# Writing


class _Writer:
    """Collects files (relative path -> bytes); written atomically at the end, hashed for the manifest."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def put(self, rel: str, data: bytes) -> None:
        self.files[rel] = data


def _uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def _room_dims(rng: np.random.Generator, room_type: str) -> tuple[float, float, float]:
    ranges = {
        "Bedroom": ((3.2, 4.3), (3.6, 4.8)),
        "MasterBedroom": ((4.0, 5.5), (4.5, 6.5)),
        "LivingRoom": ((4.2, 6.0), (5.0, 7.0)),
        "DiningRoom": ((3.8, 5.0), (4.0, 5.5)),
        "Library": ((3.0, 4.5), (3.5, 5.0)),
    }[room_type]
    a, b = _u(rng, *ranges[0]), _u(rng, *ranges[1])
    if rng.random() < 0.5:
        a, b = b, a
    return round(a, 2), round(b, 2), round(_u(rng, 2.6, 3.0), 2)


def _make_room(rng: np.random.Generator, room_type: str) -> _Layout:
    for _ in range(50):
        lx, ly, h = _room_dims(rng, room_type)
        layout = _Layout(rng, lx, ly, h)
        _light_panels(layout)
        if not _room_plan(layout, room_type, rng):
            continue
        while not layout.free_ok():  # give cameras room: drop optional pieces, newest first
            opt = [i for i, it in enumerate(layout.items) if it.optional]
            if not opt:
                break
            layout.items.pop(opt[-1])
        if layout.free_ok():
            return layout
    raise RuntimeError(f"demo generator could not lay out a {room_type} (a bug: the size ranges should always fit)")


def _light_panels(L: _Layout) -> None:
    """One or two rectangular LightBand panels on the ceiling, off the room centre (the lamp goes there)."""
    n = 2 if L.lx * L.ly > 20 else 1
    long_x = L.lx >= L.ly
    for k in range(n):
        frac = (0.25, 0.75)[k] if n == 2 else float(L.rng.choice([0.25, 0.75]))
        pw, pd = _u(L.rng, 0.8, 1.3), _u(L.rng, 0.35, 0.6)
        if long_x:
            cx, cy, sx, sy = L.lx * frac, L.ly / 2, pd, pw
        else:
            cx, cy, sx, sy = L.lx / 2, L.ly * frac, pw, pd
        L.panels.append(np.array([cx - sx / 2, cy - sy / 2, cx + sx / 2, cy + sy / 2]))


def _arch_texture(rng: np.random.Generator, kind: str) -> np.ndarray:
    n = ARCH_TEXTURE_SIZE
    if kind == "floor":
        if rng.random() < 0.5:
            return _tex_parquet(rng, n, _pick(rng, WOODS))
        return _tex_tiles(rng, n, np.array([0.85, 0.84, 0.8]) * _u(rng, 0.8, 1.1))
    return _tex_plaster(rng, n, np.clip(_pick(rng, PAINTS) * 0.3 + 0.7 * np.array([0.93, 0.91, 0.87]), 0, 1))


def _house(rng: np.random.Generator, house_uid: str, room_types: list[str], writer: _Writer, models_info: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Build one house JSON (y-up) and its models; returns (house dict, per-room manifest records)."""
    furniture: list[dict[str, Any]] = []
    meshes: list[dict[str, Any]] = []
    materials: list[dict[str, Any]] = []
    rooms: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    origin = np.array([_u(rng, -8, 8), _u(rng, -8, 8)]).round(2)
    x_cursor = 0.0
    counter = [1000 + int(rng.integers(0, 8000))]

    def next_id() -> int:
        counter[0] += 1
        return counter[0]

    for r, room_type in enumerate(room_types):
        L = _make_room(rng, room_type)
        ox, oy = float(origin[0] + x_cursor), float(origin[1])
        x_cursor += L.lx + 0.2  # the next room sits beyond a 20 cm wall
        children: list[dict[str, Any]] = []

        # --- materials of this room
        def material(kind: str, color: list[int], texture: np.ndarray | None, tile: float | None) -> str:
            uid = f"{next_id()}/material"
            jid = _uuid(rng) if texture is not None else ""
            m: dict[str, Any] = {"uid": uid, "jid": jid, "texture": FAKE_TEXTURE_URL.format(jid=jid) if jid else "", "normaltexture": "", "color": color}
            if tile is not None:
                m["UVTransform"] = [round(1.0 / tile, 5), 0.0, 0.0, 0.0, round(1.0 / tile, 5), 0.0, 0.0, 0.0, 1.0]
            if texture is not None:
                writer.put(f"{TEXTURE_DIR}/{jid}/texture.png", encode_png(texture))
            materials.append(m)
            return uid

        floor_mat = material("floor", [255, 255, 255, 255], _arch_texture(rng, "floor"), _u(rng, 0.6, 1.0))
        wall_mat = material("wall", [255, 255, 255, 255], _arch_texture(rng, "wall"), _u(rng, 1.0, 1.6))
        ceil_mat = material("ceiling", [246, 245, 240, 255], None, None)
        band_mat = material("light", [255, 252, 240, 255], None, None)
        base_mat = material("baseboard", [int(v) for v in (_pick(rng, PAINTS) * 255).round()] + [255], None, None)

        def add_mesh(kind: str, quads: list, mat: str, children: list[dict[str, Any]] = children) -> None:
            xyz, nrm, uv, faces = _merge_quads(quads)
            k = next_id()
            uid = f"{k}/{kind.lower()}"
            meshes.append(
                {"uid": uid, "jid": "", "type": kind, "xyz": _flat(xyz), "normal": _flat(nrm), "uv": _flat(uv), "faces": faces.astype(int).tolist(), "material": mat, "constructid": str(k), "instanceid": f"{kind}/{k}"}
            )
            children.append({"ref": uid, "instanceid": f"{kind}/{k}", "pos": [0.0, 0.0, 0.0], "rot": [0.0, 0.0, 0.0, 1.0], "scale": [1.0, 1.0, 1.0]})

        X0, Y0, X1, Y1, H = ox, oy, ox + L.lx, oy + L.ly, L.h
        P = lambda x, y, z: np.array([x, y, z], dtype=np.float64)
        add_mesh("Floor", [_quad_mesh(np.array([P(X0, Y0, 0), P(X1, Y0, 0), P(X1, Y1, 0), P(X0, Y1, 0)]), np.array([[X0, Y0], [X1, Y0], [X1, Y1], [X0, Y1]]))], floor_mat)
        add_mesh("Ceiling", [_quad_mesh(np.array([P(X0, Y0, H), P(X0, Y1, H), P(X1, Y1, H), P(X1, Y0, H)]), np.array([[X0, Y0], [X0, Y1], [X1, Y1], [X1, Y0]]))], ceil_mat)
        walls = {  # bottom edge a -> b of each inner face, clockwise seen from above: (b - a) x up points into the room
            "S": (P(X1, Y0, 0), P(X0, Y0, 0)),
            "W": (P(X0, Y0, 0), P(X0, Y1, 0)),
            "N": (P(X0, Y1, 0), P(X1, Y1, 0)),
            "E": (P(X1, Y1, 0), P(X1, Y0, 0)),
        }
        for a, b in walls.values():
            length = float(np.linalg.norm(b - a))
            up = P(0, 0, H)
            add_mesh("WallInner", [_quad_mesh(np.array([a, b, b + up, a + up]), np.array([[0, 0], [length, 0], [length, H], [0, H]]))], wall_mat)
        bb_h, bb_t = 0.08, 0.015
        for a, b in walls.values():
            d = (b - a) / np.linalg.norm(b - a)
            inward = np.array([d[1], -d[0], 0.0])
            a2, b2 = a + inward * bb_t, b + inward * bb_t
            up = P(0, 0, bb_h)
            length = float(np.linalg.norm(b - a))
            front = _quad_mesh(np.array([a2, b2, b2 + up, a2 + up]), np.array([[0, 0], [length, 0], [length, bb_h], [0, bb_h]]))
            top = _quad_mesh(np.array([a2 + up, b2 + up, b + up, a + up]), np.array([[0, 0], [length, 0], [length, bb_t], [0, bb_t]]))
            add_mesh("Baseboard", [front, top], base_mat)
        for p in L.panels:
            x0, y0, x1, y1 = p[0] + ox, p[1] + oy, p[2] + ox, p[3] + oy
            z = H - 0.01
            add_mesh("LightBand", [_quad_mesh(np.array([P(x0, y0, z), P(x0, y1, z), P(x1, y1, z), P(x1, y0, z)]), np.array([[0, 0], [0, y1 - y0], [x1 - x0, y1 - y0], [x1 - x0, 0]]))], band_mat)

        # --- furniture: one model (jid) and one furniture entry per distinct model, one child per placement
        objects: list[dict[str, Any]] = []
        for it in L.items:
            m = it.model
            if not m.jid:
                m.jid = _uuid(rng)
                m.uid = f"{next_id()}/model"
                _write_model(writer, m)
                models_info.append({"model_id": m.jid, "style": "Modern", "theme": None, "material": None, "super-category": m.super_category, "category": m.category})
                size = (m.hi - m.lo).round(4).tolist()
                entry: dict[str, Any] = {"uid": m.uid, "jid": m.jid, "title": m.title, "size": size, "valid": True}
                if m.category is not None:
                    entry["category"] = m.category
                furniture.append(entry)
            pos_zup = np.array([it.x + ox, it.y + oy, it.z])
            k = next_id()
            children.append(
                {
                    "ref": m.uid,
                    "instanceid": f"furniture/{k}",
                    "pos": _flat(zup_to_yup(pos_zup), 6),
                    "rot": _flat(yaw_to_quat_xyzw(it.yaw), 8),
                    "scale": [round(it.scale, 6)] * 3,
                }
            )
            wv = it.world_vertices() + np.array([ox, oy, 0.0])
            objects.append(
                {
                    "uid": m.uid,
                    "jid": m.jid,
                    "category": m.category,
                    "super_category": m.super_category,
                    "class_index": spec.category_to_class(m.category, m.super_category),
                    "mount": m.mount,
                    "aabb": _flat(np.concatenate([wv.min(axis=0), wv.max(axis=0)]), 5),
                }
            )
        # interleave as real files do: architecture and furniture children mixed, order seeded
        order = rng.permutation(len(children))
        instanceid = f"{room_type}-{next_id()}-{house_uid[:8]}"  # unique per house: a demo never repeats a layout
        rooms.append({"type": room_type, "instanceid": instanceid, "size": round(L.lx * L.ly, 3), "pos": [0.0, 0.0, 0.0], "rot": [0.0, 0.0, 0.0, 1.0], "scale": [1.0, 1.0, 1.0], "children": [children[i] for i in order], "empty": 0})
        # the manifest lists objects in children order, which is the loader's instance order
        fur_order = [i for i in order if children[i]["instanceid"].startswith("furniture/")]
        fur_index = {c["instanceid"]: n for n, c in enumerate(c for c in children if c["instanceid"].startswith("furniture/"))}
        records.append(
            {
                "room_index": r,
                "type": room_type,
                "instanceid": instanceid,
                "size": [L.lx, L.ly, L.h],
                "room_bbox": _flat([[ox, oy, 0.0], [ox + L.lx, oy + L.ly, L.h]]),
                "objects": [objects[fur_index[children[i]["instanceid"]]] for i in fur_order],
            }
        )
    house = {
        "uid": house_uid,
        "jobid": house_uid,
        "design_version": "nerfseg-demo",
        "code_version": GENERATOR_VERSION,
        "north_vector": [0, 1, 0],
        "furniture": furniture,
        "mesh": meshes,
        "material": materials,
        "extension": {},
        "scene": {"ref": "-1", "pos": [0, 0, 0], "rot": [0, 0, 0, 1], "scale": [1, 1, 1], "room": rooms},
    }
    return house, records


def _write_model(writer: _Writer, m: _Model) -> None:
    """raw_model.obj (positions shared between faces, uvs indexed separately), model.mtl, texture.png."""
    pos_keys, pos_inv = np.unique(np.round(m.vertices, 5), axis=0, return_inverse=True)
    uv_keys, uv_inv = np.unique(np.round(m.uvs, 5), axis=0, return_inverse=True)
    pos_inv, uv_inv = pos_inv.reshape(-1), uv_inv.reshape(-1)
    obj = format_obj(pos_keys, pos_inv[m.faces], uv_keys, uv_inv[m.faces], "model.mtl", "material_0")
    mtl = b"# nerfseg demo material\nnewmtl material_0\nKa 1.000000 1.000000 1.000000\nKd 1.000000 1.000000 1.000000\nKs 0.000000 0.000000 0.000000\nd 1.000000\nillum 1\nmap_Kd texture.png\n"
    writer.put(f"{FUTURE_DIR}/{m.jid}/raw_model.obj", obj)
    writer.put(f"{FUTURE_DIR}/{m.jid}/model.mtl", mtl)
    writer.put(f"{FUTURE_DIR}/{m.jid}/texture.png", encode_png(m.texture()))


def write_demo_dataset(out_dir: str | Path, num_rooms: int, seed: int = 0) -> DemoPaths:
    """Write ``num_rooms`` seeded procedural rooms as 3D-FRONT houses plus their 3D-FUTURE models.

    Houses hold one or two rooms each. Same ``seed`` -> byte-identical files. ``out_dir`` must be
    empty or a folder this function wrote before (it carries a marker file); files of an earlier
    demo that the new one does not write are removed, so a smaller demo never sees stale houses.
    """
    if num_rooms < 1:
        raise InputError(None, f"the demo needs at least one room, got num_rooms={num_rooms}")
    out = Path(out_dir)
    marker = out / MARKER
    if out.exists() and not out.is_dir():
        raise InputError(out, "demo output path exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not marker.exists():
        raise InputError(out, f"refusing to write the demo into a non-empty folder that has no {MARKER} marker")
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(marker, b"nerfseg procedural 3D-FRONT demo (safe to delete)\n")

    writer = _Writer()
    models_info: list[dict[str, Any]] = []
    houses: list[dict[str, Any]] = []
    done, h = 0, 0
    while done < num_rooms:
        rng = np.random.default_rng([seed, h])
        n = min(num_rooms - done, 1 if rng.random() < 0.5 else 2)
        types = [ROOM_TYPES[(done + k) % len(ROOM_TYPES)] for k in range(n)]
        uid = _uuid(rng)
        house, records = _house(rng, uid, types, writer, models_info)
        rel = f"{FRONT3D_DIR}/{uid}.json"
        writer.put(rel, dumps_json(house, indent=None).encode("utf-8") + b"\n")
        houses.append({"file": rel, "uid": uid, "rooms": records})
        done += n
        h += 1
    models_info.sort(key=lambda d: d["model_id"])
    writer.put(f"{FUTURE_DIR}/model_info.json", dumps_json(models_info, indent=1).encode("utf-8") + b"\n")

    # house_index = position in the sorted listing of the 3D-FRONT folder (as iter_houses counts)
    sorted_files = sorted(hh["file"].split("/")[-1] for hh in houses)
    for hh in houses:
        hh["house_index"] = sorted_files.index(hh["file"].split("/")[-1])
        for rec in hh["rooms"]:
            rec["scene_id"] = f"3dfront_{hh['house_index']:04d}_{rec['room_index']:02d}"

    # remove stale files of an earlier demo in our three folders, then write atomically
    wanted = set(writer.files)
    for sub in (FRONT3D_DIR, FUTURE_DIR, TEXTURE_DIR):
        root = out / sub
        if not root.exists():
            continue
        for p in sorted(root.rglob("*"), reverse=True):
            rel = p.relative_to(out).as_posix()
            if p.is_file() and rel not in wanted:
                p.unlink()
            elif p.is_dir() and not any(p.iterdir()):
                shutil.rmtree(p)
    for rel, data in writer.files.items():
        target = out / rel
        if target.exists() and target.stat().st_size == len(data) and target.read_bytes() == data:
            continue  # unchanged: keep mtimes so downstream caches stay valid
        write_bytes_atomic(target, data)
    manifest = {
        "generator": "nerfseg-demo",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "num_rooms": num_rooms,
        "houses": houses,
        "files": {rel: hashlib.sha256(data).hexdigest() for rel, data in sorted(writer.files.items())},
    }
    write_bytes_atomic(out / MANIFEST, dumps_json(manifest, indent=1).encode("utf-8") + b"\n")
    return DemoPaths(out / FRONT3D_DIR, out / FUTURE_DIR, out / TEXTURE_DIR, out / MANIFEST)
