"""Procedural 3D-FUTURE-like furniture models of the demo (model frame: y-up, metres, front = +z, base at y = 0).

Built from boxes, cylinders and ellipsoids with UVs into a per-model texture atlas; each model's
(super-category, category) label is drawn from the real 3D-FUTURE pairs of its shape's family.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from nerfseg import spec
from nerfseg.dataset_tools.demo.textures import FABRICS, METALS, PAINTS, WOODS, draw_uniform, pick_colour, texture_atlas


class DemoMesh:
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
class DemoModel:
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
        return texture_atlas(np.random.default_rng(self.texture_seed), self.slots)

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


def _finish(rng: np.random.Generator, mesh: DemoMesh, slots: list[tuple[str, np.ndarray]], category: str | None, super_category: str, title: str, mount: str = "floor") -> DemoModel:
    v, f, uv = mesh.arrays()
    seed = int(rng.integers(2**62))
    super_category, category = _real_pair((super_category, category), seed)
    return DemoModel(category, super_category, title, v, f, uv, slots, seed, mount)


def _legs(m: DemoMesh, w: float, d: float, h: float, t: float, inset: float, slot: int, round_: bool = False) -> None:
    for sx in (-1, 1):
        for sz in (-1, 1):
            x = sx * (w / 2 - inset - t / 2)
            z = sz * (d / 2 - inset - t / 2)
            if round_:
                m.cylinder(x, z, 0.0, h, t / 2, None, slot, seg=8)
            else:
                m.box((x - t / 2, 0.0, z - t / 2), (x + t / 2, h, z + t / 2), slot)


# --- beds, nightstands ----------------------------------------------------------------------
def make_bed(rng: np.random.Generator, category: str) -> DemoModel:
    w = {"King-size Bed": draw_uniform(rng, 1.85, 2.0), "Double Bed": draw_uniform(rng, 1.45, 1.65), "Single bed": draw_uniform(rng, 0.95, 1.15)}[category]
    d = draw_uniform(rng, 2.0, 2.15)
    m = DemoMesh(rng, max(w, d))
    leg = 0.08
    _legs(m, w, d, leg, 0.06, 0.02, 0)
    m.box((-w / 2, leg, -d / 2), (w / 2, 0.34, d / 2), 0)  # frame
    m.box((-w / 2 + 0.03, 0.34, -d / 2 + 0.06), (w / 2 - 0.03, 0.56, d / 2 - 0.03), 1)  # mattress
    m.box((-w / 2, leg, -d / 2), (w / 2, draw_uniform(rng, 0.95, 1.2), -d / 2 + 0.07), 0)  # headboard
    m.box((-w / 2 + 0.01, 0.40, -d / 2 + 0.6), (w / 2 - 0.01, 0.60, d / 2 - 0.01), 2)  # duvet
    n_p = 1 if w < 1.3 else 2
    pw = (w - 0.2) / n_p
    for k in range(n_p):
        x0 = -w / 2 + 0.1 + k * pw
        m.box((x0 + 0.03, 0.56, -d / 2 + 0.12), (x0 + pw - 0.03, 0.68, -d / 2 + 0.5), 3)  # pillows
    slots = [("wood", pick_colour(rng, WOODS)), ("fabric", np.array([0.9, 0.9, 0.88])), ("fabric", pick_colour(rng, FABRICS)), ("fabric", pick_colour(rng, FABRICS) * 0.5 + 0.45)]
    return _finish(rng, m, slots, category, "Bed", category.lower())


def make_nightstand(rng: np.random.Generator) -> DemoModel:
    w, d, h = draw_uniform(rng, 0.42, 0.55), draw_uniform(rng, 0.36, 0.45), draw_uniform(rng, 0.45, 0.6)
    m = DemoMesh(rng, max(w, h))
    _legs(m, w, d, 0.06, 0.035, 0.02, 0)
    m.box((-w / 2, 0.06, -d / 2), (w / 2, h, d / 2), 0)
    n = 2
    dh = (h - 0.06 - 0.04) / n
    for k in range(n):
        y0 = 0.08 + k * dh
        m.box((-w / 2 + 0.02, y0 + 0.01, d / 2), (w / 2 - 0.02, y0 + dh - 0.01, d / 2 + 0.012), 1)
        m.box((-0.05, y0 + dh / 2 - 0.008, d / 2 + 0.012), (0.05, y0 + dh / 2 + 0.008, d / 2 + 0.03), 2)
    return _finish(rng, m, [("wood", pick_colour(rng, WOODS)), ("wood", pick_colour(rng, WOODS)), ("metal", pick_colour(rng, METALS))], "Nightstand", "Cabinet/Shelf/Desk", "nightstand")


# --- cabinets ---------------------------------------------------------------------------------
def _cabinet_body(rng: np.random.Generator, w: float, d: float, h: float, doors: int, drawers: int, leg: float, category: str, title: str) -> DemoModel:
    m = DemoMesh(rng, max(w, h))
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
    wood = pick_colour(rng, WOODS)
    second = wood if rng.random() < 0.5 else pick_colour(rng, PAINTS)
    return _finish(rng, m, [("wood", wood), ("wood" if second is wood else "plaster", second), ("metal", pick_colour(rng, METALS))], category, "Cabinet/Shelf/Desk", title)


def make_wardrobe(rng: np.random.Generator) -> DemoModel:
    w = draw_uniform(rng, 1.2, 1.9)
    return _cabinet_body(rng, w, draw_uniform(rng, 0.55, 0.62), draw_uniform(rng, 1.95, 2.2), 2 if w < 1.5 else 3, 0, 0.0, "Wardrobe", "wardrobe")


def make_tv_stand(rng: np.random.Generator) -> DemoModel:
    return _cabinet_body(rng, draw_uniform(rng, 1.4, 1.9), draw_uniform(rng, 0.38, 0.45), draw_uniform(rng, 0.45, 0.55), 0, 2, 0.1, "TV Stand", "tv stand")


def make_sideboard(rng: np.random.Generator) -> DemoModel:
    return _cabinet_body(rng, draw_uniform(rng, 1.3, 1.7), draw_uniform(rng, 0.42, 0.5), draw_uniform(rng, 0.75, 0.9), 3, 0, 0.12, "Sideboard / Side Cabinet / Console Table", "sideboard")


def make_drawer_chest(rng: np.random.Generator) -> DemoModel:
    return _cabinet_body(rng, draw_uniform(rng, 0.8, 1.0), draw_uniform(rng, 0.42, 0.5), draw_uniform(rng, 0.9, 1.2), 0, int(rng.integers(4, 6)), 0.0, "Drawer Chest / Corner cabinet", "drawer chest")


def make_wine_cabinet(rng: np.random.Generator) -> DemoModel:
    return _cabinet_body(rng, draw_uniform(rng, 0.7, 0.9), draw_uniform(rng, 0.38, 0.45), draw_uniform(rng, 1.7, 1.9), 2, 0, 0.0, "Wine Cabinet", "wine cabinet")


def make_bookshelf(rng: np.random.Generator) -> DemoModel:
    w, d, h = draw_uniform(rng, 0.8, 1.2), draw_uniform(rng, 0.28, 0.36), draw_uniform(rng, 1.8, 2.05)
    m = DemoMesh(rng, h)
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
            bw = draw_uniform(rng, 0.02, 0.05)
            if x + bw > w / 2 - t - 0.01:
                break
            if rng.random() < 0.85:
                bh = min(gap - t - 0.02, draw_uniform(rng, 0.16, 0.3))
                bd = draw_uniform(rng, 0.16, min(0.24, d - 0.04))
                m.box((x, y0, d / 2 - 0.02 - bd), (x + bw - 0.002, y0 + bh, d / 2 - 0.02), 3)
            x += bw + (0.05 if rng.random() < 0.08 else 0.0)
    category = "Bookcase / jewelry Armoire" if rng.random() < 0.6 else "Shelf"
    return _finish(rng, m, [("wood", pick_colour(rng, WOODS)), ("wood", pick_colour(rng, WOODS)), ("metal", pick_colour(rng, METALS)), ("books", np.ones(3))], category, "Cabinet/Shelf/Desk", "bookshelf")


# --- desks, tables ----------------------------------------------------------------------------
def make_desk(rng: np.random.Generator) -> DemoModel:
    w, d, h = draw_uniform(rng, 1.1, 1.5), draw_uniform(rng, 0.55, 0.7), draw_uniform(rng, 0.73, 0.76)
    m = DemoMesh(rng, w)
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
    return _finish(rng, m, [("wood", pick_colour(rng, WOODS)), ("plaster", pick_colour(rng, PAINTS)), ("metal", pick_colour(rng, METALS))], "Desk", "Cabinet/Shelf/Desk", "desk")


def _table_model(rng: np.random.Generator, w: float, d: float, h: float, category: str, title: str, shelf: bool = False) -> DemoModel:
    m = DemoMesh(rng, w)
    top = 0.04
    m.box((-w / 2, h - top, -d / 2), (w / 2, h, d / 2), 0)
    leg = draw_uniform(rng, 0.04, 0.07)
    round_legs = bool(rng.random() < 0.4)
    _legs(m, w, d, h - top, leg, 0.05, 1, round_=round_legs)
    for sz in (-1, 1):  # aprons
        m.box((-w / 2 + 0.06, h - top - 0.08, sz * (d / 2 - 0.07) - 0.01), (w / 2 - 0.06, h - top, sz * (d / 2 - 0.07) + 0.01), 1)
    if shelf:
        m.box((-w / 2 + 0.06, 0.1, -d / 2 + 0.06), (w / 2 - 0.06, 0.13, d / 2 - 0.06), 0)
    wood = pick_colour(rng, WOODS)
    return _finish(rng, m, [("wood", wood), ("wood", wood * 0.8), ("metal", pick_colour(rng, METALS))], category, "Table", title)


def make_dining_table(rng: np.random.Generator) -> DemoModel:
    return _table_model(rng, draw_uniform(rng, 1.4, 1.9), draw_uniform(rng, 0.8, 1.0), draw_uniform(rng, 0.74, 0.77), "Dining Table", "dining table")


def make_coffee_table(rng: np.random.Generator) -> DemoModel:
    return _table_model(rng, draw_uniform(rng, 0.9, 1.3), draw_uniform(rng, 0.5, 0.7), draw_uniform(rng, 0.38, 0.45), "Coffee Table", "coffee table", shelf=True)


def make_round_end_table(rng: np.random.Generator) -> DemoModel:
    r, h = draw_uniform(rng, 0.22, 0.3), draw_uniform(rng, 0.5, 0.6)
    m = DemoMesh(rng, max(2 * r, h))
    m.cylinder(0, 0, 0, 0.03, draw_uniform(rng, 0.14, 0.18), None, 1, seg=20)
    m.cylinder(0, 0, 0.03, h - 0.03, 0.03, None, 1, seg=10)
    m.cylinder(0, 0, h - 0.03, h, r, None, 0, seg=24)
    return _finish(rng, m, [("wood", pick_colour(rng, WOODS)), ("metal", pick_colour(rng, METALS))], "Round End Table", "Table", "round end table")


def make_dressing_table(rng: np.random.Generator) -> DemoModel:
    w, d, h = draw_uniform(rng, 0.9, 1.2), draw_uniform(rng, 0.4, 0.5), 0.75
    m = DemoMesh(rng, max(w, h + 0.7))
    m.box((-w / 2, h - 0.03, -d / 2), (w / 2, h, d / 2), 0)
    _legs(m, w, d, h - 0.03, 0.04, 0.03, 0)
    m.box((-w / 2 + 0.05, h - 0.18, d / 2 - 0.05), (w / 2 - 0.05, h - 0.03, d / 2 - 0.03), 1)  # drawer front
    m.box((-0.3, h, -d / 2 + 0.01), (0.3, h + draw_uniform(rng, 0.6, 0.8), -d / 2 + 0.04), 2)  # mirror
    return _finish(rng, m, [("wood", pick_colour(rng, PAINTS)), ("wood", pick_colour(rng, WOODS)), ("metal", np.array([0.85, 0.88, 0.9]))], "Dressing Table", "Table", "dressing table")


# --- seating ----------------------------------------------------------------------------------
def make_chair(rng: np.random.Generator, category: str = "Dining Chair", super_category: str = "Chair") -> DemoModel:
    w, d = draw_uniform(rng, 0.42, 0.47), draw_uniform(rng, 0.45, 0.52)
    sh, bh = draw_uniform(rng, 0.44, 0.47), draw_uniform(rng, 0.82, 0.95) if category == "Dining Chair" else draw_uniform(rng, 0.7, 0.8)
    m = DemoMesh(rng, bh)
    t = 0.035
    _legs(m, w, d, sh - 0.05, t, 0.01, 0, round_=bool(rng.random() < 0.3))
    m.box((-w / 2, sh - 0.05, -d / 2), (w / 2, sh, d / 2), 1)  # seat
    for sx in (-1, 1):
        m.box((sx * (w / 2 - 0.01 - t / 2) - t / 2, sh, -d / 2 + 0.01), (sx * (w / 2 - 0.01 - t / 2) + t / 2, bh, -d / 2 + 0.01 + t), 0)
    m.box((-w / 2 + 0.01, bh - 0.2, -d / 2 + 0.01), (w / 2 - 0.01, bh - 0.02, -d / 2 + 0.01 + t), 1 if rng.random() < 0.5 else 0)
    return _finish(rng, m, [("wood", pick_colour(rng, WOODS)), ("fabric", pick_colour(rng, FABRICS))], category, super_category, category.lower())


def make_office_chair(rng: np.random.Generator) -> DemoModel:
    w, d, sh = draw_uniform(rng, 0.5, 0.58), draw_uniform(rng, 0.5, 0.56), draw_uniform(rng, 0.45, 0.5)
    m = DemoMesh(rng, 1.0)
    r = max(w, d) / 2 - 0.02
    for k in range(5):
        m.box((0.0, 0.03, -0.02), (r, 0.07, 0.02), 2, yaw=2 * np.pi * k / 5 + 0.3)
    m.cylinder(0, 0, 0.07, sh - 0.08, 0.025, None, 2, seg=10)
    m.box((-w / 2, sh - 0.08, -d / 2 + 0.02), (w / 2, sh, d / 2), 1)
    m.box((-w / 2 + 0.03, sh, -d / 2), (w / 2 - 0.03, sh + draw_uniform(rng, 0.45, 0.6), -d / 2 + 0.07), 1)
    for sx in (-1, 1):
        m.box((sx * (w / 2 - 0.03) - 0.025, sh, -0.12), (sx * (w / 2 - 0.03) + 0.025, sh + 0.22, 0.1), 2)
    return _finish(rng, m, [("metal", pick_colour(rng, METALS)), ("fabric", pick_colour(rng, FABRICS)), ("metal", pick_colour(rng, METALS) * 0.4)], "Lounge Chair / Cafe Chair / Office Chair", "Chair", "office chair")


def make_stool(rng: np.random.Generator) -> DemoModel:
    r, h = draw_uniform(rng, 0.17, 0.22), draw_uniform(rng, 0.42, 0.47)
    m = DemoMesh(rng, h)
    _legs(m, 2 * r * 0.9, 2 * r * 0.9, h - 0.05, 0.03, 0.0, 0)
    m.cylinder(0, 0, h - 0.05, h, r, None, 1, seg=20)
    return _finish(rng, m, [("wood", pick_colour(rng, WOODS)), ("fabric", pick_colour(rng, FABRICS))], "Footstool / Sofastool / Bed End Stool / Stool", "Pier/Stool", "stool")


def make_sofa(rng: np.random.Generator, seats: int) -> DemoModel:
    w = {1: draw_uniform(rng, 0.75, 0.9), 2: draw_uniform(rng, 1.45, 1.65), 3: draw_uniform(rng, 1.95, 2.35)}[seats]
    d, h = draw_uniform(rng, 0.82, 0.95), draw_uniform(rng, 0.78, 0.88)
    m = DemoMesh(rng, max(w, d))
    leg = 0.1
    _legs(m, w, d, leg, 0.05, 0.04, 2)
    arm = draw_uniform(rng, 0.12, 0.2)
    back = 0.2
    m.box((-w / 2, leg, -d / 2), (w / 2, 0.42, d / 2), 0)  # base
    m.box((-w / 2, leg, -d / 2), (w / 2, h, -d / 2 + back), 0)  # back
    ah = draw_uniform(rng, 0.58, 0.66)
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
    fab = pick_colour(rng, FABRICS)
    return _finish(rng, m, [("fabric", fab), ("fabric", np.clip(fab * 1.1, 0, 1)), ("metal", pick_colour(rng, METALS)), ("fabric", pick_colour(rng, FABRICS))], cat, "Sofa", cat.lower())


# --- lamps ------------------------------------------------------------------------------------
def make_floor_lamp(rng: np.random.Generator) -> DemoModel:
    hp = draw_uniform(rng, 1.3, 1.55)
    m = DemoMesh(rng, hp + 0.35)
    m.cylinder(0, 0, 0.0, 0.03, draw_uniform(rng, 0.13, 0.17), None, 0, seg=20)
    m.cylinder(0, 0, 0.03, hp, 0.012, None, 0, seg=8)
    rb = draw_uniform(rng, 0.19, 0.24)
    m.cylinder(0, 0, hp - 0.05, hp + draw_uniform(rng, 0.26, 0.34), rb, rb * draw_uniform(rng, 0.6, 0.8), 1, seg=20)
    return _finish(rng, m, [("metal", pick_colour(rng, METALS)), ("fabric", np.array([0.95, 0.92, 0.82]))], "Floor Lamp", "Lighting", "floor lamp")


def make_pendant_lamp(rng: np.random.Generator, drop: float) -> DemoModel:
    """Pendant lamp hanging ``drop`` metres from its ceiling canopy to the bottom of its shade."""
    sh = draw_uniform(rng, 0.18, 0.28)
    r = draw_uniform(rng, 0.16, 0.28)
    m = DemoMesh(rng, drop)
    m.cylinder(0, 0, 0.0, sh, r, r * draw_uniform(rng, 0.3, 0.6), 1, seg=20)
    m.cylinder(0, 0, sh, drop - 0.02, 0.006, None, 0, seg=6)
    m.cylinder(0, 0, drop - 0.02, drop, 0.06, None, 0, seg=12)
    return _finish(rng, m, [("metal", pick_colour(rng, METALS)), ("metal", pick_colour(rng, METALS) * 0.5 + 0.45)], "Pendant Lamp", "Lighting", "pendant lamp", mount="ceiling")


def make_ceiling_lamp(rng: np.random.Generator) -> DemoModel:
    r, h = draw_uniform(rng, 0.2, 0.3), draw_uniform(rng, 0.06, 0.1)
    m = DemoMesh(rng, 2 * r)
    m.cylinder(0, 0, 0.0, h, r * 0.9, r, 1, seg=24)
    m.cylinder(0, 0, h, h + 0.02, r * 0.4, None, 0, seg=12)
    return _finish(rng, m, [("metal", pick_colour(rng, METALS)), ("fabric", np.array([0.97, 0.96, 0.92]))], "Ceiling Lamp", "Lighting", "ceiling lamp", mount="ceiling")


# --- other furniture --------------------------------------------------------------------------
def make_plant(rng: np.random.Generator) -> DemoModel:
    pr, ph = draw_uniform(rng, 0.13, 0.2), draw_uniform(rng, 0.25, 0.4)
    top = draw_uniform(rng, 0.8, 1.5)
    m = DemoMesh(rng, top)
    m.cylinder(0, 0, 0, ph, pr * 0.75, pr, 0, seg=16)
    m.cylinder(0, 0, ph, top * 0.6, 0.02, None, 1, seg=6)
    for _ in range(int(rng.integers(3, 6))):
        c = (draw_uniform(rng, -pr, pr) * 0.8, draw_uniform(rng, max(ph + 0.15, top * 0.45), top - 0.15), draw_uniform(rng, -pr, pr) * 0.8)
        rr = (draw_uniform(rng, 0.12, 0.22), draw_uniform(rng, 0.1, 0.15), draw_uniform(rng, 0.12, 0.22))
        m.ellipsoid(c, rr, 3)
    return _finish(rng, m, [("plaster", pick_colour(rng, PAINTS)), ("wood", WOODS[2]), ("metal", METALS[0]), ("leaves", np.array([0.25, 0.55, 0.22]) * draw_uniform(rng, 0.8, 1.2))], None, "Others", "plant")


def make_piano(rng: np.random.Generator) -> DemoModel:
    w, d, h = draw_uniform(rng, 1.42, 1.55), draw_uniform(rng, 0.55, 0.62), draw_uniform(rng, 1.15, 1.3)
    m = DemoMesh(rng, w)
    m.box((-w / 2, 0.0, -d / 2), (w / 2, h, -d / 2 + 0.35), 0)  # body
    m.box((-w / 2, 0.62, -d / 2 + 0.35), (w / 2, 0.7, d / 2 - 0.05), 0)  # key bed
    m.box((-w / 2 + 0.06, 0.7, -d / 2 + 0.35), (w / 2 - 0.06, 0.73, d / 2 - 0.08), 1)  # keys
    for sx in (-1, 1):
        m.box((sx * (w / 2 - 0.04) - 0.04, 0.0, -d / 2 + 0.35), (sx * (w / 2 - 0.04) + 0.04, 0.7, d / 2 - 0.05), 0)  # cheeks / legs
    dark = np.array([0.08, 0.07, 0.07]) if rng.random() < 0.6 else pick_colour(rng, WOODS)
    return _finish(rng, m, [("wood", dark), ("keys", np.ones(3))], None, "Others", "piano")

