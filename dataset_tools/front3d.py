"""3D-FRONT / 3D-FUTURE loader: one house JSON -> one :class:`~dataset_tools.scene.Scene` per kept room.

Real data and the procedural demo (dataset_tools/demo.py) go through this same code, so the demo
exercises every step a real build takes (see ../shared/FRONT3D_FORMAT.md for the on-disk layout).

Coordinate frames. 3D-FRONT is y-up; nerfseg's world is z-up. Everything (architecture vertices,
furniture positions and rotations) is mapped with the proper rotation ``(x, y, z) -> (x, -z, y)``
(+90 degrees about +x, :data:`dataset_tools.boxes.Y_UP_TO_Z_UP`). A furniture child places its model as

    v_world_yup = R(rot) @ (v_model * scale) + pos        (rot = quaternion [x, y, z, w])
    v_world_zup = C @ v_world_yup,  C = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]

so the model->world map is ``M = C @ R @ diag(scale)`` plus ``C @ pos``. BlenderProc swaps y and z
instead (a mirror that flips handedness); we do not copy that.

Furniture is loaded whenever its model folder exists, whatever its ``valid`` flag says (as the
reference BlenderProc loader; the official toolbox drops ``valid: false`` entries, which in practice
are the ones without a model). Room and object selection follows the reference (anchors section 2.3): a room's box is the xy
bounds of its Floor meshes and the z-range floor..ceiling; an object is a labelled instance of the
room only if its world AABB lies fully inside that box (with a small tolerance) and its box volume is
at least 1e-6 m^3. Objects that fail are kept as unlabelled background geometry by default (the
reference still rendered them, with instance id 0), or dropped (``RoomFilter.outside_objects``).
Walls, floors, ceilings, trim and light bands are background (instance 0, class 0).

Lighting hints (``MeshPart.emissive``), the reference BlenderProc settings (ceiling strength 1,
lamps 30) plus LightBand panels: any mesh whose type contains "ceiling" emits
:data:`CEILING_LIGHT_STRENGTH`, ``LightBand`` meshes emit :data:`LIGHT_BAND_STRENGTH`, and furniture of
class lamp emits :data:`LAMP_LIGHT_STRENGTH`. The renderer decides how to turn these into light.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dataset_tools.boxes import Y_UP_TO_Z_UP, aabb_contains, aabb_from_points, aabb_volume, obb_from_points, quat_xyzw_to_matrix, yaw_from_linear
from dataset_tools.obj import read_mtl, read_obj
from dataset_tools.scene import MeshPart, ObjectInstance, Scene
from nerfseg import spec
from nerfseg.errors import InputError
from nerfseg.spec import read_json

MODEL_INFO_JSON = "model_info.json"
RAW_MODEL_OBJ = "raw_model.obj"
MODEL_MTL = "model.mtl"
TEXTURE_PNG = "texture.png"

#: Models the reference loader skips because Blender cannot read them (BlenderProc Front3DLoader).
BROKEN_MODELS = frozenset({"7e101ef3-7722-4af8-90d5-7c562834fabd"})

CEILING_LIGHT_STRENGTH = 1.0  # reference fork: load_front3d(ceiling_light_strength=1)
LAMP_LIGHT_STRENGTH = 30.0  # reference fork: load_front3d(lamp_light_strength=30)
LIGHT_BAND_STRENGTH = 10.0  # ours: LightBand panels are the demo's main lights (small area, so brighter)
DEFAULT_ROOM_HEIGHT = 2.8  # used only when a room has neither ceiling nor walls to measure

LAMP_CLASS = spec.CLASS_INDEX_BY_NAME["lamp"]


@dataclass(frozen=True)
class RoomFilter:
    """Which rooms become scenes and which objects become instances (recorded in benchmark.json)."""

    min_floor_area_m2: float = 6.0
    min_objects: int = 3
    max_objects: int = 25
    room_types: tuple[str, ...] | None = None  # None = every room type
    min_object_volume_m3: float = 1e-6  # reference seg.py:build_metadata
    containment_tol_m: float = 0.05  # slack of the "fully inside the room box" test
    outside_objects: str = "background"  # "background" (rendered, id 0, as the reference) or "drop"

    def __post_init__(self) -> None:
        if self.outside_objects not in ("background", "drop"):
            raise InputError(None, f"RoomFilter.outside_objects must be 'background' or 'drop', got {self.outside_objects!r}")
        if self.room_types is not None:
            object.__setattr__(self, "room_types", tuple(self.room_types))


@dataclass
class LoadedHouse:
    """The kept rooms of one house, and why the others were dropped."""

    scenes: list[Scene]
    dropped_rooms: list[tuple[str, str]]  # (room instanceid, reason)
    missing_models: list[str]  # 3D-FUTURE jids referenced but without a model folder (unique, first-seen order)
    warnings: list[str]
    house_id: str = ""


# ---------------------------------------------------------------------------------------------
# Folder listing and model_info


def iter_houses(front3d_dir: str | Path, houses: list[str] | None = None) -> list[tuple[int, Path]]:
    """``(house_index, path)`` of house JSONs, in sorted file-name order.

    ``house_index`` is the position in the sorted listing of *every* ``*.json`` of the folder (the
    reference's ``scene_idx``), also when only a subset is requested, so scene ids are stable.
    ``houses`` names files by uid (file stem) or file name; an unknown name is an error.
    """
    folder = Path(front3d_dir)
    if not folder.is_dir():
        raise InputError(folder, "3D-FRONT folder not found (expected a folder of house .json files)")
    files = sorted((p for p in folder.iterdir() if p.suffix == ".json" and p.is_file()), key=lambda p: p.name)
    if not files:
        raise InputError(folder, "no house .json files in the 3D-FRONT folder")
    indexed = list(enumerate(files))
    if houses is None:
        return indexed
    by_name = {p.name: (i, p) for i, p in indexed}
    by_name.update({p.stem: (i, p) for i, p in indexed})
    unknown = [h for h in houses if h not in by_name]
    if unknown:
        raise InputError(folder, f"requested houses not found: {', '.join(sorted(unknown))}")
    chosen = {by_name[h][0] for h in houses}
    return [(i, p) for i, p in indexed if i in chosen]


@lru_cache(maxsize=4)
def _model_info_cached(path: str, mtime_ns: int, size: int) -> dict[str, tuple[str | None, str | None]]:
    data = read_json(path)
    if not isinstance(data, list):
        raise InputError(path, "expected a JSON list of models ({model_id, super-category, category, ...})")
    out: dict[str, tuple[str | None, str | None]] = {}
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise InputError(path, "entry is not an object", key=f"[{i}]")
        if "model_id" not in entry:
            raise InputError(path, "missing key", key=f"[{i}].model_id")
        out[str(entry["model_id"])] = (entry.get("category") or None, entry.get("super-category") or None)
    return out


def load_model_info(future_dir: str | Path) -> dict[str, tuple[str | None, str | None]]:
    """``model_id -> (category, super-category)`` from the single 3D-FUTURE ``model_info.json``.

    Cached on (path, mtime, size): a build loads many houses against the same 16k-entry list.
    """
    path = Path(future_dir) / MODEL_INFO_JSON
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(path, "3D-FUTURE model_info.json not found (is --future the 3D-FUTURE-model folder?)") from None
    return _model_info_cached(str(path), st.st_mtime_ns, st.st_size)


# ---------------------------------------------------------------------------------------------
# Small parsing helpers that name the file and the key


def _need(d: Mapping[str, Any], key: str, path: Path, where: str) -> Any:
    if not isinstance(d, Mapping):
        raise InputError(path, "expected a JSON object", key=where)
    if key not in d:
        raise InputError(path, "missing key", key=f"{where}.{key}" if where else key)
    return d[key]


def _vec(value: Any, n: int, path: Path, key: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(path, f"expected {n} numbers", key=key) from None
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise InputError(path, f"expected {n} finite numbers, got {value!r}", key=key)
    return arr


def _plain_name(name: str) -> bool:
    """A jid used as a folder name must be one path component (no '..', no separators)."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name


def _read_texture(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


class _Textures:
    """Texture cache for one house (the same jid is used by many meshes); failures become warnings."""

    def __init__(self, warnings: list[str]):
        self._cache: dict[Path, np.ndarray | None] = {}
        self._warnings = warnings

    def get(self, path: Path) -> np.ndarray | None:
        if path not in self._cache:
            try:
                self._cache[path] = _read_texture(path)
            except FileNotFoundError:
                self._cache[path] = None
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:  # PIL's ways of failing
                self._warnings.append(f"{path}: unreadable texture ({type(exc).__name__}); using the material colour")
                self._cache[path] = None
        return self._cache[path]


# ---------------------------------------------------------------------------------------------
# Architecture meshes


def _material_look(mat: Mapping[str, Any] | None, texture_dir: Path | None, textures: _Textures, warned: set[str], warnings: list[str], house: Path) -> tuple[np.ndarray | None, tuple[float, float, float], np.ndarray | None]:
    """(texture, RGBA colour as RGB in [0, 1], uv 2x2 scale) of a 3D-FRONT material entry.

    As the reference loader: a texture is used only when the material names one (a non-empty
    ``texture`` URL, never downloaded); it is looked up as ``texture_dir/<jid>/texture.png`` and then
    under the URL's folder name. Without a texture the RGBA ``color`` (0-255) is the colour.
    """
    if mat is None:
        return None, (0.8, 0.8, 0.8), None
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
            m = np.asarray(uvt, dtype=np.float64).reshape(3, 3)
            uv_scale = m[:2, :2]
        except (TypeError, ValueError):
            warnings.append(f"{house}: material {mat.get('uid')!r} has a malformed UVTransform; ignored")
    url = mat.get("texture") or ""
    if not url or texture_dir is None:
        return None, colour, uv_scale
    candidates = []
    jid = str(mat.get("jid") or "")
    if _plain_name(jid):
        candidates.append(texture_dir / jid / TEXTURE_PNG)
    parts = str(url).rstrip("/").split("/")
    if len(parts) >= 2 and _plain_name(parts[-2]):
        candidates.append(texture_dir / parts[-2] / TEXTURE_PNG)
    for cand in candidates:
        tex = textures.get(cand)
        if tex is not None:
            return tex, colour, uv_scale
    key = jid or url
    if key not in warned:
        warned.add(key)
        warnings.append(f"{house}: texture of material jid {jid!r} not found under {texture_dir}; using its colour")
    return None, colour, uv_scale


def _arch_part(mesh: Mapping[str, Any], i: int, materials: Mapping[str, Mapping[str, Any]], texture_dir: Path | None, textures: _Textures, warned: set[str], warnings: list[str], house: Path) -> MeshPart | None:
    where = f"mesh[{i}]"
    kind = str(mesh.get("type") or "").strip() or "void"
    try:
        xyz = np.asarray(_need(mesh, "xyz", house, where), dtype=np.float64)
        faces = np.asarray(_need(mesh, "faces", house, where), dtype=np.int64)
    except (TypeError, ValueError):
        raise InputError(house, "xyz/faces must be flat lists of numbers", key=where) from None
    if xyz.size % 3 or faces.size % 3:
        raise InputError(house, f"xyz has {xyz.size} and faces {faces.size} values; both must be multiples of 3", key=where)
    verts = xyz.reshape(-1, 3)
    tris = faces.reshape(-1, 3)
    if len(tris) == 0 or len(verts) == 0:
        return None
    if tris.min() < 0 or tris.max() >= len(verts):
        raise InputError(house, f"face index {int(tris.max())} out of range for {len(verts)} vertices", key=f"{where}.faces")
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
            warnings.append(f"{house} [{where}.uv]: {np.size(raw_uv)} uv values for {len(verts)} vertices; mesh left untextured")
    mat_uid = mesh.get("material")
    if mat_uid is None:
        warnings.append(f"{house} [{where}]: {kind} mesh has no material (skipped, as the reference loader does)")
        return None
    mat = materials.get(str(mat_uid))
    texture, colour, uv_scale = _material_look(mat, texture_dir, textures, warned, warnings, house)
    if texture is not None and uvs is None:
        texture = None  # nothing to map it with: fall back to the material colour
    if texture is not None:
        colour = (1.0, 1.0, 1.0)  # as the reference loader: the texture replaces the colour
    if uvs is not None and uv_scale is not None:
        uvs = uvs @ uv_scale.T
    low = kind.lower()
    emissive = LIGHT_BAND_STRENGTH if low == "lightband" else (CEILING_LIGHT_STRENGTH if "ceiling" in low else 0.0)
    return MeshPart(
        name=f"{kind}:{mesh.get('uid', i)}",
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


def _triangle_area_xy(parts: list[MeshPart]) -> float:
    total = 0.0
    for p in parts:
        a, b, c = (p.vertices[p.faces[:, k], :2] for k in range(3))
        total += 0.5 * float(np.abs((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])).sum())
    return total


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
# 3D-FUTURE models


@dataclass
class _Model:
    vertices: np.ndarray  # (V,3) model frame (y-up)
    groups: list[tuple[np.ndarray, tuple[float, float, float]]]  # (faces, colour) per material (one group when textured)
    uvs: np.ndarray | None
    texture: np.ndarray | None


def _load_model(folder: Path, textures: _Textures) -> _Model:
    """raw_model.obj with texture.png of its folder (the reference uses texture.png for every material)."""
    obj = read_obj(folder / RAW_MODEL_OBJ)
    mats = {}
    mtl_names = [folder / m for m in obj.mtllibs] + [folder / MODEL_MTL]
    for mtl in mtl_names:
        if mtl.is_file():
            mats = read_mtl(mtl)
            break
    texture = textures.get(folder / TEXTURE_PNG) if obj.uvs is not None else None
    if texture is None and obj.uvs is not None:
        for name in obj.material_names:
            m = mats.get(name)
            if m is not None and m.map_kd:
                texture = textures.get(folder / m.map_kd)
                if texture is not None:
                    break
    if texture is not None:
        return _Model(obj.vertices, [(obj.faces, (1.0, 1.0, 1.0))], obj.uvs, texture)
    groups = []
    for k in np.unique(obj.face_material).tolist():
        name = obj.material_names[k] if k >= 0 else None
        kd = mats[name].kd if name in mats else (0.8, 0.8, 0.8)
        groups.append((obj.faces[obj.face_material == k], tuple(float(np.clip(c, 0, 1)) for c in kd)))
    return _Model(obj.vertices, groups, obj.uvs, None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The house


def load_house(
    house_json: str | Path,
    future_dir: str | Path,
    texture_dir: str | Path | None,
    house_index: int,
    room_filter: RoomFilter = RoomFilter(),
    *,
    model_info: Mapping[str, tuple[str | None, str | None]] | None = None,
) -> LoadedHouse:
    """Load one 3D-FRONT house and return one :class:`Scene` per room that passes ``room_filter``.

    ``scene_id = 3dfront_{house_index:04d}_{room_index:02d}`` with ``room_index`` the room's position
    in ``scene.room[]``. Instances are numbered 1..N in the room's children order. Furniture whose
    3D-FUTURE folder is missing is skipped with a warning naming the jid (and listed in
    ``missing_models``); an unknown (category, super-category) raises UnknownCategoryError naming
    model_info.json; malformed JSON or a missing required key raises InputError naming the file/key.
    """
    house = Path(house_json)
    future_dir = Path(future_dir)
    texture_dir = None if texture_dir is None else Path(texture_dir)
    data = read_json(house)
    if not isinstance(data, dict):
        raise InputError(house, "expected a JSON object (a 3D-FRONT house)")
    house_id = str(_need(data, "uid", house, ""))
    furniture = _need(data, "furniture", house, "")
    meshes = _need(data, "mesh", house, "")
    materials_list = data.get("material", [])
    scene_d = _need(data, "scene", house, "")
    rooms = _need(scene_d, "room", house, "scene")
    for key, val in (("furniture", furniture), ("mesh", meshes), ("material", materials_list), ("scene.room", rooms)):
        if not isinstance(val, list):
            raise InputError(house, "expected a list", key=key)
    info = model_info if model_info is not None else load_model_info(future_dir)
    info_path = future_dir / MODEL_INFO_JSON

    furniture_by_uid: dict[str, Mapping[str, Any]] = {}
    for i, f in enumerate(furniture):
        uid = str(_need(f, "uid", house, f"furniture[{i}]"))
        _need(f, "jid", house, f"furniture[{i}]")
        furniture_by_uid.setdefault(uid, f)
    mesh_by_uid: dict[str, tuple[int, Mapping[str, Any]]] = {}
    for i, m in enumerate(meshes):
        mesh_by_uid.setdefault(str(_need(m, "uid", house, f"mesh[{i}]")), (i, m))
    materials = {str(m.get("uid")): m for m in materials_list if isinstance(m, Mapping)}

    warnings: list[str] = []
    textures = _Textures(warnings)
    warned_tex: set[str] = set()
    arch_cache: dict[str, MeshPart | None] = {}
    model_cache: dict[str, _Model | None] = {}
    missing: list[str] = []
    scenes: list[Scene] = []
    dropped: list[tuple[str, str]] = []
    rf = room_filter

    for r, room in enumerate(rooms):
        where = f"scene.room[{r}]"
        room_type = str(_need(room, "type", house, where))
        room_name = str(room.get("instanceid") or f"room{r}")
        children = _need(room, "children", house, where)
        if not isinstance(children, list):
            raise InputError(house, "expected a list", key=f"{where}.children")
        if rf.room_types is not None and room_type not in rf.room_types:
            dropped.append((room_name, f"room type {room_type} not in {list(rf.room_types)}"))
            continue
        room_warn: list[str] = []
        arch: list[MeshPart] = []
        furn: list[tuple[int, Mapping[str, Any]]] = []
        unknown_refs = 0
        for j, child in enumerate(children):
            ref = str(_need(child, "ref", house, f"{where}.children[{j}]"))
            if ref in furniture_by_uid:
                furn.append((j, child))
            elif ref in mesh_by_uid:
                if ref not in arch_cache:
                    mi, mesh = mesh_by_uid[ref]
                    arch_cache[ref] = _arch_part(mesh, mi, materials, texture_dir, textures, warned_tex, warnings, house)
                part = arch_cache[ref]
                if part is not None:
                    arch.append(part)
            else:
                unknown_refs += 1
        if unknown_refs:
            room_warn.append(f"{house} [{where}]: {unknown_refs} children refer to neither furniture nor mesh uids (ignored)")

        floors = [p for p in arch if "floor" in p.kind.lower()]
        if not floors:
            dropped.append((room_name, "no Floor mesh"))
            warnings.extend(room_warn)
            continue
        area = _triangle_area_xy(floors)
        if area < rf.min_floor_area_m2:
            dropped.append((room_name, f"floor area {area:.2f} m^2 < {rf.min_floor_area_m2}"))
            warnings.extend(room_warn)
            continue
        floor_pts = np.concatenate([p.vertices for p in floors])
        zmin = float(floor_pts[:, 2].min())
        ceilings = [p for p in arch if "ceiling" in p.kind.lower()]
        tops = ceilings or arch
        zmax = max(float(p.vertices[:, 2].max()) for p in tops)
        if zmax - zmin < 1.5:
            room_warn.append(f"{house} [{where}]: no ceiling or walls to measure the room height; using {DEFAULT_ROOM_HEIGHT} m")
            zmax = zmin + DEFAULT_ROOM_HEIGHT
        room_bbox = np.array([[*floor_pts[:, :2].min(axis=0), zmin], [*floor_pts[:, :2].max(axis=0), zmax]])

        parts: list[MeshPart] = list(arch)
        instances: list[ObjectInstance] = []
        for j, child in furn:
            ckey = f"{where}.children[{j}]"
            ref = str(child["ref"])
            f = furniture_by_uid[ref]
            jid = str(f["jid"])
            if jid in BROKEN_MODELS:
                room_warn.append(f"{house} [{ckey}]: 3D-FUTURE model {jid} is known to be broken; skipped (as the reference)")
                continue
            if jid not in model_cache:
                folder = future_dir / jid
                ok = _plain_name(jid) and (folder / RAW_MODEL_OBJ).is_file()
                model_cache[jid] = _load_model(folder, textures) if ok else None
            model = model_cache[jid]
            if model is None:
                if jid not in missing:
                    missing.append(jid)
                flag = " (marked valid: false in the house)" if f.get("valid") is False else ""
                room_warn.append(f"{house} [{ckey}]: 3D-FUTURE model {jid} not found in {future_dir}; furniture {ref} skipped{flag}")
                continue
            pos = _vec(_need(child, "pos", house, ckey), 3, house, f"{ckey}.pos")
            rot = _vec(_need(child, "rot", house, ckey), 4, house, f"{ckey}.rot")
            scale = _vec(child.get("scale", [1.0, 1.0, 1.0]), 3, house, f"{ckey}.scale")
            try:
                rmat = quat_xyzw_to_matrix(rot)
            except ValueError as exc:
                raise InputError(house, str(exc), key=f"{ckey}.rot") from None
            lin = Y_UP_TO_Z_UP @ rmat @ np.diag(scale)
            verts = model.vertices @ lin.T + Y_UP_TO_Z_UP @ pos
            mirrored = np.linalg.det(lin) < 0
            aabb = aabb_from_points(verts)

            label = f.get("category") or f.get("title") or "furniture"
            cat_pair = info.get(jid)
            class_index = 0
            reason = ""
            if cat_pair is None:
                reason = f"model {jid} is not in {info_path.name}"
            else:
                class_index = spec.category_to_class(cat_pair[0], cat_pair[1], source=info_path)
                if aabb_volume(aabb) < rf.min_object_volume_m3:
                    reason = f"box volume {aabb_volume(aabb):.2e} m^3 below {rf.min_object_volume_m3}"
                elif not aabb_contains(room_bbox, aabb, rf.containment_tol_m):
                    reason = "not fully inside the room box"
            if reason:
                if rf.outside_objects == "drop" and reason == "not fully inside the room box":
                    continue
                room_warn.append(f"{house} [{ckey}]: {label} ({jid}) kept as unlabelled background: {reason}")
                inst_id, cls = 0, 0
            else:
                inst_id, cls = len(instances) + 1, class_index
                instances.append(
                    ObjectInstance(
                        instance_id=inst_id,
                        class_index=cls,
                        nyu40_id=int(spec.NYU40_IDS[cls]),  # type: ignore[arg-type]
                        category=cat_pair[0],  # type: ignore[index]
                        super_category=cat_pair[1],  # type: ignore[index]
                        jid=jid,
                        uid=ref,
                        aabb=aabb,
                        obb=obb_from_points(verts, yaw_from_linear(lin)),
                    )
                )
            for g, (gfaces, colour) in enumerate(model.groups):
                parts.append(
                    MeshPart(
                        name=f"{label}#{inst_id}:{jid}" + (f":{g}" if len(model.groups) > 1 else ""),
                        vertices=verts,
                        faces=gfaces[:, ::-1].copy() if mirrored else gfaces,
                        uvs=model.uvs,
                        texture=model.texture,
                        color=colour,
                        instance_id=inst_id,
                        class_index=cls,
                        kind="furniture",
                        emissive=LAMP_LIGHT_STRENGTH if (cls == LAMP_CLASS or "lamp" in str(label).lower()) else 0.0,
                    )
                )

        warnings.extend(room_warn)
        n = len(instances)
        if n < rf.min_objects or n > rf.max_objects:
            dropped.append((room_name, f"{n} objects (need {rf.min_objects}..{rf.max_objects})"))
            continue
        scenes.append(
            Scene(
                scene_id=f"3dfront_{house_index:04d}_{r:02d}",
                house_id=house_id,
                room_type=room_type,
                room_bbox=room_bbox,
                parts=parts,
                instances=instances,
                floor_polygons=floor_outlines(floors),
                warnings=room_warn,
            )
        )
    return LoadedHouse(scenes=scenes, dropped_rooms=dropped, missing_models=missing, warnings=warnings, house_id=house_id)

