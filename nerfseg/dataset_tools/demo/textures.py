"""Seeded draws and procedural textures of the demo generator (vectorised numpy; periodic so they tile without seams)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ATLAS_SIZE = 256  # furniture texture.png: a 2x2 atlas of 128x128 materials
ARCH_TEXTURE_SIZE = 128  # floor / wall textures


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


def pick_colour(rng: np.random.Generator, table: np.ndarray) -> np.ndarray:
    return np.clip(table[rng.integers(len(table))] * rng.uniform(0.9, 1.1, size=3), 0, 1)


def texture_atlas(rng: np.random.Generator, slots: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """2x2 atlas (ATLAS_SIZE^2): slot k at column k % 2, row k // 2 (image rows, top first)."""
    q = ATLAS_SIZE // 2
    img = np.zeros((ATLAS_SIZE, ATLAS_SIZE, 3), dtype=np.uint8)
    for k in range(4):
        kind, base = slots[k] if k < len(slots) else slots[0]
        r, c = divmod(k, 2)
        img[r * q : (r + 1) * q, c * q : (c + 1) * q] = _TEXTURES[kind](rng, q, base)
    return img



def draw_uniform(rng: np.random.Generator, a: float, b: float) -> float:
    return float(rng.uniform(a, b))



def arch_texture(rng: np.random.Generator, kind: str) -> np.ndarray:
    n = ARCH_TEXTURE_SIZE
    if kind == "floor":
        if rng.random() < 0.5:
            return _tex_parquet(rng, n, pick_colour(rng, WOODS))
        return _tex_tiles(rng, n, np.array([0.85, 0.84, 0.8]) * draw_uniform(rng, 0.8, 1.1))
    return _tex_plaster(rng, n, np.clip(pick_colour(rng, PAINTS) * 0.3 + 0.7 * np.array([0.93, 0.91, 0.87]), 0, 1))


