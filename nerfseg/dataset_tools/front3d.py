"""3D-FRONT / 3D-FUTURE loader: one house JSON -> one :class:`~nerfseg.dataset_tools.scene.Scene` per kept room.

Real data and the procedural demo (nerfseg/dataset_tools/demo/) go through this same code, so the demo
exercises every step a real build takes (docs/front3d.md describes the on-disk layout and every
choice below).

Two stages, so a build over thousands of houses scales:

* :func:`read_house` (planning, :mod:`nerfseg.dataset_tools.front3d_plan`) reads only the house JSON and ``model_info.json``: which rooms are
  candidates, how many labelled objects each may hold, its layout key (for de-duplication), and every
  problem of the JSON itself. No OBJ or texture is opened.
* :func:`load_house` (a per-scene worker, this module) parses the 3D-FUTURE models once (geometry in
  :mod:`nerfseg.dataset_tools.front3d_models`), places the architecture
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nerfseg import spec
from nerfseg.dataset_tools.boxes import Y_UP_TO_Z_UP, aabb_contains, aabb_from_points, aabb_volume, obb_from_points, quat_xyzw_to_matrix, yaw_from_linear
from nerfseg.dataset_tools.front3d_models import (
    CEILING_LIGHT_STRENGTH,
    LAMP_LIGHT_STRENGTH,
    LIGHT_BAND_STRENGTH,
    FutureModel,
    TextureCache,
    arch_part,
    floor_outlines,
    load_future_model,
)
from nerfseg.dataset_tools.front3d_plan import (
    BROKEN_MODELS,
    CHILD_MALFORMED,
    HOUSE_MALFORMED,
    HOUSE_NOT_JSON,
    MODEL_INFO_JSON,
    MODEL_KNOWN_BROKEN,
    MODEL_MISSING,
    NOTE_BANNED,
    NOTE_OUTSIDE,
    NOTE_SMALL,
    RAW_MODEL_OBJ,
    TEXTURE_PNG,
    BanRule,
    HouseData,
    Issue,
    IssueLog,
    RoomFilter,
    RoomPlan,
    default_ban_rules,
    finite_vector,
    iter_houses,
    load_model_info,
    need_key,
    plain_name,
    read_ban_rules,
    read_house,
)
from nerfseg.dataset_tools.scene import MeshPart, ObjectInstance, Scene
from nerfseg.errors import InputError

#: Names callers import from here (the loader's public face; planning and geometry live in front3d_plan / front3d_models).
__all__ = [
    "BROKEN_MODELS",
    "CEILING_LIGHT_STRENGTH",
    "HOUSE_MALFORMED",
    "HOUSE_NOT_JSON",
    "LAMP_LIGHT_STRENGTH",
    "LIGHT_BAND_STRENGTH",
    "MODEL_INFO_JSON",
    "RAW_MODEL_OBJ",
    "TEXTURE_PNG",
    "BanRule",
    "HouseData",
    "Issue",
    "LoadedHouse",
    "RoomFilter",
    "RoomPlan",
    "default_ban_rules",
    "floor_outlines",
    "iter_houses",
    "load_house",
    "load_model_info",
    "read_ban_rules",
    "read_house",
]

DEFAULT_ROOM_HEIGHT = 2.8  # used only when a room has neither ceiling nor walls to measure

LAMP_CLASS = spec.CLASS_INDEX_BY_NAME["lamp"]
UNLABELLED = spec.UNLABELLED_INSTANCE_ID


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
# The house, whole: models parsed once, one scene per requested room


@dataclass
class _Placed:
    room: int
    child: int
    ref: str
    label: str
    jid: str
    model: FutureModel
    verts: np.ndarray
    lin: np.ndarray
    aabb: np.ndarray
    key: tuple[Any, ...] = ()  # (ref, rounded pos/rot/scale): the same piece listed by two rooms has one key


def _place(hd: HouseData, room: RoomPlan, j: int, child: Mapping[str, Any], model: FutureModel, issues: IssueLog) -> _Placed | None:
    ref = str(child["ref"])
    f = hd.furniture_by_uid[ref]
    jid = str(f["jid"])
    key = f"scene.room[{room.index}].children[{j}]"
    try:
        pos = finite_vector(need_key(child, "pos", hd.path, key), 3, hd.path, f"{key}.pos")
        rot = finite_vector(need_key(child, "rot", hd.path, key), 4, hd.path, f"{key}.rot")
        scale = finite_vector(child.get("scale", [1.0, 1.0, 1.0]), 3, hd.path, f"{key}.scale")
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


def _house_architecture(hd: HouseData, texture_dir: Path | None, textures: TextureCache, issues: IssueLog) -> tuple[dict[str, MeshPart], dict[str, int]]:
    """Every usable architecture mesh of the house by uid, and the number of materials per texture outcome."""
    tex_outcome: dict[str, str] = {}
    arch: dict[str, MeshPart] = {}
    for uid, i in hd.mesh_index.items():
        part = arch_part(hd.meshes[i], i, hd.materials, texture_dir, textures, issues, tex_outcome)
        if part is not None:
            arch[uid] = part
    textures_count: dict[str, int] = {}
    for outcome in tex_outcome.values():
        textures_count[outcome] = textures_count.get(outcome, 0) + 1
    return arch, textures_count


def _model_of(jid: str, future_dir: Path, models: dict[str, FutureModel | None], missing: list[str], textures: TextureCache, issues: IssueLog) -> FutureModel | None:
    """The parsed 3D-FUTURE model of ``jid`` (parsed once per house; None with an issue when unusable)."""
    if jid not in models:
        folder = future_dir / jid
        if jid in BROKEN_MODELS:
            issues.add(MODEL_KNOWN_BROKEN, jid, "3D-FUTURE model known to be broken; skipped (as the reference loader)")
            models[jid] = None
        elif not (plain_name(jid) and (folder / RAW_MODEL_OBJ).is_file()):
            issues.add(MODEL_MISSING, jid, f"3D-FUTURE model not found (no {folder / RAW_MODEL_OBJ}); furniture skipped")
            missing.append(jid)
            models[jid] = None
        else:
            models[jid] = load_future_model(folder, textures, issues)
    return models[jid]


def _house_furniture(hd: HouseData, future_dir: Path, missing: list[str], textures: TextureCache, issues: IssueLog) -> list[_Placed]:
    """Every room's furniture placed in the world: the whole house is rendered, whichever room is the scene."""
    models: dict[str, FutureModel | None] = {}
    placed: list[_Placed] = []
    for room in hd.rooms:
        for j, child in room.furniture:
            jid = str(hd.furniture_by_uid[str(child["ref"])]["jid"])
            model = _model_of(jid, future_dir, models, missing, textures, issues)
            if model is not None:
                p = _place(hd, room, j, child, model, issues)
                if p is not None:
                    placed.append(p)
    return placed


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
        textures = TextureCache(issues)
        arch, textures_count = _house_architecture(hd, texture_dir, textures, issues)
        placed = _house_furniture(hd, future_dir, missing, textures, issues)
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


def _room_box(hd: HouseData, room: RoomPlan, own_arch: list[MeshPart], floors: list[MeshPart], notes: list[str]) -> np.ndarray:
    """The room's z-up box: xy bounds of its floors, floor..ceiling in z (a default height when nothing measures it)."""
    floor_pts = np.concatenate([p.vertices for p in floors])
    zmin = float(floor_pts[:, 2].min())
    ceilings = [p for p in own_arch if "ceiling" in p.kind.lower()]
    zmax = max(float(p.vertices[:, 2].max()) for p in (ceilings or own_arch))
    if zmax - zmin < 1.5:
        notes.append(f"{hd.path.name} [room {room.instanceid}]: no ceiling or walls to measure the room height; using {DEFAULT_ROOM_HEIGHT} m")
        zmax = zmin + DEFAULT_ROOM_HEIGHT
    return np.array([[*floor_pts[:, :2].min(axis=0), zmin], [*floor_pts[:, :2].max(axis=0), zmax]])


def _label_of(
    pl: _Placed, pair: tuple[str | None, str | None], room_bbox: np.ndarray, rf: RoomFilter, hd: HouseData, issues: IssueLog, notes: list[str]
) -> bool | None:
    """Whether a piece of the scene room with a class becomes an instance: True yes, False background, None dropped."""
    where = f"{pl.label} ({pl.jid})"
    size = float(np.max(pl.aabb[3:] - pl.aabb[:3]))
    rule = rf.ban_of(pair)
    if rule is not None and (rule.keep_if_larger_than_m is None or size < rule.keep_if_larger_than_m):
        issues.note(NOTE_BANNED)
        return False
    if aabb_volume(pl.aabb) < rf.min_object_volume_m3 or size < rf.min_object_size_m:
        issues.note(NOTE_SMALL)
        notes.append(f"{hd.path.name} [{where}]: kept as unlabelled background: box volume {aabb_volume(pl.aabb):.2e} m^3, largest side {size:.3f} m below the minimum ({rf.min_object_volume_m3} m^3, {rf.min_object_size_m} m)")
        return False
    if not aabb_contains(room_bbox, pl.aabb, rf.containment_tol_m):
        issues.note(NOTE_OUTSIDE)
        if rf.outside_objects == "drop":
            return None
        notes.append(f"{hd.path.name} [{where}]: kept as unlabelled background: not fully inside the room box")
        return False
    return True


def _instance(pl: _Placed, inst_id: int, cls: int, pair: tuple[str | None, str | None]) -> ObjectInstance:
    return ObjectInstance(
        instance_id=inst_id,
        class_index=cls,
        nyu40_id=int(spec.NYU40_IDS[cls]),  # type: ignore[arg-type]
        category=pair[0],
        super_category=pair[1],
        jid=pl.jid,
        uid=pl.ref,
        aabb=pl.aabb,
        obb=obb_from_points(pl.verts, yaw_from_linear(pl.lin)),
    )


def _furniture_parts(pl: _Placed, inst_id: int, cls: int, emissive: float) -> list[MeshPart]:
    """One MeshPart per material group of a placed model (faces flipped when its placement mirrors)."""
    mirrored = np.linalg.det(pl.lin) < 0
    tag = "void" if inst_id == UNLABELLED else str(inst_id)
    return [
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
            emissive=emissive,
        )
        for g, (gfaces, colour) in enumerate(pl.model.groups)
    ]


def _room_scene(hd: HouseData, room: RoomPlan, arch: Mapping[str, MeshPart], placed: list[_Placed], rf: RoomFilter, house_index: int, issues: IssueLog) -> Scene | str:
    """The scene of one room (whole-house geometry, this room's furniture labelled), or why it is dropped."""
    own = set(room.mesh_refs)
    own_arch = [arch[u] for u in room.mesh_refs if u in arch]
    floors = [p for p in own_arch if "floor" in p.kind.lower()]
    if not floors:
        return "no usable Floor mesh"
    notes: list[str] = []
    room_bbox = _room_box(hd, room, own_arch, floors, notes)

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
        inst_id, cls = UNLABELLED, 0
        if mine and class_index is not None:
            label = _label_of(pl, pair, room_bbox, rf, hd, issues, notes)  # type: ignore[arg-type]
            if label is None:
                continue
            if label:
                inst_id, cls = len(instances) + 1, class_index
                instances.append(_instance(pl, inst_id, cls, pair))  # type: ignore[arg-type]
            else:
                inst_id = 0
        lamp = class_index == LAMP_CLASS or "lamp" in pl.label.lower()
        parts.extend(_furniture_parts(pl, inst_id, cls, LAMP_LIGHT_STRENGTH if (mine and lamp) else 0.0))
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
