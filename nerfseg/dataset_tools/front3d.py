"""3D-FRONT / 3D-FUTURE loader: one house JSON -> one :class:`~nerfseg.dataset_tools.scene.Scene` per kept room.

Real data and the procedural demo (nerfseg/dataset_tools/demo.py) go through this same code, so the demo
exercises every step a real build takes (docs/front3d.md describes the on-disk layout and every
choice below).

Two stages, so a build over thousands of houses scales:

* :func:`read_house` (planning) reads only the house JSON and ``model_info.json``: which rooms are
  candidates, how many labelled objects each may hold, its layout key (for de-duplication), and every
  problem of the JSON itself. No OBJ or texture is opened.
* :func:`load_house` (a per-scene worker) parses the 3D-FUTURE models once, places the architecture
  and furniture of the **whole house** (so doors, windows and open-plan boundaries show the neighbour,
  as the reference renders that load the whole house in BlenderProc) and labels only the scene room's
  furniture. Other rooms' furniture and objects whose category pair has no class get
  :data:`nerfseg.spec.UNLABELLED_INSTANCE_ID` (written as VOID); banned or too-small objects of the
  room are background.

Broken inputs never stop a build: an unreadable / face-less / NaN model, a missing or corrupt texture, a
child ``ref`` that names nothing, a malformed mesh or child entry each become one :class:`Issue`
(house, item, reason), skipped and counted. Only a house JSON that is not a JSON house raises
:class:`~nerfseg.errors.InputError` (the builder records it and goes on with the next house).

Coordinate frames. 3D-FRONT is y-up; nerfseg's world is z-up. Everything (architecture vertices,
furniture positions and rotations) is mapped with the proper rotation ``(x, y, z) -> (x, -z, y)``
(+90 degrees about +x, :data:`nerfseg.dataset_tools.boxes.Y_UP_TO_Z_UP`). A furniture child places its model as

    v_world_yup = R(rot) @ (v_model * scale) + pos        (rot = quaternion [x, y, z, w])
    v_world_zup = C @ v_world_yup,  C = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]

so the model->world map is ``M = C @ R @ diag(scale)`` plus ``C @ pos`` (the official toolbox's
placement). BlenderProc swaps y and z instead (a mirror that flips handedness); we do not copy that
(docs/front3d.md, "Handedness").

Furniture entries follow the official toolbox by default: only ``valid: true`` entries are loaded
(``RoomFilter.valid_only``) and a repeated ``uid`` keeps the last entry (``RoomFilter.duplicate_uids``).

Room and object selection (``RoomFilter``, recorded in benchmark.json): a room's box is the xy bounds
of its Floor meshes and the z-range floor..ceiling; an object of the room is an instance when its
category pair has a class, it is not banned (``ban_rules``, data in nerfseg/data/front3d_ban_list.json),
its largest side is at least ``min_object_size_m``, its box volume at least ``min_object_volume_m3``,
and its world AABB lies inside the room box (with a small tolerance). Walls, floors, ceilings, trim and
light bands are background (instance 0, class 0).

Lighting hints (``MeshPart.emissive``), the reference BlenderProc settings (ceiling strength 1,
lamps 30) plus LightBand panels: any mesh whose type contains "ceiling" emits
:data:`CEILING_LIGHT_STRENGTH`, ``LightBand`` meshes emit :data:`LIGHT_BAND_STRENGTH`, and furniture of
class lamp emits :data:`LAMP_LIGHT_STRENGTH`. Only the scene room's own meshes and furniture emit: the
ray caster lights directly, and lights behind walls would only dilute its fixed light samples.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from nerfseg.dataset_tools.boxes import Y_UP_TO_Z_UP, aabb_contains, aabb_from_points, aabb_volume, obb_from_points, quat_xyzw_to_matrix, yaw_from_linear
from nerfseg.dataset_tools.obj import read_mtl, read_obj
from nerfseg.dataset_tools.scene import MeshPart, ObjectInstance, Scene
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
UNLABELLED = spec.UNLABELLED_INSTANCE_ID

# Issue kinds: broken or inconsistent inputs, each skipped with one warning line and counted in the report.
HOUSE_NOT_JSON = "house_not_json"  # the house file is not JSON (only this stops a house)
HOUSE_MALFORMED = "house_malformed"  # JSON, but not a 3D-FRONT house (missing uid/furniture/mesh/scene.room)
MODEL_MISSING = "model_missing"  # no <jid>/raw_model.obj in the 3D-FUTURE folder
MODEL_UNREADABLE = "model_unreadable"  # the OBJ cannot be parsed, has no faces or has NaN/inf vertices
MODEL_KNOWN_BROKEN = "model_known_broken"  # skipped as the reference loader does (BROKEN_MODELS)
MODEL_NOT_IN_INFO = "model_not_in_model_info"  # jid without a model_info.json entry (rendered, void)
UNKNOWN_PAIR = "unknown_category_pair"  # (super-category, category) without a class (rendered, void)
TEXTURE_MISSING = "texture_missing"  # a material names a texture that is not on disk (its colour is used)
TEXTURE_CORRUPT = "texture_corrupt"  # the texture file cannot be decoded (its colour is used)
REF_UNKNOWN = "ref_unknown"  # a room child's ref names neither a furniture nor a mesh uid
MESH_MALFORMED = "mesh_malformed"  # an architecture mesh with unusable xyz/faces/uv (skipped)
CHILD_MALFORMED = "child_malformed"  # a furniture child with unusable pos/rot/scale (skipped)
ROOM_MALFORMED = "room_malformed"  # a room entry without type/children (dropped)

# Notes: deliberate selection decisions, counted in the report but not warned about.
NOTE_NOT_VALID = "furniture_not_valid"  # furniture without valid: true (RoomFilter.valid_only)
NOTE_DUPLICATE_UID = "furniture_duplicate_uid"  # a repeated furniture uid (RoomFilter.duplicate_uids)
NOTE_BANNED = "object_banned"  # matched a ban rule: background
NOTE_SMALL = "object_too_small"  # below min_object_size_m / min_object_volume_m3: background
NOTE_OUTSIDE = "object_outside_room"  # not fully inside the room box: background (or dropped)

# Texture outcomes of architecture materials (counted per material and house).
TEX_BY_JID = "jid_folder"  # 3D-FRONT-texture/<material jid>/texture.png
TEX_BY_URL = "url_folder"  # 3D-FRONT-texture/<folder name of the texture URL>/texture.png
TEX_FALLBACK = "colour_fallback"  # a texture was named but not found or unreadable: the material colour
TEX_COLOUR = "colour"  # the material names no texture: its colour


@dataclass(frozen=True)
class Issue:
    """One skipped input: which house, which item (jid, mesh / material / furniture uid), why."""

    kind: str
    house: str
    item: str
    reason: str

    def line(self) -> str:
        return f"warning: {self.house}: {self.item}: {self.reason}"

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "house": self.house, "item": self.item, "reason": self.reason}


@dataclass(frozen=True)
class BanRule:
    """Objects of a (super-category, category) are not instances, unless ``keep_if_larger_than_m`` and their
    largest world AABB side reaches it. ``category`` "*" matches every category of the super-category."""

    super_category: str | None
    category: str | None
    keep_if_larger_than_m: float | None = None
    why: str = ""

    def matches(self, pair: tuple[str | None, str | None]) -> bool:
        category, super_category = pair
        return self.super_category == super_category and (self.category == "*" or self.category == category)


def _ban_rules_from(data: Any, source: str | Path) -> tuple[BanRule, ...]:
    rules = data.get("rules") if isinstance(data, Mapping) else None
    if not isinstance(rules, list):
        raise InputError(source, "expected a JSON object with a 'rules' list", key="rules")
    out = []
    for i, r in enumerate(rules):
        if not isinstance(r, Mapping) or "super_category" not in r or "category" not in r:
            raise InputError(source, "a rule needs super_category and category", key=f"rules[{i}]")
        keep = r.get("keep_if_larger_than_m")
        if keep is not None and not isinstance(keep, (int, float)):
            raise InputError(source, "keep_if_larger_than_m must be a number or null", key=f"rules[{i}].keep_if_larger_than_m")
        out.append(BanRule(r["super_category"], r["category"], None if keep is None else float(keep), str(r.get("why", ""))))
    return tuple(out)


def read_ban_rules(path: str | Path) -> tuple[BanRule, ...]:
    """A ban list file (the format of nerfseg/data/front3d_ban_list.json), for ``--ban-list``."""
    return _ban_rules_from(read_json(path), path)


@lru_cache(maxsize=1)
def default_ban_rules() -> tuple[BanRule, ...]:
    """The packaged default ban list (nerfseg/data/front3d_ban_list.json): lights fixtures and small decor."""
    return _ban_rules_from(json.loads(resources.files("nerfseg").joinpath("data/front3d_ban_list.json").read_text(encoding="utf-8")), "nerfseg/data/front3d_ban_list.json")


@dataclass(frozen=True)
class RoomFilter:
    """Which rooms become scenes and which objects become instances (recorded in benchmark.json).

    Defaults follow the paper's data (docs/front3d.md): rooms of mainly large furniture, small decor and
    light fixtures banned, repeated layouts dropped, furniture entries as the official toolbox reads them.
    """

    min_floor_area_m2: float = 6.0
    min_objects: int = 3
    max_objects: int = 25
    room_types: tuple[str, ...] | None = None  # None = every room type
    min_object_volume_m3: float = 1e-6  # reference seg.py:build_metadata
    min_object_size_m: float = 0.2  # largest AABB side; smaller objects (decor) are background
    containment_tol_m: float = 0.05  # slack of the "fully inside the room box" test
    outside_objects: str = "background"  # "background" (rendered, id 0, as the reference) or "drop"
    ban_rules: tuple[BanRule, ...] = field(default_factory=default_ban_rules)
    valid_only: bool = True  # official toolbox / ATISS: only furniture with valid: true (BlenderProc loads all)
    duplicate_uids: str = "last"  # official toolbox: a repeated furniture uid keeps the last entry ("first" also allowed)
    dedup_layouts: bool = True  # drop a room whose instanceid or furniture set repeats one already taken

    def __post_init__(self) -> None:
        if self.outside_objects not in ("background", "drop"):
            raise InputError(None, f"RoomFilter.outside_objects must be 'background' or 'drop', got {self.outside_objects!r}")
        if self.duplicate_uids not in ("last", "first"):
            raise InputError(None, f"RoomFilter.duplicate_uids must be 'last' or 'first', got {self.duplicate_uids!r}")
        if self.room_types is not None:
            object.__setattr__(self, "room_types", tuple(self.room_types))
        rules = []
        for r in self.ban_rules:
            if isinstance(r, BanRule):
                rules.append(r)
            elif isinstance(r, Mapping):
                rules.append(BanRule(r.get("super_category"), r.get("category"), r.get("keep_if_larger_than_m"), r.get("why", "")))
            else:
                raise InputError(None, f"RoomFilter.ban_rules entries must be BanRule or mappings, got {r!r}")
        object.__setattr__(self, "ban_rules", tuple(rules))

    def ban_of(self, pair: tuple[str | None, str | None]) -> BanRule | None:
        for rule in self.ban_rules:
            if rule.matches(pair):
                return rule
        return None


@dataclass
class LoadedHouse:
    """The kept rooms of one house, and why the others were dropped."""

    scenes: list[Scene]
    dropped_rooms: list[tuple[str, str]]  # (room instanceid, reason)
    missing_models: list[str]  # 3D-FUTURE jids referenced but without a model folder (unique, first-seen order)
    warnings: list[str]  # issue lines and selection notes, human-readable
    house_id: str = ""
    issues: list[Issue] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)  # selection note kind -> count
    textures: dict[str, int] = field(default_factory=dict)  # texture outcome -> number of materials
    unknown_pairs: dict[tuple[str | None, str | None], list[str]] = field(default_factory=dict)  # (super, category) -> jids


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


class _Issues:
    """Collects the issues and notes of one house (each issue once per (kind, item))."""

    def __init__(self, house: Path):
        self.house = house.name
        self.issues: list[Issue] = []
        self._seen: set[tuple[str, str]] = set()
        self.notes: dict[str, int] = {}
        self.note_lines: list[str] = []

    def add(self, kind: str, item: str, reason: str) -> None:
        if (kind, item) not in self._seen:
            self._seen.add((kind, item))
            self.issues.append(Issue(kind, self.house, item, reason))

    def note(self, kind: str, line: str | None = None) -> None:
        self.notes[kind] = self.notes.get(kind, 0) + 1
        if line:
            self.note_lines.append(f"{self.house}: {line}")


class _Textures:
    """Texture cache for one house (the same jid is used by many meshes); failures become issues."""

    def __init__(self, issues: _Issues):
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


def _material_look(mat: Mapping[str, Any] | None, texture_dir: Path | None, textures: _Textures, issues: _Issues) -> tuple[np.ndarray | None, tuple[float, float, float], np.ndarray | None, str]:
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
    if _plain_name(jid):
        candidates.append((texture_dir / jid / TEXTURE_PNG if texture_dir else None, TEX_BY_JID))
    if _plain_name(url_folder) and url_folder != jid:
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


def _arch_part(mesh: Mapping[str, Any], i: int, materials: Mapping[str, Mapping[str, Any]], texture_dir: Path | None, textures: _Textures, issues: _Issues, tex_outcome: dict[str, str]) -> MeshPart | None:
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
# 3D-FUTURE models



# ---------------------------------------------------------------------------------------------
# 3D-FUTURE models


@dataclass
class _Model:
    vertices: np.ndarray  # (V,3) model frame (y-up)
    groups: list[tuple[np.ndarray, tuple[float, float, float]]]  # (faces, colour) per material (one group when textured)
    uvs: np.ndarray | None
    texture: np.ndarray | None


def _load_model(folder: Path, textures: _Textures, issues: _Issues) -> _Model | None:
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
    for mtl in [folder / m for m in obj.mtllibs if _plain_name(m)] + [folder / MODEL_MTL]:
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
                if m is not None and m.map_kd and _plain_name(m.map_kd):
                    texture = textures.get(folder / m.map_kd, jid)
                    if texture is not None:
                        break
        if texture is None and (folder / TEXTURE_PNG).exists() is False and any(mats.get(n) is not None and mats[n].map_kd for n in obj.material_names):
            issues.add(TEXTURE_MISSING, jid, f"{TEXTURE_PNG} missing in the model folder; using the MTL colours")
    if texture is not None:
        return _Model(obj.vertices, [(obj.faces, (1.0, 1.0, 1.0))], uvs, texture)
    groups = []
    for k in np.unique(obj.face_material).tolist():
        name = obj.material_names[k] if k >= 0 else None
        kd = mats[name].kd if name in mats else (0.8, 0.8, 0.8)
        groups.append((obj.faces[obj.face_material == k], tuple(float(np.clip(c, 0, 1)) for c in kd)))
    return _Model(obj.vertices, groups, uvs, None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Planning: the house JSON alone


@dataclass
class RoomPlan:
    """One ``scene.room[]`` entry as planning sees it (no model opened)."""

    index: int
    type: str
    instanceid: str
    mesh_refs: list[str]  # architecture mesh uids among its children
    furniture: list[tuple[int, Mapping[str, Any]]]  # (child index, child) of loaded furniture uids
    candidates: int  # furniture that may become instances: known pair, not always banned, model not known broken
    layout: tuple[str, ...]  # sorted jids of its furniture: the furniture-set half of the layout key
    floor_area_m2: float
    drop: str | None  # why planning drops the room (None: a candidate scene)


@dataclass
class HouseData:
    """A parsed house JSON with planning's view of each room (cheap: no OBJ, no texture)."""

    path: Path
    house_id: str
    furniture_by_uid: dict[str, Mapping[str, Any]]
    meshes: list[Mapping[str, Any]]
    mesh_index: dict[str, int]
    materials: dict[str, Mapping[str, Any]]
    rooms: list[RoomPlan]
    pairs: dict[str, tuple[str | None, str | None] | None]  # jid -> (category, super-category), None: not in model_info
    issues: _Issues
    unknown_pairs: dict[tuple[str | None, str | None], list[str]]  # (super-category, category) -> jids


def _floor_area_from_json(mesh: Mapping[str, Any]) -> float:
    """Horizontal area of one Floor mesh straight from its JSON arrays (y-up: the x-z plane)."""
    try:
        v = np.asarray(mesh["xyz"], dtype=np.float64).reshape(-1, 3)
        f = np.asarray(mesh["faces"], dtype=np.int64).reshape(-1, 3)
    except (KeyError, TypeError, ValueError):
        return 0.0
    if len(f) == 0 or f.min() < 0 or f.max() >= len(v):
        return 0.0
    a, b, c = v[f[:, 0]][:, [0, 2]], v[f[:, 1]][:, [0, 2]], v[f[:, 2]][:, [0, 2]]
    area = 0.5 * np.abs((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))
    return float(np.nansum(area))


def read_house(house_json: str | Path, model_info: Mapping[str, tuple[str | None, str | None]], room_filter: RoomFilter = RoomFilter()) -> HouseData:
    """Parse one house JSON and decide, without opening any model, which rooms are candidate scenes.

    Raises :class:`InputError` only when the file is not JSON or not a 3D-FRONT house (no ``uid``,
    ``furniture``, ``mesh`` or ``scene.room`` lists); everything else becomes an issue or a note.
    """
    house = Path(house_json)
    rf = room_filter
    data = read_json(house)
    if not isinstance(data, dict):
        raise InputError(house, "expected a JSON object (a 3D-FRONT house)")
    house_id = str(_need(data, "uid", house, ""))
    furniture = _need(data, "furniture", house, "")
    meshes = _need(data, "mesh", house, "")
    materials_list = data.get("material", [])
    rooms = _need(_need(data, "scene", house, ""), "room", house, "scene")
    for key, val in (("furniture", furniture), ("mesh", meshes), ("material", materials_list), ("scene.room", rooms)):
        if not isinstance(val, list):
            raise InputError(house, "expected a list", key=key)
    issues = _Issues(house)

    furniture_by_uid: dict[str, Mapping[str, Any]] = {}
    not_valid: set[str] = set()
    for i, f in enumerate(furniture):
        if not isinstance(f, Mapping) or "uid" not in f or "jid" not in f:
            issues.add(HOUSE_MALFORMED, f"furniture[{i}]", "furniture entry without uid or jid; skipped")
            continue
        uid = str(f["uid"])
        if rf.valid_only and not f.get("valid"):  # the toolbox: 'valid' in furniture and furniture['valid']
            not_valid.add(uid)
            issues.note(NOTE_NOT_VALID)
            continue
        if uid in furniture_by_uid:
            issues.note(NOTE_DUPLICATE_UID)
            if rf.duplicate_uids == "first":
                continue
        furniture_by_uid[uid] = f
    mesh_index: dict[str, int] = {}
    for i, m in enumerate(meshes):
        if isinstance(m, Mapping) and "uid" in m:
            mesh_index.setdefault(str(m["uid"]), i)
        else:
            issues.add(MESH_MALFORMED, f"mesh[{i}]", "mesh entry without uid; skipped")
    materials = {str(m.get("uid")): m for m in materials_list if isinstance(m, Mapping)}

    pairs: dict[str, tuple[str | None, str | None] | None] = {}
    unknown: dict[tuple[str | None, str | None], list[str]] = {}
    for f in furniture_by_uid.values():
        jid = str(f["jid"])
        if jid in pairs:
            continue
        pair = model_info.get(jid)
        pairs[jid] = pair
        if pair is None:
            issues.add(MODEL_NOT_IN_INFO, jid, f"not in {MODEL_INFO_JSON}; rendered, labelled void")
        elif spec.class_of_pair(*pair) is None:
            key = (pair[1], pair[0])
            if jid not in unknown.setdefault(key, []):
                unknown[key].append(jid)

    plans: list[RoomPlan] = []
    for r, room in enumerate(rooms):
        if not isinstance(room, Mapping) or not isinstance(room.get("children"), list):
            issues.add(ROOM_MALFORMED, f"scene.room[{r}]", "room without a children list; dropped")
            plans.append(RoomPlan(r, "?", f"room{r}", [], [], 0, (), 0.0, "malformed room entry"))
            continue
        room_type = str(room.get("type") or "")
        room_name = str(room.get("instanceid") or f"room{r}")
        mesh_refs: list[str] = []
        furn: list[tuple[int, Mapping[str, Any]]] = []
        for j, child in enumerate(room["children"]):
            ref = str(child.get("ref")) if isinstance(child, Mapping) else ""
            if ref in furniture_by_uid:
                furn.append((j, child))
            elif ref in mesh_index:
                mesh_refs.append(ref)
            elif ref in not_valid:
                continue  # counted as a note already
            else:
                issues.add(REF_UNKNOWN, f"ref {ref!r}", f"child {j} of room {room_name} names neither a furniture nor a mesh uid; skipped")
        jids = [str(furniture_by_uid[str(c["ref"])]["jid"]) for _, c in furn]
        candidates = 0
        for jid in jids:
            pair = pairs.get(jid)
            if pair is None or jid in BROKEN_MODELS or spec.class_of_pair(*pair) is None:
                continue
            rule = rf.ban_of(pair)
            if rule is not None and rule.keep_if_larger_than_m is None:
                continue
            candidates += 1
        floors = [meshes[mesh_index[u]] for u in mesh_refs if "floor" in str(meshes[mesh_index[u]].get("type", "")).lower()]
        area = sum(_floor_area_from_json(m) for m in floors)
        drop = None
        if not room_type:
            drop = "room without a type"
        elif rf.room_types is not None and room_type not in rf.room_types:
            drop = f"room type {room_type} not in {list(rf.room_types)}"
        elif not floors:
            drop = "no Floor mesh"
        elif area < rf.min_floor_area_m2:
            drop = f"floor area {area:.2f} m^2 < {rf.min_floor_area_m2}"
        elif candidates < rf.min_objects or candidates > rf.max_objects:
            drop = f"{candidates} objects (need {rf.min_objects}..{rf.max_objects})"
        plans.append(RoomPlan(r, room_type, room_name, mesh_refs, furn, candidates, tuple(sorted(jids)), area, drop))
    return HouseData(house, house_id, furniture_by_uid, meshes, mesh_index, materials, plans, pairs, issues, unknown)


# ---------------------------------------------------------------------------------------------
# The house, whole: models parsed once, one scene per requested room


@dataclass
class _Placed:
    room: int
    child: int
    ref: str
    label: str
    jid: str
    model: _Model
    verts: np.ndarray
    lin: np.ndarray
    aabb: np.ndarray
    key: tuple[Any, ...] = ()  # (ref, rounded pos/rot/scale): the same piece listed by two rooms has one key


def _place(hd: HouseData, room: RoomPlan, j: int, child: Mapping[str, Any], model: _Model, issues: _Issues) -> _Placed | None:
    ref = str(child["ref"])
    f = hd.furniture_by_uid[ref]
    jid = str(f["jid"])
    key = f"scene.room[{room.index}].children[{j}]"
    try:
        pos = _vec(_need(child, "pos", hd.path, key), 3, hd.path, f"{key}.pos")
        rot = _vec(_need(child, "rot", hd.path, key), 4, hd.path, f"{key}.rot")
        scale = _vec(child.get("scale", [1.0, 1.0, 1.0]), 3, hd.path, f"{key}.scale")
        rmat = quat_xyzw_to_matrix(rot)
    except (InputError, ValueError) as exc:
        what = f"{exc.key}: {exc.problem}" if isinstance(exc, InputError) and exc.key else f"{key}.rot: {exc}"
        issues.add(CHILD_MALFORMED, jid, f"{what}; furniture skipped")
        return None
    lin = Y_UP_TO_Z_UP @ rmat @ np.diag(scale)
    verts = model.vertices @ lin.T + Y_UP_TO_Z_UP @ pos
    label = str(f.get("category") or f.get("title") or "furniture")
    key = (ref, *np.round(np.concatenate([pos, rot, scale]), 4).tolist())
    return _Placed(room.index, j, ref, label, jid, model, verts, lin, aabb_from_points(verts), key)


def load_house(
    house_json: str | Path,
    future_dir: str | Path,
    texture_dir: str | Path | None,
    house_index: int,
    room_filter: RoomFilter = RoomFilter(),
    *,
    model_info: Mapping[str, tuple[str | None, str | None]] | None = None,
    rooms: list[int] | None = None,
) -> LoadedHouse:
    """Load one 3D-FRONT house and return one :class:`Scene` per room that passes ``room_filter``.

    ``rooms`` restricts the scenes to these ``scene.room[]`` indices (a build worker asks for one); the
    geometry of every scene is still the whole house. ``scene_id = 3dfront_{house_index:04d}_{room_index:02d}``.
    Instances are numbered 1..N in the room's children order. Models are parsed once per call.
    Broken inputs are issues (skipped, counted); only a house file that is not a JSON house raises.
    """
    future_dir = Path(future_dir)
    texture_dir = None if texture_dir is None else Path(texture_dir)
    rf = room_filter
    info = model_info if model_info is not None else load_model_info(future_dir)
    hd = read_house(house_json, info, rf)
    issues = hd.issues
    chosen = [r for r in hd.rooms if rooms is None or r.index in rooms]
    dropped = [(r.instanceid, r.drop) for r in chosen if r.drop is not None]
    wanted = [r for r in chosen if r.drop is None]
    missing: list[str] = []
    textures_count: dict[str, int] = {}
    scenes: list[Scene] = []
    if wanted:
        textures = _Textures(issues)
        tex_outcome: dict[str, str] = {}
        arch: dict[str, MeshPart] = {}
        for uid, i in hd.mesh_index.items():
            part = _arch_part(hd.meshes[i], i, hd.materials, texture_dir, textures, issues, tex_outcome)
            if part is not None:
                arch[uid] = part
        for outcome in tex_outcome.values():
            textures_count[outcome] = textures_count.get(outcome, 0) + 1
        models: dict[str, _Model | None] = {}
        placed: list[_Placed] = []
        for room in hd.rooms:  # every room's furniture: the whole house is rendered
            for j, child in room.furniture:
                jid = str(hd.furniture_by_uid[str(child["ref"])]["jid"])
                if jid not in models:
                    folder = future_dir / jid
                    if jid in BROKEN_MODELS:
                        issues.add(MODEL_KNOWN_BROKEN, jid, "3D-FUTURE model known to be broken; skipped (as the reference loader)")
                        models[jid] = None
                    elif not (_plain_name(jid) and (folder / RAW_MODEL_OBJ).is_file()):
                        issues.add(MODEL_MISSING, jid, f"3D-FUTURE model not found (no {folder / RAW_MODEL_OBJ}); furniture skipped")
                        missing.append(jid)
                        models[jid] = None
                    else:
                        models[jid] = _load_model(folder, textures, issues)
                model = models[jid]
                if model is not None:
                    p = _place(hd, room, j, child, model, issues)
                    if p is not None:
                        placed.append(p)
        for room in wanted:
            scene = _room_scene(hd, room, arch, placed, rf, house_index, issues)
            if isinstance(scene, str):
                dropped.append((room.instanceid, scene))
            else:
                scenes.append(scene)
    for scene in scenes:
        scene.warnings = [i.line() for i in issues.issues] + list(scene.warnings)
    return LoadedHouse(
        scenes=scenes,
        dropped_rooms=dropped,
        missing_models=missing,
        warnings=[i.line() for i in issues.issues] + _unknown_pair_lines(hd) + issues.note_lines,
        house_id=hd.house_id,
        issues=list(issues.issues),
        notes=dict(issues.notes),
        textures=textures_count,
        unknown_pairs={k: list(v) for k, v in hd.unknown_pairs.items()},
    )


def _room_scene(hd: HouseData, room: RoomPlan, arch: Mapping[str, MeshPart], placed: list[_Placed], rf: RoomFilter, house_index: int, issues: _Issues) -> Scene | str:
    """The scene of one room (whole-house geometry, this room's furniture labelled), or why it is dropped."""
    own = set(room.mesh_refs)
    own_arch = [arch[u] for u in room.mesh_refs if u in arch]
    floors = [p for p in own_arch if "floor" in p.kind.lower()]
    if not floors:
        return "no usable Floor mesh"
    floor_pts = np.concatenate([p.vertices for p in floors])
    zmin = float(floor_pts[:, 2].min())
    ceilings = [p for p in own_arch if "ceiling" in p.kind.lower()]
    zmax = max(float(p.vertices[:, 2].max()) for p in (ceilings or own_arch))
    notes: list[str] = []
    if zmax - zmin < 1.5:
        notes.append(f"{hd.path.name} [room {room.instanceid}]: no ceiling or walls to measure the room height; using {DEFAULT_ROOM_HEIGHT} m")
        zmax = zmin + DEFAULT_ROOM_HEIGHT
    room_bbox = np.array([[*floor_pts[:, :2].min(axis=0), zmin], [*floor_pts[:, :2].max(axis=0), zmax]])

    # architecture of the whole house; only this room's own meshes emit light
    parts: list[MeshPart] = [p if (uid in own or p.emissive == 0.0) else dataclasses.replace(p, emissive=0.0) for uid, p in arch.items()]
    instances: list[ObjectInstance] = []
    own_keys = {pl.key for pl in placed if pl.room == room.index}
    for pl in placed:
        if pl.room != room.index and pl.key in own_keys:
            continue  # another room lists the same piece at the same place: draw it once, as this room's
        pair = hd.pairs.get(pl.jid)
        class_index = spec.class_of_pair(*pair) if pair is not None else None
        mine = pl.room == room.index
        where = f"{pl.label} ({pl.jid})"
        inst_id, cls = UNLABELLED, 0
        if mine and class_index is not None:
            size = float(np.max(pl.aabb[3:] - pl.aabb[:3]))
            rule = rf.ban_of(pair)  # type: ignore[arg-type]
            if rule is not None and (rule.keep_if_larger_than_m is None or size < rule.keep_if_larger_than_m):
                issues.note(NOTE_BANNED)
                inst_id = 0
            elif aabb_volume(pl.aabb) < rf.min_object_volume_m3 or size < rf.min_object_size_m:
                issues.note(NOTE_SMALL)
                notes.append(f"{hd.path.name} [{where}]: kept as unlabelled background: box volume {aabb_volume(pl.aabb):.2e} m^3, largest side {size:.3f} m below the minimum ({rf.min_object_volume_m3} m^3, {rf.min_object_size_m} m)")
                inst_id = 0
            elif not aabb_contains(room_bbox, pl.aabb, rf.containment_tol_m):
                issues.note(NOTE_OUTSIDE)
                if rf.outside_objects == "drop":
                    continue
                notes.append(f"{hd.path.name} [{where}]: kept as unlabelled background: not fully inside the room box")
                inst_id = 0
            else:
                inst_id, cls = len(instances) + 1, class_index
                instances.append(
                    ObjectInstance(
                        instance_id=inst_id,
                        class_index=cls,
                        nyu40_id=int(spec.NYU40_IDS[cls]),  # type: ignore[arg-type]
                        category=pair[0],  # type: ignore[index]
                        super_category=pair[1],  # type: ignore[index]
                        jid=pl.jid,
                        uid=pl.ref,
                        aabb=pl.aabb,
                        obb=obb_from_points(pl.verts, yaw_from_linear(pl.lin)),
                    )
                )
        lamp = class_index == LAMP_CLASS or "lamp" in pl.label.lower()
        mirrored = np.linalg.det(pl.lin) < 0
        tag = "void" if inst_id == UNLABELLED else str(inst_id)
        for g, (gfaces, colour) in enumerate(pl.model.groups):
            parts.append(
                MeshPart(
                    name=f"{pl.label}#{tag}:{pl.jid}" + (f":{g}" if len(pl.model.groups) > 1 else ""),
                    vertices=pl.verts,
                    faces=gfaces[:, ::-1].copy() if mirrored else gfaces,
                    uvs=pl.model.uvs,
                    texture=pl.model.texture,
                    color=colour,
                    instance_id=inst_id,
                    class_index=cls,
                    kind="furniture",
                    emissive=LAMP_LIGHT_STRENGTH if (mine and lamp) else 0.0,
                )
            )
    issues.note_lines.extend(notes)
    n = len(instances)
    if n < rf.min_objects or n > rf.max_objects:
        return f"{n} objects (need {rf.min_objects}..{rf.max_objects})"
    return Scene(
        scene_id=f"3dfront_{house_index:04d}_{room.index:02d}",
        house_id=hd.house_id,
        room_type=room.type,
        room_bbox=room_bbox,
        parts=parts,
        instances=instances,
        floor_polygons=floor_outlines(floors),
        warnings=notes,
    )


def _unknown_pair_lines(hd: HouseData) -> list[str]:
    return [
        f"warning: {hd.path.name}: unknown 3D-FUTURE category pair (super-category {sup!r}, category {cat!r}) of models {', '.join(jids)}: rendered, labelled void"
        for (sup, cat), jids in hd.unknown_pairs.items()
    ]
