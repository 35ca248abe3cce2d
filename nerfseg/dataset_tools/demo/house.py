"""One demo house as a 3D-FRONT house JSON (y-up) plus the 3D-FUTURE model files of its furniture."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from nerfseg import spec
from nerfseg.dataset_tools.boxes import yaw_to_quat_xyzw, zup_to_yup
from nerfseg.dataset_tools.demo.furniture import DemoModel
from nerfseg.dataset_tools.demo.layout import RoomLayout, make_room
from nerfseg.dataset_tools.demo.textures import PAINTS, arch_texture, draw_uniform, pick_colour
from nerfseg.dataset_tools.obj import format_obj
from nerfseg.io import encode_png

GENERATOR_VERSION = "1"
FRONT3D_DIR = "3D-FRONT"
FUTURE_DIR = "3D-FUTURE-model"
TEXTURE_DIR = "3D-FRONT-texture"
FAKE_TEXTURE_URL = "https://demo.nerfseg.invalid/texture/{jid}/texture.png"  # never downloaded


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


class DemoFiles:
    """Collects files (relative path -> bytes); written atomically at the end, hashed for the manifest."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def put(self, rel: str, data: bytes) -> None:
        self.files[rel] = data


def seeded_uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def _point(x: float, y: float, z: float) -> np.ndarray:
    return np.array([x, y, z], dtype=np.float64)


class _HouseJSON:
    """The lists of one house JSON being filled room by room, and the id counter real files number them with."""

    def __init__(self, rng: np.random.Generator, house_uid: str, files: DemoFiles, models_info: list[dict[str, Any]], first_id: int):
        self.rng, self.house_uid, self.files, self.models_info = rng, house_uid, files, models_info
        self.furniture: list[dict[str, Any]] = []
        self.meshes: list[dict[str, Any]] = []
        self.materials: list[dict[str, Any]] = []
        self.rooms: list[dict[str, Any]] = []
        self.records: list[dict[str, Any]] = []
        self._counter = first_id

    def next_id(self) -> int:
        self._counter += 1
        return self._counter

    def material(self, color: list[int], texture: np.ndarray | None, tile: float | None) -> str:
        """A material entry (its texture file written under 3D-FRONT-texture/<jid>/); returns its uid."""
        uid = f"{self.next_id()}/material"
        jid = seeded_uuid(self.rng) if texture is not None else ""
        m: dict[str, Any] = {"uid": uid, "jid": jid, "texture": FAKE_TEXTURE_URL.format(jid=jid) if jid else "", "normaltexture": "", "color": color}
        if tile is not None:
            m["UVTransform"] = [round(1.0 / tile, 5), 0.0, 0.0, 0.0, round(1.0 / tile, 5), 0.0, 0.0, 0.0, 1.0]
        if texture is not None:
            self.files.put(f"{TEXTURE_DIR}/{jid}/texture.png", encode_png(texture))
        self.materials.append(m)
        return uid

    def room_materials(self) -> tuple[str, str, str, str, str]:
        """Floor, wall, ceiling, light band and baseboard materials of one room (drawn in this order)."""
        rng = self.rng
        floor_mat = self.material([255, 255, 255, 255], arch_texture(rng, "floor"), draw_uniform(rng, 0.6, 1.0))
        wall_mat = self.material([255, 255, 255, 255], arch_texture(rng, "wall"), draw_uniform(rng, 1.0, 1.6))
        ceil_mat = self.material([246, 245, 240, 255], None, None)
        band_mat = self.material([255, 252, 240, 255], None, None)
        base_mat = self.material([int(v) for v in (pick_colour(rng, PAINTS) * 255).round()] + [255], None, None)
        return floor_mat, wall_mat, ceil_mat, band_mat, base_mat

    def add_mesh(self, kind: str, quads: list, mat: str, children: list[dict[str, Any]]) -> None:
        xyz, nrm, uv, faces = _merge_quads(quads)
        k = self.next_id()
        uid = f"{k}/{kind.lower()}"
        self.meshes.append(
            {"uid": uid, "jid": "", "type": kind, "xyz": _flat(xyz), "normal": _flat(nrm), "uv": _flat(uv), "faces": faces.astype(int).tolist(), "material": mat, "constructid": str(k), "instanceid": f"{kind}/{k}"}
        )
        children.append({"ref": uid, "instanceid": f"{kind}/{k}", "pos": [0.0, 0.0, 0.0], "rot": [0.0, 0.0, 0.0, 1.0], "scale": [1.0, 1.0, 1.0]})

    def architecture(self, L: RoomLayout, ox: float, oy: float, children: list[dict[str, Any]]) -> None:
        """Floor, ceiling, four inner walls, baseboards and the LightBand panels of one room at (ox, oy)."""
        floor_mat, wall_mat, ceil_mat, band_mat, base_mat = self.room_materials()
        X0, Y0, X1, Y1, H = ox, oy, ox + L.lx, oy + L.ly, L.h
        P = _point
        self.add_mesh("Floor", [_quad_mesh(np.array([P(X0, Y0, 0), P(X1, Y0, 0), P(X1, Y1, 0), P(X0, Y1, 0)]), np.array([[X0, Y0], [X1, Y0], [X1, Y1], [X0, Y1]]))], floor_mat, children)
        self.add_mesh("Ceiling", [_quad_mesh(np.array([P(X0, Y0, H), P(X0, Y1, H), P(X1, Y1, H), P(X1, Y0, H)]), np.array([[X0, Y0], [X0, Y1], [X1, Y1], [X1, Y0]]))], ceil_mat, children)
        walls = {  # bottom edge a -> b of each inner face, clockwise seen from above: (b - a) x up points into the room
            "S": (P(X1, Y0, 0), P(X0, Y0, 0)),
            "W": (P(X0, Y0, 0), P(X0, Y1, 0)),
            "N": (P(X0, Y1, 0), P(X1, Y1, 0)),
            "E": (P(X1, Y1, 0), P(X1, Y0, 0)),
        }
        for a, b in walls.values():
            length = float(np.linalg.norm(b - a))
            up = P(0, 0, H)
            self.add_mesh("WallInner", [_quad_mesh(np.array([a, b, b + up, a + up]), np.array([[0, 0], [length, 0], [length, H], [0, H]]))], wall_mat, children)
        bb_h, bb_t = 0.08, 0.015
        for a, b in walls.values():
            d = (b - a) / np.linalg.norm(b - a)
            inward = np.array([d[1], -d[0], 0.0])
            a2, b2 = a + inward * bb_t, b + inward * bb_t
            up = P(0, 0, bb_h)
            length = float(np.linalg.norm(b - a))
            front = _quad_mesh(np.array([a2, b2, b2 + up, a2 + up]), np.array([[0, 0], [length, 0], [length, bb_h], [0, bb_h]]))
            top = _quad_mesh(np.array([a2 + up, b2 + up, b + up, a + up]), np.array([[0, 0], [length, 0], [length, bb_t], [0, bb_t]]))
            self.add_mesh("Baseboard", [front, top], base_mat, children)
        for p in L.panels:
            x0, y0, x1, y1 = p[0] + ox, p[1] + oy, p[2] + ox, p[3] + oy
            z = H - 0.01
            self.add_mesh("LightBand", [_quad_mesh(np.array([P(x0, y0, z), P(x0, y1, z), P(x1, y1, z), P(x1, y0, z)]), np.array([[0, 0], [0, y1 - y0], [x1 - x0, y1 - y0], [x1 - x0, 0]]))], band_mat, children)

    def _register_model(self, m: DemoModel) -> None:
        """Give a model its jid on first use: its files, its model_info entry and its furniture entry."""
        m.jid = seeded_uuid(self.rng)
        m.uid = f"{self.next_id()}/model"
        _write_model(self.files, m)
        self.models_info.append({"model_id": m.jid, "style": "Modern", "theme": None, "material": None, "super-category": m.super_category, "category": m.category})
        size = (m.hi - m.lo).round(4).tolist()
        entry: dict[str, Any] = {"uid": m.uid, "jid": m.jid, "title": m.title, "size": size, "valid": True}
        if m.category is not None:
            entry["category"] = m.category
        self.furniture.append(entry)

    def furniture_children(self, L: RoomLayout, ox: float, oy: float, children: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One model (jid) and furniture entry per distinct model, one child per placement; returns the manifest objects."""
        objects: list[dict[str, Any]] = []
        for it in L.items:
            m = it.model
            if not m.jid:
                self._register_model(m)
            pos_zup = np.array([it.x + ox, it.y + oy, it.z])
            k = self.next_id()
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
        return objects

    def add_room(self, r: int, room_type: str, L: RoomLayout, ox: float, oy: float) -> None:
        """The room entry (children interleaved in a seeded order, as real files mix them) and its manifest record."""
        children: list[dict[str, Any]] = []
        self.architecture(L, ox, oy, children)
        objects = self.furniture_children(L, ox, oy, children)
        order = self.rng.permutation(len(children))
        instanceid = f"{room_type}-{self.next_id()}-{self.house_uid[:8]}"  # unique per house: a demo never repeats a layout
        self.rooms.append({"type": room_type, "instanceid": instanceid, "size": round(L.lx * L.ly, 3), "pos": [0.0, 0.0, 0.0], "rot": [0.0, 0.0, 0.0, 1.0], "scale": [1.0, 1.0, 1.0], "children": [children[i] for i in order], "empty": 0})
        # the manifest lists objects in children order, which is the loader's instance order
        fur_order = [i for i in order if children[i]["instanceid"].startswith("furniture/")]
        fur_index = {c["instanceid"]: n for n, c in enumerate(c for c in children if c["instanceid"].startswith("furniture/"))}
        self.records.append(
            {
                "room_index": r,
                "type": room_type,
                "instanceid": instanceid,
                "size": [L.lx, L.ly, L.h],
                "room_bbox": _flat([[ox, oy, 0.0], [ox + L.lx, oy + L.ly, L.h]]),
                "objects": [objects[fur_index[children[i]["instanceid"]]] for i in fur_order],
            }
        )

    def house_json(self) -> dict[str, Any]:
        return {
            "uid": self.house_uid,
            "jobid": self.house_uid,
            "design_version": "nerfseg-demo",
            "code_version": GENERATOR_VERSION,
            "north_vector": [0, 1, 0],
            "furniture": self.furniture,
            "mesh": self.meshes,
            "material": self.materials,
            "extension": {},
            "scene": {"ref": "-1", "pos": [0, 0, 0], "rot": [0, 0, 0, 1], "scale": [1, 1, 1], "room": self.rooms},
        }


def build_house(rng: np.random.Generator, house_uid: str, room_types: list[str], files: DemoFiles, models_info: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Build one house JSON (y-up) and its models; returns (house dict, per-room manifest records)."""
    origin = np.array([draw_uniform(rng, -8, 8), draw_uniform(rng, -8, 8)]).round(2)
    house = _HouseJSON(rng, house_uid, files, models_info, 1000 + int(rng.integers(0, 8000)))
    x_cursor = 0.0
    for r, room_type in enumerate(room_types):
        L = make_room(rng, room_type)
        ox, oy = float(origin[0] + x_cursor), float(origin[1])
        x_cursor += L.lx + 0.2  # the next room sits beyond a 20 cm wall
        house.add_room(r, room_type, L, ox, oy)
    return house.house_json(), house.records


def _write_model(files: DemoFiles, m: DemoModel) -> None:
    """raw_model.obj (positions shared between faces, uvs indexed separately), model.mtl, texture.png."""
    pos_keys, pos_inv = np.unique(np.round(m.vertices, 5), axis=0, return_inverse=True)
    uv_keys, uv_inv = np.unique(np.round(m.uvs, 5), axis=0, return_inverse=True)
    pos_inv, uv_inv = pos_inv.reshape(-1), uv_inv.reshape(-1)
    obj = format_obj(pos_keys, pos_inv[m.faces], uv_keys, uv_inv[m.faces], "model.mtl", "material_0")
    mtl = b"# nerfseg demo material\nnewmtl material_0\nKa 1.000000 1.000000 1.000000\nKd 1.000000 1.000000 1.000000\nKs 0.000000 0.000000 0.000000\nd 1.000000\nillum 1\nmap_Kd texture.png\n"
    files.put(f"{FUTURE_DIR}/{m.jid}/raw_model.obj", obj)
    files.put(f"{FUTURE_DIR}/{m.jid}/model.mtl", mtl)
    files.put(f"{FUTURE_DIR}/{m.jid}/texture.png", encode_png(m.texture()))

