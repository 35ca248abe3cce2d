"""3D-FRONT / 3D-FUTURE geometry: architecture meshes with their materials, and 3D-FUTURE models (OBJ + texture).

Opened only by the per-scene loader (:func:`nerfseg.dataset_tools.front3d.load_house`), never by planning.
Everything is returned in nerfseg's z-up frame except :class:`FutureModel`, which stays in its y-up model frame
until the loader places it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from nerfseg.dataset_tools.boxes import Y_UP_TO_Z_UP
from nerfseg.dataset_tools.front3d_plan import (
    MESH_MALFORMED,
    MODEL_MTL,
    MODEL_UNREADABLE,
    RAW_MODEL_OBJ,
    TEX_BY_JID,
    TEX_BY_URL,
    TEX_COLOUR,
    TEX_FALLBACK,
    TEXTURE_CORRUPT,
    TEXTURE_MISSING,
    TEXTURE_PNG,
    IssueLog,
    plain_name,
)
from nerfseg.dataset_tools.obj import read_mtl, read_obj
from nerfseg.dataset_tools.scene import MeshPart
from nerfseg.errors import InputError

CEILING_LIGHT_STRENGTH = 1.0  # reference fork: load_front3d(ceiling_light_strength=1)
LAMP_LIGHT_STRENGTH = 30.0  # reference fork: load_front3d(lamp_light_strength=30)
LIGHT_BAND_STRENGTH = 10.0  # ours: LightBand panels are the demo's main lights (small area, so brighter)


def _read_texture(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))



class TextureCache:
    """Texture cache for one house (the same jid is used by many meshes); failures become issues."""

    def __init__(self, issues: IssueLog):
        self._cache: dict[Path, np.ndarray | None] = {}
        self._issues = issues

    def get(self, path: Path, owner: str) -> np.ndarray | None:
        """The texture at ``path`` or None when absent; a corrupt file is an issue naming ``owner``."""
        if path not in self._cache:
            try:
                self._cache[path] = _read_texture(path)
            except FileNotFoundError:
                self._cache[path] = None
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:  # PIL's ways of failing
                self._issues.add(TEXTURE_CORRUPT, owner, f"texture {path} cannot be decoded ({type(exc).__name__}); using the colour")
                self._cache[path] = None
        return self._cache[path]


# ---------------------------------------------------------------------------------------------
# Architecture meshes


def _material_look(mat: Mapping[str, Any] | None, texture_dir: Path | None, textures: TextureCache, issues: IssueLog) -> tuple[np.ndarray | None, tuple[float, float, float], np.ndarray | None, str]:
    """(texture, RGB colour in [0, 1], uv 2x2 scale, outcome) of a 3D-FRONT material entry.

    As the real release stores them: ``texture_dir/<material jid>/texture.png`` first (many wall and
    floor materials have an empty ``texture`` URL and are reachable only this way), then the folder name
    of the URL (never downloaded), then the RGBA ``color`` (0-255). A texture that was named (a jid or a
    URL) but is not found is an issue; nothing is silently white.
    """
    if mat is None:
        return None, (0.8, 0.8, 0.8), None, TEX_COLOUR
    colour = (0.8, 0.8, 0.8)
    rgba = mat.get("color")
    if isinstance(rgba, (list, tuple)) and len(rgba) >= 3:
        try:
            colour = tuple(float(np.clip(float(c) / 255.0, 0.0, 1.0)) for c in rgba[:3])  # type: ignore[assignment]
        except (TypeError, ValueError):
            pass
    uv_scale = None
    uvt = mat.get("UVTransform")
    if uvt is not None:
        try:
            uv_scale = np.asarray(uvt, dtype=np.float64).reshape(3, 3)[:2, :2]
            if not np.all(np.isfinite(uv_scale)):
                uv_scale = None
        except (TypeError, ValueError):
            uv_scale = None
    jid = str(mat.get("jid") or "")
    url = str(mat.get("texture") or "")
    parts = url.rstrip("/").split("/")
    url_folder = parts[-2] if len(parts) >= 2 else ""
    candidates = []
    if plain_name(jid):
        candidates.append((texture_dir / jid / TEXTURE_PNG if texture_dir else None, TEX_BY_JID))
    if plain_name(url_folder) and url_folder != jid:
        candidates.append((texture_dir / url_folder / TEXTURE_PNG if texture_dir else None, TEX_BY_URL))
    if not candidates:
        return None, colour, uv_scale, TEX_COLOUR
    owner = f"material {mat.get('uid')!r} (jid {jid!r})"
    for cand, outcome in candidates:
        tex = textures.get(cand, owner) if cand is not None else None
        if tex is not None:
            return tex, colour, uv_scale, outcome
    where = "no --texture folder given" if texture_dir is None else f"not found under {texture_dir} by jid or URL folder"
    issues.add(TEXTURE_MISSING, f"material {mat.get('uid')!r} (jid {jid!r})", f"texture {where}; using the material colour")
    return None, colour, uv_scale, TEX_FALLBACK


def arch_part(mesh: Mapping[str, Any], i: int, materials: Mapping[str, Mapping[str, Any]], texture_dir: Path | None, textures: TextureCache, issues: IssueLog, tex_outcome: dict[str, str]) -> MeshPart | None:
    """One architecture mesh as a MeshPart (z-up), or None (with an issue) when it cannot be used."""
    uid = str(mesh.get("uid", f"mesh[{i}]"))
    kind = str(mesh.get("type") or "").strip() or "void"
    try:
        xyz = np.asarray(mesh["xyz"], dtype=np.float64).reshape(-1)
        faces = np.asarray(mesh["faces"], dtype=np.int64).reshape(-1)
    except (KeyError, TypeError, ValueError):
        issues.add(MESH_MALFORMED, f"mesh {uid}", "xyz/faces missing or not flat lists of numbers; skipped")
        return None
    if xyz.size % 3 or faces.size % 3:
        issues.add(MESH_MALFORMED, f"mesh {uid}", f"xyz has {xyz.size} and faces {faces.size} values (not multiples of 3); skipped")
        return None
    verts = xyz.reshape(-1, 3)
    tris = faces.reshape(-1, 3)
    if len(tris) == 0 or len(verts) == 0:
        return None  # real houses have empty meshes (e.g. removed openings): nothing to draw, nothing broken
    if not np.all(np.isfinite(verts)) or tris.min() < 0 or tris.max() >= len(verts):
        issues.add(MESH_MALFORMED, f"mesh {uid}", f"non-finite vertices or face index out of range for {len(verts)} vertices; skipped")
        return None
    uvs = None
    raw_uv = mesh.get("uv")
    if raw_uv:
        try:
            uv = np.asarray(raw_uv, dtype=np.float64)
        except (TypeError, ValueError):
            uv = None
        if uv is not None and uv.size == 2 * len(verts) and np.all(np.isfinite(uv)):
            uvs = uv.reshape(-1, 2)
        else:
            issues.add(MESH_MALFORMED, f"mesh {uid}", f"{np.size(raw_uv)} uv values for {len(verts)} vertices; mesh left untextured")
    mat_uid = mesh.get("material")
    if mat_uid is None:
        return None  # the reference loader skips meshes without a material too (not an input error)
    mat = materials.get(str(mat_uid))
    texture, colour, uv_scale, outcome = _material_look(mat, texture_dir, textures, issues)
    tex_outcome.setdefault(str(mat_uid), outcome)
    if texture is not None and uvs is None:
        texture = None  # nothing to map it with: fall back to the material colour
    if texture is not None:
        colour = (1.0, 1.0, 1.0)  # as the reference loader: the texture replaces the colour
    if uvs is not None and uv_scale is not None:
        uvs = uvs @ uv_scale.T
    low = kind.lower()
    emissive = LIGHT_BAND_STRENGTH if low == "lightband" else (CEILING_LIGHT_STRENGTH if "ceiling" in low else 0.0)
    return MeshPart(
        name=f"{kind}:{uid}",
        vertices=verts @ Y_UP_TO_Z_UP.T,
        faces=tris,
        uvs=uvs,
        texture=texture,
        color=colour,
        instance_id=0,
        class_index=0,
        kind=kind,
        emissive=emissive,
    )


def floor_outlines(parts: list[MeshPart], weld: float = 1e-3) -> list[np.ndarray]:
    """xy outlines (closed loops, (K, 2)) of a set of floor meshes: their boundary edges, chained.

    Vertices closer than ``weld`` metres are merged first (3D-FRONT floors often repeat vertices per
    triangle); an edge used by exactly one triangle is on the boundary.
    """
    if not parts:
        return []
    xy = np.concatenate([p.vertices[:, :2] for p in parts])
    offs = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    tris = np.concatenate([p.faces + o for p, o in zip(parts, offs)])
    keys, inverse = np.unique(np.round(xy / weld).astype(np.int64), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    pts = keys * weld
    t = inverse[tris]
    t = t[(t[:, 0] != t[:, 1]) & (t[:, 1] != t[:, 2]) & (t[:, 0] != t[:, 2])]
    edges = np.sort(np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]]), axis=1)
    uniq, counts = np.unique(edges, axis=0, return_counts=True)
    boundary = uniq[counts == 1]
    nbrs: dict[int, list[int]] = {}
    for a, b in boundary.tolist():
        nbrs.setdefault(a, []).append(b)
        nbrs.setdefault(b, []).append(a)
    loops: list[np.ndarray] = []
    used: set[tuple[int, int]] = set()
    for a, b in boundary.tolist():
        if (a, b) in used:
            continue
        loop = [a]
        prev, cur = a, b
        used.add((min(a, b), max(a, b)))
        while cur != a:
            loop.append(cur)
            nxt = [n for n in nbrs[cur] if (min(cur, n), max(cur, n)) not in used]
            if not nxt:
                break
            prev, cur = cur, nxt[0]
            used.add((min(prev, cur), max(prev, cur)))
        if len(loop) >= 3:
            loops.append(pts[loop])
    return loops


# ---------------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------------
# 3D-FUTURE models


@dataclass
class FutureModel:
    vertices: np.ndarray  # (V,3) model frame (y-up)
    groups: list[tuple[np.ndarray, tuple[float, float, float]]]  # (faces, colour) per material (one group when textured)
    uvs: np.ndarray | None
    texture: np.ndarray | None


def load_future_model(folder: Path, textures: TextureCache, issues: IssueLog) -> FutureModel | None:
    """raw_model.obj with texture.png of its folder (the reference uses texture.png for every material).

    None (with an issue) when the OBJ cannot be parsed, has no faces or has non-finite vertices. A
    missing or corrupt texture is an issue too; the model then keeps its MTL colours.
    """
    jid = folder.name
    try:
        obj = read_obj(folder / RAW_MODEL_OBJ)
    except InputError as exc:
        issues.add(MODEL_UNREADABLE, jid, f"{RAW_MODEL_OBJ}: {exc.problem}; furniture skipped")
        return None
    except (OSError, MemoryError, ValueError) as exc:
        issues.add(MODEL_UNREADABLE, jid, f"{RAW_MODEL_OBJ}: {type(exc).__name__}: {exc}; furniture skipped")
        return None
    if len(obj.faces) == 0:
        issues.add(MODEL_UNREADABLE, jid, f"{RAW_MODEL_OBJ}: no faces; furniture skipped")
        return None
    if not np.all(np.isfinite(obj.vertices)):
        issues.add(MODEL_UNREADABLE, jid, f"{RAW_MODEL_OBJ}: NaN or infinite vertex coordinates; furniture skipped")
        return None
    uvs = obj.uvs if obj.uvs is not None and np.all(np.isfinite(obj.uvs)) else None
    mats = {}
    for mtl in [folder / m for m in obj.mtllibs if plain_name(m)] + [folder / MODEL_MTL]:
        if mtl.is_file():
            try:
                mats = read_mtl(mtl)
            except InputError as exc:
                issues.add(MODEL_UNREADABLE, jid, f"{mtl.name}: {exc.problem}; material colours ignored")
            break
    texture = None
    if uvs is not None:
        texture = textures.get(folder / TEXTURE_PNG, jid)
        if texture is None:
            for name in obj.material_names:
                m = mats.get(name)
                if m is not None and m.map_kd and plain_name(m.map_kd):
                    texture = textures.get(folder / m.map_kd, jid)
                    if texture is not None:
                        break
        if texture is None and (folder / TEXTURE_PNG).exists() is False and any(mats.get(n) is not None and mats[n].map_kd for n in obj.material_names):
            issues.add(TEXTURE_MISSING, jid, f"{TEXTURE_PNG} missing in the model folder; using the MTL colours")
    if texture is not None:
        return FutureModel(obj.vertices, [(obj.faces, (1.0, 1.0, 1.0))], uvs, texture)
    groups = []
    for k in np.unique(obj.face_material).tolist():
        name = obj.material_names[k] if k >= 0 else None
        kd = mats[name].kd if name in mats else (0.8, 0.8, 0.8)
        groups.append((obj.faces[obj.face_material == k], tuple(float(np.clip(c, 0, 1)) for c in kd)))
    return FutureModel(obj.vertices, groups, uvs, None)  # type: ignore[arg-type]

