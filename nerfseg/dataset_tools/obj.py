"""A small, vectorised Wavefront OBJ/MTL reader and writer for 3D-FUTURE models.

Why not trimesh: we need exact control over two things the renderer depends on: uvs must be per
vertex (an OBJ corner may pair one position with several texture coordinates, so such vertices are
split), and errors must name the file. Only what 3D-FUTURE uses is supported: ``v``, ``vt``, ``vn``
(read and ignored: the renderer takes face normals), ``f`` with ``v``, ``v/vt``, ``v//vn`` or
``v/vt/vn`` corners and any polygon size (fan-triangulated), ``usemtl``, ``mtllib``. Negative
(relative) indices are rejected with a clear message.

UV convention: OBJ/OpenGL, ``(0, 0)`` is the bottom-left of the texture image (image row
``(1 - v) * H``); values outside [0, 1] repeat.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nerfseg.errors import InputError

_V_RE = re.compile(rb"\nv[ \t]+([^\n]*)")
_VT_RE = re.compile(rb"\nvt[ \t]+([^\n]*)")
_F_RE = re.compile(rb"\nf[ \t]+([^\n]*)")
_USEMTL_RE = re.compile(rb"\nusemtl[ \t]+([^\n]*)")
_MTLLIB_RE = re.compile(rb"\nmtllib[ \t]+([^\n]*)")


@dataclass
class ObjMesh:
    """A triangulated OBJ with per-vertex uvs (vertices split where a corner carried another uv)."""

    vertices: np.ndarray  # (V, 3) float64, model coordinates as stored
    faces: np.ndarray  # (F, 3) int64
    uvs: np.ndarray | None  # (V, 2) float64 or None when the file has no texture coordinates
    face_material: np.ndarray  # (F,) int32 index into material_names (-1: before any usemtl)
    material_names: list[str] = field(default_factory=list)
    mtllibs: list[str] = field(default_factory=list)


@dataclass
class MtlMaterial:
    name: str
    kd: tuple[float, float, float] = (0.8, 0.8, 0.8)
    map_kd: str | None = None


def _table(rows: list[bytes], width: int, path: Path, what: str) -> np.ndarray:
    """(N, width) floats from N record bodies; extra values (vertex colours, w) are ignored,
    missing ones (a ``vt`` with only u) are 0."""
    if not rows:
        return np.zeros((0, width))
    try:
        tokens = b" ".join(rows).split()
        if len(tokens) == width * len(rows):  # the common case: exactly ``width`` numbers per line
            return np.array(tokens, dtype=np.float64).reshape(-1, width)
        out = np.zeros((len(rows), width))
        for i, r in enumerate(rows):
            vals = r.split()[:width]
            out[i, : len(vals)] = [float(v) for v in vals]
        return out
    except ValueError:
        raise InputError(path, f"malformed {what} line (not a number)") from None


_INT = rb"-?\d+"
#: whole-string patterns of a face-corner list in one uniform form (tokens joined by single spaces)
_FORMS = {
    "v": re.compile(rb"%s(?: %s)*" % (_INT, _INT)),
    "v/vt": re.compile(rb"%s/%s(?: %s/%s)*" % ((_INT,) * 4)),
    "v/vt/vn": re.compile(rb"%s/%s/%s(?: %s/%s/%s)*" % ((_INT,) * 6)),
    "v//vn": re.compile(rb"%s//%s(?: %s//%s)*" % ((_INT,) * 4)),
}


def _ints(blob: bytes, n: int, path: Path) -> np.ndarray:
    arr = np.array(blob.split(), dtype=np.int64)
    if arr.size != n:
        raise InputError(path, "malformed face ('f') line")
    return arr


def _parse_corners(tokens: list[bytes], path: Path) -> np.ndarray:
    """(K, 3) int64 [v, vt, vn] (1-based, 0 = absent) for K face-corner tokens."""
    k = len(tokens)
    out = np.zeros((k, 3), dtype=np.int64)
    if k == 0:
        return out
    joined = b" ".join(tokens)
    # Fast path: every corner in the same form (what exporters write), checked exactly by one regex.
    if _FORMS["v//vn"].fullmatch(joined):
        arr = _ints(joined.replace(b"//", b" "), 2 * k, path).reshape(-1, 2)
        out[:, 0], out[:, 2] = arr[:, 0], arr[:, 1]
        return out
    for form, cols in (("v/vt/vn", 3), ("v/vt", 2), ("v", 1)):
        if _FORMS[form].fullmatch(joined):
            out[:, :cols] = _ints(joined.replace(b"/", b" "), cols * k, path).reshape(-1, cols)
            return out
    # Mixed corner forms: rare, take the slow but general path.
    try:
        for i, t in enumerate(tokens):
            for j, part in enumerate(t.split(b"/")[:3]):
                if part:
                    out[i, j] = int(part)
    except ValueError:
        raise InputError(path, "malformed face ('f') line") from None
    return out


def read_obj(path: str | Path) -> ObjMesh:
    """Read an OBJ file into an :class:`ObjMesh` (triangles, per-vertex uvs, per-face material)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    # Literal-prefix regexes ("\nv ", "\nf ", ...) over the whole file: the regex engine scans for the
    # literal in C, several times faster than per-line Python tests or '^'-anchored multiline patterns.
    text = b"\n" + data.replace(b"\r", b"")
    verts = _table(_V_RE.findall(text), 3, path, "vertex ('v')")
    uv_table = _table(_VT_RE.findall(text), 2, path, "texture coordinate ('vt')")
    mtllibs = [m.strip().decode("utf-8", "replace") for m in _MTLLIB_RE.findall(text)]
    names: list[str] = []
    use_pos: list[int] = []
    use_mat: list[int] = []
    for m in _USEMTL_RE.finditer(text):
        name = m.group(1).strip().decode("utf-8", "replace")
        if name not in names:
            names.append(name)
        use_pos.append(m.start())
        use_mat.append(names.index(name))
    f_pos: list[int] = []
    f_rows: list[bytes] = []
    for m in _F_RE.finditer(text):
        f_pos.append(m.start())
        f_rows.append(m.group(1))

    tri_blocks: list[np.ndarray] = []
    mat_blocks: list[np.ndarray] = []
    if f_rows:
        counts = np.fromiter((len(r.split()) for r in f_rows), dtype=np.int64, count=len(f_rows))
        if counts.min() < 3:
            raise InputError(path, "face with fewer than 3 corners")
        corners = _parse_corners(b" ".join(f_rows).split(), path)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        # Fan triangulation (0, i, i+1), vectorised over polygons of any size.
        n_tri = counts - 2
        poly = np.repeat(np.arange(len(counts)), n_tri)
        k = np.arange(n_tri.sum()) - np.repeat(np.cumsum(n_tri) - n_tri, n_tri)
        base = starts[poly]
        idx = np.stack([base, base + k + 1, base + k + 2], axis=1)
        tri_blocks.append(corners[idx])  # (T, 3 corners, 3 [v, vt, vn])
        # material of a face = the last usemtl line above it (-1: none)
        which = np.searchsorted(np.asarray(use_pos, dtype=np.int64), np.asarray(f_pos, dtype=np.int64)) - 1
        table = np.asarray(use_mat + [-1], dtype=np.int32)  # index -1 -> the appended -1
        mat_blocks.append(table[which][poly])

    if not tri_blocks:
        raise InputError(path, "no faces")
    tris = np.concatenate(tri_blocks)
    face_material = np.concatenate(mat_blocks)
    if (tris[:, :, :2] < 0).any():
        raise InputError(path, "negative (relative) OBJ indices are not supported")
    v_idx = tris[:, :, 0] - 1
    if v_idx.min() < 0 or v_idx.max() >= len(verts):
        raise InputError(path, f"face refers to vertex {int(v_idx.max()) + 1} (or 0) but the file has {len(verts)} vertices")
    vt_idx = tris[:, :, 1] - 1  # -1 where absent
    if len(uv_table) and vt_idx.max() >= len(uv_table):
        raise InputError(path, f"face refers to texture coordinate {int(vt_idx.max()) + 1} but the file has {len(uv_table)}")

    if len(uv_table) == 0 or (vt_idx < 0).all():
        used, inverse = np.unique(v_idx.reshape(-1), return_inverse=True)
        return ObjMesh(verts[used], inverse.reshape(-1, 3).astype(np.int64), None, face_material, names, mtllibs)
    # One output vertex per distinct (position, uv) pair: the split that makes uvs per vertex.
    key = v_idx.reshape(-1) * (len(uv_table) + 1) + (vt_idx.reshape(-1) + 1)
    uniq, inverse = np.unique(key, return_inverse=True)
    pos = uniq // (len(uv_table) + 1)
    uvi = uniq % (len(uv_table) + 1) - 1
    uvs = np.where(uvi[:, None] >= 0, uv_table[np.clip(uvi, 0, None)], 0.0)
    return ObjMesh(verts[pos], inverse.reshape(-1, 3).astype(np.int64), uvs, face_material, names, mtllibs)


def read_mtl(path: str | Path) -> dict[str, MtlMaterial]:
    """Materials of an MTL file: diffuse colour ``Kd`` and diffuse map ``map_Kd`` (options skipped)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    mats: dict[str, MtlMaterial] = {}
    cur: MtlMaterial | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head, _, rest = line.partition(" ")
        rest = rest.strip()
        if head == "newmtl":
            cur = mats.setdefault(rest, MtlMaterial(rest))
        elif cur is None:
            continue
        elif head == "Kd":
            try:
                vals = [float(t) for t in rest.split()[:3]]
            except ValueError:
                raise InputError(path, f"malformed Kd line in material {cur.name!r}") from None
            if len(vals) == 3:
                cur.kd = (vals[0], vals[1], vals[2])
        elif head == "map_Kd" and rest:
            cur.map_kd = rest.split()[-1]  # the file name is last; options (-s, -o ...) come first
    return mats


def format_obj(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray | None, uv_faces: np.ndarray | None, mtllib: str | None, material: str | None, digits: int = 5) -> bytes:
    """OBJ text of one mesh: positions ``v``, texture coordinates ``vt`` with their own corner indices.

    ``uv_faces`` (F, 3) indexes ``uvs`` separately from ``faces`` indexing ``vertices``, so a writer can
    share positions between faces with different uvs (as exported models do). Deterministic output:
    fixed precision, no timestamps.
    """
    fmt = f"%.{digits}f"
    out: list[str] = ["# nerfseg demo model\n"]
    if mtllib:
        out.append(f"mtllib {mtllib}\n")
    v = np.asarray(vertices, dtype=np.float64)
    out.append("".join("v " + " ".join(fmt % c for c in row) + "\n" for row in v.tolist()))
    f = np.asarray(faces, dtype=np.int64) + 1
    if uvs is not None and uv_faces is not None:
        out.append("".join("vt " + " ".join(fmt % c for c in row) + "\n" for row in np.asarray(uvs, dtype=np.float64).tolist()))
    if material:
        out.append(f"usemtl {material}\n")
    if uvs is not None and uv_faces is not None:
        ft = np.asarray(uv_faces, dtype=np.int64) + 1
        out.append("".join(f"f {a}/{ta} {b}/{tb} {c}/{tc}\n" for (a, b, c), (ta, tb, tc) in zip(f.tolist(), ft.tolist())))
    else:
        out.append("".join(f"f {a} {b} {c}\n" for a, b, c in f.tolist()))
    zero = fmt % 0.0
    text = "".join(out).replace("-" + zero, zero)  # no negative zeros: same bytes on every platform
    return text.encode("ascii")
