"""3D-FRONT planning: one house JSON and ``model_info.json`` read without opening any model.

Which rooms are candidate scenes, how many labelled objects each may hold, its layout key (for
de-duplication), and every problem of the JSON itself (:class:`Issue`). The selection settings
(:class:`RoomFilter`) and the issue kinds live here because every later stage reports with them.
The loader that builds scenes from a plan is :mod:`nerfseg.dataset_tools.front3d`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from nerfseg import spec
from nerfseg.errors import InputError
from nerfseg.spec import read_json

MODEL_INFO_JSON = "model_info.json"
RAW_MODEL_OBJ = "raw_model.obj"
MODEL_MTL = "model.mtl"
TEXTURE_PNG = "texture.png"

#: Models the reference loader skips because Blender cannot read them (BlenderProc Front3DLoader).
BROKEN_MODELS = frozenset({"7e101ef3-7722-4af8-90d5-7c562834fabd"})


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


def need_key(d: Mapping[str, Any], key: str, path: Path, where: str) -> Any:
    if not isinstance(d, Mapping):
        raise InputError(path, "expected a JSON object", key=where)
    if key not in d:
        raise InputError(path, "missing key", key=f"{where}.{key}" if where else key)
    return d[key]


def finite_vector(value: Any, n: int, path: Path, key: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(path, f"expected {n} numbers", key=key) from None
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise InputError(path, f"expected {n} finite numbers, got {value!r}", key=key)
    return arr


def plain_name(name: str) -> bool:
    """A jid used as a folder name must be one path component (no '..', no separators)."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name


class IssueLog:
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
    issues: IssueLog
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


def _house_lists(house: Path) -> tuple[dict[str, Any], list[Any], list[Any], list[Any], list[Any]]:
    """(JSON object, furniture, mesh, material, scene.room) of a house file; InputError when it is not a 3D-FRONT house."""
    data = read_json(house)
    if not isinstance(data, dict):
        raise InputError(house, "expected a JSON object (a 3D-FRONT house)")
    need_key(data, "uid", house, "")
    furniture = need_key(data, "furniture", house, "")
    meshes = need_key(data, "mesh", house, "")
    materials_list = data.get("material", [])
    rooms = need_key(need_key(data, "scene", house, ""), "room", house, "scene")
    for key, val in (("furniture", furniture), ("mesh", meshes), ("material", materials_list), ("scene.room", rooms)):
        if not isinstance(val, list):
            raise InputError(house, "expected a list", key=key)
    return data, furniture, meshes, materials_list, rooms


def _furniture_by_uid(furniture: list[Any], rf: RoomFilter, issues: IssueLog) -> tuple[dict[str, Mapping[str, Any]], set[str]]:
    """Furniture entries by uid as the official toolbox keeps them (valid only, one per uid), and the uids left out as not valid."""
    by_uid: dict[str, Mapping[str, Any]] = {}
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
        if uid in by_uid:
            issues.note(NOTE_DUPLICATE_UID)
            if rf.duplicate_uids == "first":
                continue
        by_uid[uid] = f
    return by_uid, not_valid


def _mesh_index(meshes: list[Any], issues: IssueLog) -> dict[str, int]:
    """Mesh uid -> its first position in the ``mesh`` list."""
    index: dict[str, int] = {}
    for i, m in enumerate(meshes):
        if isinstance(m, Mapping) and "uid" in m:
            index.setdefault(str(m["uid"]), i)
        else:
            issues.add(MESH_MALFORMED, f"mesh[{i}]", "mesh entry without uid; skipped")
    return index


def _category_pairs(
    furniture_by_uid: Mapping[str, Mapping[str, Any]], model_info: Mapping[str, tuple[str | None, str | None]], issues: IssueLog
) -> tuple[dict[str, tuple[str | None, str | None] | None], dict[tuple[str | None, str | None], list[str]]]:
    """jid -> (category, super-category) (None: not in model_info), and the pairs without a class with their jids."""
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
    return pairs, unknown


def _candidate_count(jids: list[str], pairs: Mapping[str, tuple[str | None, str | None] | None], rf: RoomFilter) -> int:
    """Furniture that may become instances: known pair with a class, model not known broken, not always banned."""
    candidates = 0
    for jid in jids:
        pair = pairs.get(jid)
        if pair is None or jid in BROKEN_MODELS or spec.class_of_pair(*pair) is None:
            continue
        rule = rf.ban_of(pair)
        if rule is not None and rule.keep_if_larger_than_m is None:
            continue
        candidates += 1
    return candidates


def _drop_reason(room_type: str, floors: list[Any], area: float, candidates: int, rf: RoomFilter) -> str | None:
    """Why planning drops a room (None: a candidate scene)."""
    if not room_type:
        return "room without a type"
    if rf.room_types is not None and room_type not in rf.room_types:
        return f"room type {room_type} not in {list(rf.room_types)}"
    if not floors:
        return "no Floor mesh"
    if area < rf.min_floor_area_m2:
        return f"floor area {area:.2f} m^2 < {rf.min_floor_area_m2}"
    if candidates < rf.min_objects or candidates > rf.max_objects:
        return f"{candidates} objects (need {rf.min_objects}..{rf.max_objects})"
    return None


def _plan_room(
    r: int,
    room: Any,
    furniture_by_uid: Mapping[str, Mapping[str, Any]],
    not_valid: set[str],
    meshes: list[Any],
    mesh_index: Mapping[str, int],
    pairs: Mapping[str, tuple[str | None, str | None] | None],
    rf: RoomFilter,
    issues: IssueLog,
) -> RoomPlan:
    """Planning's view of ``scene.room[r]``: its meshes and furniture, candidate count, layout key and drop reason."""
    if not isinstance(room, Mapping) or not isinstance(room.get("children"), list):
        issues.add(ROOM_MALFORMED, f"scene.room[{r}]", "room without a children list; dropped")
        return RoomPlan(r, "?", f"room{r}", [], [], 0, (), 0.0, "malformed room entry")
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
    candidates = _candidate_count(jids, pairs, rf)
    floors = [meshes[mesh_index[u]] for u in mesh_refs if "floor" in str(meshes[mesh_index[u]].get("type", "")).lower()]
    area = sum(_floor_area_from_json(m) for m in floors)
    drop = _drop_reason(room_type, floors, area, candidates, rf)
    return RoomPlan(r, room_type, room_name, mesh_refs, furn, candidates, tuple(sorted(jids)), area, drop)


def read_house(house_json: str | Path, model_info: Mapping[str, tuple[str | None, str | None]], room_filter: RoomFilter = RoomFilter()) -> HouseData:
    """Parse one house JSON and decide, without opening any model, which rooms are candidate scenes.

    Raises :class:`InputError` only when the file is not JSON or not a 3D-FRONT house (no ``uid``,
    ``furniture``, ``mesh`` or ``scene.room`` lists); everything else becomes an issue or a note.
    """
    house = Path(house_json)
    rf = room_filter
    data, furniture, meshes, materials_list, rooms = _house_lists(house)
    issues = IssueLog(house)
    furniture_by_uid, not_valid = _furniture_by_uid(furniture, rf, issues)
    mesh_index = _mesh_index(meshes, issues)
    materials = {str(m.get("uid")): m for m in materials_list if isinstance(m, Mapping)}
    pairs, unknown = _category_pairs(furniture_by_uid, model_info, issues)
    plans = [_plan_room(r, room, furniture_by_uid, not_valid, meshes, mesh_index, pairs, rf, issues) for r, room in enumerate(rooms)]
    return HouseData(house, str(data["uid"]), furniture_by_uid, meshes, mesh_index, materials, plans, pairs, issues, unknown)
