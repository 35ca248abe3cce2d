"""Hand-written 3D-FRONT / 3D-FUTURE fixtures in the real release's on-disk format (not the demo generator's).

Written from the published format (house JSON: ``furniture[]``, ``mesh[]`` with flat ``xyz``/``faces``/``uv``
in y-up world metres, ``material[]`` with ``jid``/``texture`` URL/``color``, ``scene.room[].children[]`` with
``ref``/``pos``/``rot`` [x, y, z, w]/``scale``; one ``model_info.json`` list; ``<jid>/raw_model.obj`` +
``model.mtl`` + ``texture.png``; ``3D-FRONT-texture/<jid>/texture.png``) and the real (super-category,
category) pair list, including what real downloads get wrong: a face-less OBJ, NaN vertices, a missing and a
corrupt texture, a child ``ref`` that names nothing, a duplicated furniture ``uid``, a ``valid: false`` entry,
an unknown category pair, a house file that is not JSON.

The door house (y-up, metres; nerfseg's z-up is (x, -z, y)): room A "Bedroom" is x in [0, 4], z in [0, 4];
room B "LivingRoom" is x in [4.1, 8.1], z in [0, 4]; a 10 cm wall between them at x in [4, 4.1] has a door
gap z in [1.5, 2.5], height 2.1 m, lined by "Pocket" meshes; ceilings at 2.8 m. Every surface is closed, so
a ray from inside either room always hits something.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

H = 2.8  # ceiling height
DOOR_Z = (1.5, 2.5)
DOOR_H = 2.1
WALL_X = (4.0, 4.1)

# model jids of the door house
BED, NIGHTSTAND, WARDROBE, SOFA, COFFEE, ARMCHAIR = "m-bed", "m-nightstand", "m-wardrobe", "m-sofa", "m-coffee", "m-armchair"
BROKEN_OBJ, NAN_OBJ, NO_TEXTURE, BAD_TEXTURE, SPACESHIP, NOT_ON_DISK, PENDANT = "m-noface", "m-nan", "m-notex", "m-badtex", "m-spaceship", "m-absent", "m-pendant"

MODEL_INFO = [
    {"model_id": BED, "super-category": "Bed", "category": "King-size Bed", "style": "Modern", "theme": None, "material": "Wood"},
    {"model_id": NIGHTSTAND, "super-category": "Cabinet/Shelf/Desk", "category": "Nightstand", "style": None, "theme": None, "material": None},
    {"model_id": WARDROBE, "super-category": "Cabinet/Shelf/Desk", "category": "Wardrobe", "style": None, "theme": None, "material": None},
    {"model_id": SOFA, "super-category": "Sofa", "category": "Three-Seat / Multi-seat Sofa", "style": None, "theme": None, "material": None},
    {"model_id": COFFEE, "super-category": "Cabinet/Shelf/Desk", "category": "Coffee Table", "style": None, "theme": None, "material": None},
    {"model_id": ARMCHAIR, "super-category": "Sofa", "category": "armchair", "style": None, "theme": None, "material": None},
    {"model_id": BROKEN_OBJ, "super-category": "Chair", "category": "Dining Chair", "style": None, "theme": None, "material": None},
    {"model_id": NAN_OBJ, "super-category": "Chair", "category": "Dining Chair", "style": None, "theme": None, "material": None},
    {"model_id": NO_TEXTURE, "super-category": "Cabinet/Shelf/Desk", "category": "Drawer Chest / Corner cabinet", "style": None, "theme": None, "material": None},
    {"model_id": BAD_TEXTURE, "super-category": "Cabinet/Shelf/Desk", "category": "Shelf", "style": None, "theme": None, "material": None},
    {"model_id": SPACESHIP, "super-category": "Vehicles", "category": "Spaceship", "style": None, "theme": None, "material": None},
    {"model_id": NOT_ON_DISK, "super-category": "Chair", "category": "Barstool", "style": None, "theme": None, "material": None},
    {"model_id": PENDANT, "super-category": "Lighting", "category": "Pendant Lamp", "style": None, "theme": None, "material": None},
]


def cube_obj(with_uv: bool = True) -> str:
    """A unit box, x and z in [-0.5, 0.5], y in [0, 1] (3D-FUTURE models stand on y = 0), outward faces."""
    v = [(x, y, z) for x in (-0.5, 0.5) for y in (0.0, 1.0) for z in (-0.5, 0.5)]
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    lines = ["# hand-written test model", "mtllib model.mtl"]
    lines += [f"v {x} {y} {z}" for x, y, z in v]
    if with_uv:
        lines += ["vt 0 0", "vt 1 0", "vt 1 1", "vt 0 1"]
    lines.append("usemtl material_0")
    for a, b, c, d in quads:
        if with_uv:
            lines.append(f"f {a + 1}/1 {b + 1}/2 {c + 1}/3 {d + 1}/4")
        else:
            lines.append(f"f {a + 1} {b + 1} {c + 1} {d + 1}")
    return "\n".join(lines) + "\n"


MTL = "newmtl material_0\nKa 1 1 1\nKd 0.6 0.5 0.4\nmap_Kd texture.png\n"


def write_model(future: Path, jid: str, obj: str | None = None, texture: str = "ok") -> None:
    """``<jid>/raw_model.obj`` + ``model.mtl`` + ``texture.png`` ("ok", "missing" or "corrupt")."""
    folder = future / jid
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "raw_model.obj").write_text(obj if obj is not None else cube_obj())
    (folder / "model.mtl").write_text(MTL)
    if texture == "ok":
        rgb = (np.arange(16 * 16 * 3).reshape(16, 16, 3) * 7 % 200 + 30).astype(np.uint8)
        Image.fromarray(rgb).save(folder / "texture.png")
    elif texture == "corrupt":
        (folder / "texture.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")


def write_texture(textures: Path, folder: str, value: int) -> None:
    (textures / folder).mkdir(parents=True, exist_ok=True)
    tile = np.zeros((8, 8, 3), np.uint8)
    tile[::2, ::2] = value
    tile[1::2, 1::2] = value
    Image.fromarray(tile + 20).save(textures / folder / "texture.png")


def quad(uid: str, kind: str, corners: list[tuple[float, float, float]], material: str) -> dict[str, Any]:
    """A 3D-FRONT architecture mesh: one quad, corners counter-clockwise seen from the side it faces."""
    xyz = [c for p in corners for c in p]
    p = np.array(corners, dtype=float)
    n = np.cross(p[1] - p[0], p[2] - p[0])
    n = (n / np.linalg.norm(n)).tolist()
    u = np.linalg.norm(p[1] - p[0])
    w = np.linalg.norm(p[3] - p[0])
    return {
        "uid": uid,
        "jid": "",
        "type": kind,
        "xyz": xyz,
        "normal": n * 4,
        "uv": [0, 0, u, 0, u, w, 0, w],
        "faces": [0, 1, 2, 0, 2, 3],
        "material": material,
        "constructid": uid,
        "instanceid": f"{kind}/{uid}",
    }


def _box_room(prefix: str, x0: float, x1: float, z0: float, z1: float, mats: dict[str, str], east_door: bool, west_door: bool) -> list[dict[str, Any]]:
    """Floor, ceiling and inner walls of one rectangular room (y-up), faces towards the room."""
    m = [
        quad(f"{prefix}-floor", "Floor", [(x0, 0, z1), (x1, 0, z1), (x1, 0, z0), (x0, 0, z0)], mats["floor"]),  # faces +y
        quad(f"{prefix}-ceiling", "Ceiling", [(x0, H, z0), (x1, H, z0), (x1, H, z1), (x0, H, z1)], mats["ceiling"]),  # faces -y
        quad(f"{prefix}-wall-n", "WallInner", [(x0, 0, z0), (x1, 0, z0), (x1, H, z0), (x0, H, z0)], mats["wall"]),  # z = z0, faces +z
        quad(f"{prefix}-wall-s", "WallInner", [(x1, 0, z1), (x0, 0, z1), (x0, H, z1), (x1, H, z1)], mats["wall"]),  # z = z1, faces -z
    ]
    for side, x, door in (("w", x0, west_door), ("e", x1, east_door)):
        sign = 1 if side == "w" else -1  # the wall faces +x (west wall) or -x (east wall)

        def wall(uid: str, za: float, zb: float, ya: float, yb: float) -> dict[str, Any]:
            a, b = (za, zb) if sign < 0 else (zb, za)
            return quad(uid, "WallInner", [(x, ya, a), (x, ya, b), (x, yb, b), (x, yb, a)], mats["wall"])

        if door:
            m += [wall(f"{prefix}-wall-{side}1", z0, DOOR_Z[0], 0, H), wall(f"{prefix}-wall-{side}2", DOOR_Z[1], z1, 0, H), wall(f"{prefix}-wall-{side}3", *DOOR_Z, DOOR_H, H)]
        else:
            m.append(wall(f"{prefix}-wall-{side}", z0, z1, 0, H))
    return m


def _door_pocket(mat: str) -> list[dict[str, Any]]:
    """The lining of the door gap through the 10 cm wall (real houses have "Pocket" meshes there)."""
    (xa, xb), (za, zb) = WALL_X, DOOR_Z
    return [
        quad("pocket-bottom", "Pocket", [(xa, 0, zb), (xb, 0, zb), (xb, 0, za), (xa, 0, za)], mat),
        quad("pocket-top", "Pocket", [(xa, DOOR_H, za), (xb, DOOR_H, za), (xb, DOOR_H, zb), (xa, DOOR_H, zb)], mat),
        quad("pocket-n", "Pocket", [(xa, 0, za), (xb, 0, za), (xb, DOOR_H, za), (xa, DOOR_H, za)], mat),
        quad("pocket-s", "Pocket", [(xb, 0, zb), (xa, 0, zb), (xa, DOOR_H, zb), (xb, DOOR_H, zb)], mat),
    ]


def child(ref: str, n: int, pos: tuple[float, float, float], scale: tuple[float, float, float], yaw_deg: float = 0.0) -> dict[str, Any]:
    half = np.radians(yaw_deg) / 2
    return {"ref": ref, "instanceid": f"furniture/{n}", "pos": list(pos), "rot": [0.0, float(np.sin(half)), 0.0, float(np.cos(half))], "scale": list(scale)}


def door_house(uid: str = "house-door", room_ids: tuple[str, str] = ("Bedroom-101", "LivingRoom-102")) -> dict[str, Any]:
    """The two-room house with a door gap, good and broken furniture, and every kind of architecture material."""
    materials = [
        {"uid": "mat-wall", "jid": "tex-wall-jid", "texture": "", "normaltexture": "", "color": [255, 255, 255, 255]},  # reachable only through its jid
        {"uid": "mat-floor", "jid": "", "texture": "https://example.invalid/texture/tex-floor-url/texture.png", "normaltexture": "", "color": [255, 255, 255, 255], "UVTransform": [0.5, 0, 0, 0, 0.5, 0, 0, 0, 1]},
        {"uid": "mat-ceiling", "jid": "", "texture": "", "normaltexture": "", "color": [240, 238, 230, 255]},  # colour only
        {"uid": "mat-pocket", "jid": "tex-not-downloaded", "texture": "", "normaltexture": "", "color": [120, 90, 60, 255]},  # named, missing
    ]
    mats = {"floor": "mat-floor", "ceiling": "mat-ceiling", "wall": "mat-wall"}
    meshes = _box_room("a", 0.0, WALL_X[0], 0.0, 4.0, mats, east_door=True, west_door=False)
    meshes += _box_room("b", WALL_X[1], 8.1, 0.0, 4.0, mats, east_door=False, west_door=True)
    meshes += _door_pocket("mat-pocket")
    furniture = [
        {"uid": "f-bed", "jid": BED, "title": "bed", "valid": True},
        {"uid": "f-nightstand", "jid": NIGHTSTAND, "title": "nightstand", "valid": True},
        {"uid": "f-wardrobe", "jid": "m-old-wardrobe", "title": "wardrobe (stale entry)", "valid": True},
        {"uid": "f-wardrobe", "jid": WARDROBE, "title": "wardrobe", "valid": True},  # repeated uid: the toolbox keeps this last one
        {"uid": "f-sofa", "jid": SOFA, "title": "sofa", "valid": True},
        {"uid": "f-coffee", "jid": COFFEE, "title": "coffee table", "valid": True},
        {"uid": "f-armchair", "jid": ARMCHAIR, "title": "armchair", "valid": True},
        {"uid": "f-noface", "jid": BROKEN_OBJ, "title": "chair", "valid": True},
        {"uid": "f-nan", "jid": NAN_OBJ, "title": "chair", "valid": True},
        {"uid": "f-notex", "jid": NO_TEXTURE, "title": "drawer chest", "valid": True},
        {"uid": "f-badtex", "jid": BAD_TEXTURE, "title": "shelf", "valid": True},
        {"uid": "f-spaceship", "jid": SPACESHIP, "title": "spaceship", "valid": True},
        {"uid": "f-absent", "jid": NOT_ON_DISK, "title": "barstool", "valid": True},
        {"uid": "f-pendant", "jid": PENDANT, "title": "pendant lamp", "valid": True},
        {"uid": "f-invalid", "jid": BED, "title": "bed", "valid": False},
    ]
    arch = lambda prefix: [{"ref": m["uid"], "instanceid": m["instanceid"], "pos": [0, 0, 0], "rot": [0, 0, 0, 1], "scale": [1, 1, 1]} for m in meshes if m["uid"].startswith(prefix)]
    room_a = arch("a-") + arch("pocket") + [
        child("f-bed", 1, (1.2, 0.0, 1.2), (1.8, 0.5, 2.0)),
        child("f-nightstand", 2, (0.4, 0.0, 2.6), (0.4, 0.5, 0.4)),
        child("f-wardrobe", 3, (1.0, 0.0, 3.6), (1.6, 2.0, 0.5)),
        child("f-noface", 4, (3.0, 0.0, 0.6), (0.5, 0.9, 0.5)),
        child("f-nan", 5, (3.0, 0.0, 3.4), (0.5, 0.9, 0.5)),
        child("f-notex", 6, (2.4, 0.0, 3.6), (0.8, 1.0, 0.45)),
        child("f-badtex", 7, (3.6, 0.0, 1.0), (0.5, 1.8, 0.4)),
        child("f-spaceship", 8, (2.6, 0.0, 2.0), (0.4, 0.4, 0.4)),
        child("f-absent", 9, (3.5, 0.0, 3.5), (0.4, 0.7, 0.4)),
        child("f-pendant", 10, (2.0, 2.3, 2.0), (0.4, 0.4, 0.4)),
        child("f-invalid", 11, (3.5, 0.0, 0.5), (0.5, 0.5, 0.5)),
        {"ref": "f-deleted-long-ago", "instanceid": "furniture/12", "pos": [1, 0, 1], "rot": [0, 0, 0, 1], "scale": [1, 1, 1]},
    ]
    room_b = arch("b-") + [
        child("f-sofa", 21, (7.4, 0.0, 2.0), (0.9, 0.8, 2.2)),  # opposite the door, seen through it from room A
        child("f-coffee", 22, (6.0, 0.0, 2.0), (0.6, 0.45, 1.0)),
        child("f-armchair", 23, (6.0, 0.0, 0.6), (0.8, 0.8, 0.8)),
    ]
    return {
        "uid": uid,
        "jobid": uid,
        "design_version": "0.1",
        "code_version": "0.11",
        "north_vector": [0, 1, 0],
        "furniture": furniture,
        "mesh": meshes,
        "material": materials,
        "extension": {},
        "scene": {
            "ref": "-1",
            "pos": [0, 0, 0],
            "rot": [0, 0, 0, 1],
            "scale": [1, 1, 1],
            "room": [
                {"type": "Bedroom", "instanceid": room_ids[0], "size": 16.0, "pos": [0, 0, 0], "rot": [0, 0, 0, 1], "scale": [1, 1, 1], "children": room_a, "empty": 0},
                {"type": "LivingRoom", "instanceid": room_ids[1], "size": 16.0, "pos": [0, 0, 0], "rot": [0, 0, 0, 1], "scale": [1, 1, 1], "children": room_b, "empty": 0},
            ],
        },
    }


@dataclass
class Release:
    front3d: Path
    future: Path
    textures: Path


def write_release(root: Path, houses: dict[str, Any]) -> Release:
    """A 3D-FRONT / 3D-FUTURE / 3D-FRONT-texture tree: ``houses`` maps file stem -> house dict, or str (raw text)."""
    rel = Release(root / "3D-FRONT", root / "3D-FUTURE-model", root / "3D-FRONT-texture")
    for p in (rel.front3d, rel.future, rel.textures):
        p.mkdir(parents=True, exist_ok=True)
    for stem, house in houses.items():
        (rel.front3d / f"{stem}.json").write_text(house if isinstance(house, str) else json.dumps(house))
    (rel.future / "model_info.json").write_text(json.dumps(MODEL_INFO))
    for jid in (BED, NIGHTSTAND, WARDROBE, SOFA, COFFEE, ARMCHAIR, SPACESHIP, PENDANT):
        write_model(rel.future, jid)
    write_model(rel.future, BROKEN_OBJ, obj="# exported without faces\nmtllib model.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\n")
    write_model(rel.future, NAN_OBJ, obj=cube_obj().replace("v 0.5 1.0 0.5", "v nan 1.0 0.5"))
    write_model(rel.future, NO_TEXTURE, texture="missing")
    write_model(rel.future, BAD_TEXTURE, texture="corrupt")
    write_texture(rel.textures, "tex-wall-jid", 180)
    write_texture(rel.textures, "tex-floor-url", 120)
    return rel


def pair_house(pairs: list[tuple[str, str | None]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One 12 x 12 m room holding one box per (super-category, category) pair, on a 0.9 m grid; (house, model_info)."""
    mats = {"floor": "mat-c", "ceiling": "mat-c", "wall": "mat-c"}
    meshes = _box_room("r", 0.0, 12.0, 0.0, 12.0, mats, east_door=False, west_door=False)
    furniture, info, kids = [], [], []
    for k, (sup, cat) in enumerate(pairs):
        jid = f"pair-{k:02d}"
        furniture.append({"uid": f"f-{k}", "jid": jid, "title": cat or "", "valid": True})
        info.append({"model_id": jid, "super-category": sup, "category": cat})
        x, z = 0.9 + 1.1 * (k % 10), 0.9 + 1.1 * (k // 10)
        kids.append(child(f"f-{k}", k, (x, 0.0, z), (0.6, 0.7, 0.6)))
    kids += [{"ref": m["uid"], "instanceid": m["instanceid"], "pos": [0, 0, 0], "rot": [0, 0, 0, 1], "scale": [1, 1, 1]} for m in meshes]
    house = {
        "uid": "house-pairs",
        "furniture": furniture,
        "mesh": meshes,
        "material": [{"uid": "mat-c", "jid": "", "texture": "", "color": [200, 200, 200, 255]}],
        "scene": {"room": [{"type": "LivingRoom", "instanceid": "LivingRoom-pairs", "children": kids}]},
    }
    return house, info
