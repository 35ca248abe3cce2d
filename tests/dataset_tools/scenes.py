"""Hand-built test scenes (no 3D-FRONT needed): a box room with a ceiling light and a few labelled objects.

Every object is a union of closed primitives (boxes, capped cylinders) placed with a yaw about +z, so the
tests can compute exact answers (depths, voxel counts, visible faces) analytically. Other test files
import :func:`make_box_room` and the object specs from here::

    from tests.dataset_tools.scenes import make_box_room, ObjectSpec, Primitive
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence

import numpy as np
import trimesh

from nerfseg.dataset_tools.scene import MeshPart, ObjectInstance, Scene

ROOM_SIZE = (5.0, 4.0, 2.8)
ROOM_ORIGIN = (-1.0, -2.0, 0.0)  # a non-zero minimum corner catches "assumes min = 0" bugs


@dataclass(frozen=True)
class Primitive:
    """A closed box or capped cylinder in room-local coordinates (relative to the room's min corner).

    ``size`` is the full extent (dx, dy, dz) before the yaw; a cylinder uses ``size[0]`` as diameter.
    """

    centre: tuple[float, float, float]
    size: tuple[float, float, float]
    yaw: float = 0.0
    shape: str = "box"  # "box" | "cylinder"


@dataclass(frozen=True)
class ObjectSpec:
    """One labelled object: the union of its primitives (each primitive becomes one MeshPart)."""

    name: str
    class_index: int
    nyu40_id: int
    primitives: tuple[Primitive, ...]
    color: tuple[float, float, float] = (0.6, 0.4, 0.3)
    emissive: float = 0.0


def _table_primitives() -> tuple[Primitive, ...]:
    top = Primitive((3.5, 2.8, 0.72), (1.2, 0.8, 0.06))
    legs = tuple(
        Primitive((3.5 + sx * 0.55, 2.8 + sy * 0.35, 0.345), (0.06, 0.06, 0.69)) for sx in (-1, 1) for sy in (-1, 1)
    )
    return (top, *legs)


DEFAULT_OBJECTS: tuple[ObjectSpec, ...] = (
    ObjectSpec("bed", 2, 4, (Primitive((1.2, 1.2, 0.3), (2.0, 1.6, 0.6)),), color=(0.7, 0.7, 0.85)),
    ObjectSpec("table", 5, 7, _table_primitives(), color=(0.55, 0.35, 0.2)),
    # seat and back overlap (a union of overlapping closed parts)
    ObjectSpec(
        "chair",
        3,
        5,
        (Primitive((3.5, 1.9, 0.45), (0.5, 0.5, 0.08)), Primitive((3.5, 1.67, 0.75), (0.5, 0.06, 0.66))),
        color=(0.2, 0.5, 0.3),
    ),
    ObjectSpec("cabinet", 1, 3, (Primitive((4.2, 0.6, 0.5), (0.8, 0.45, 1.0), yaw=np.deg2rad(30.0)),), color=(0.8, 0.6, 0.3)),
    ObjectSpec("lamp", 9, 35, (Primitive((0.4, 3.5, 0.6), (0.3, 0.3, 1.2), shape="cylinder"),), color=(0.9, 0.9, 0.6)),
)


def _rotz(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def primitive_mesh(prim: Primitive, origin: np.ndarray) -> trimesh.Trimesh:
    """The closed, outward-facing mesh of one primitive in world coordinates."""
    if prim.shape == "box":
        mesh = trimesh.creation.box(extents=prim.size)
    elif prim.shape == "cylinder":
        mesh = trimesh.creation.cylinder(radius=prim.size[0] / 2.0, height=prim.size[2], sections=24)
    else:
        raise ValueError(f"unknown primitive shape {prim.shape!r}")
    vertices = mesh.vertices @ _rotz(prim.yaw).T + origin + np.asarray(prim.centre)
    return trimesh.Trimesh(vertices, mesh.faces, process=False)


def _quad(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two triangles over 4 corners given counter-clockwise as seen from the side the normal points to."""
    return np.asarray(corners, dtype=np.float64), np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int64)


def checker_texture(n: int = 8, cell: int = 8, colors: tuple = ((230, 220, 200), (90, 70, 50))) -> np.ndarray:
    """An n x n checkerboard (uint8 RGB) with ``cell`` pixels per square."""
    idx = (np.arange(n * cell)[:, None] // cell + np.arange(n * cell)[None, :] // cell) % 2
    return np.asarray(colors, dtype=np.uint8)[idx]


def obb_of_points(points: np.ndarray, yaw: float) -> np.ndarray:
    """OBB (x,y,z,w,l,h,yaw) of points in the frame rotated by ``yaw``, normalised as the reference does.

    (w >= l and yaw in [-pi/2, pi/2), SPEC / reference poly2obb_3d.)
    """
    local = points @ _rotz(yaw)  # world -> local: R^T p, written as p @ R
    lo, hi = local.min(axis=0), local.max(axis=0)
    centre = _rotz(yaw) @ ((lo + hi) / 2.0)
    w, l, h = hi - lo
    if l > w:
        w, l, yaw = l, w, yaw + np.pi / 2.0
    yaw = (yaw + np.pi / 2.0) % np.pi - np.pi / 2.0
    return np.array([centre[0], centre[1], centre[2], w, l, h, yaw])


def make_box_room(
    objects: Sequence[ObjectSpec] | None = None,
    size: tuple[float, float, float] = ROOM_SIZE,
    origin: tuple[float, float, float] = ROOM_ORIGIN,
    light: bool = True,
    textured_floor: bool = True,
    scene_id: str = "test_room",
) -> Scene:
    """A closed rectangular room (floor, 4 walls, ceiling, an emissive ceiling panel) with labelled objects.

    Object positions in ``objects`` are relative to the room's minimum corner ``origin``; instance ids are
    1..N in the order given. The floor carries a 1 m checker texture (uvs = world xy in metres) so
    texture lookups and uv wrapping are exercised.
    """
    objects = DEFAULT_OBJECTS if objects is None else tuple(objects)
    o = np.asarray(origin, dtype=np.float64)
    sx, sy, sz = size
    c = o + np.array(
        [[0, 0, 0], [sx, 0, 0], [sx, sy, 0], [0, sy, 0], [0, 0, sz], [sx, 0, sz], [sx, sy, sz], [0, sy, sz]], dtype=np.float64
    )
    parts: list[MeshPart] = []
    floor_v, floor_f = _quad(c[[0, 1, 2, 3]])  # normal +z
    parts.append(
        MeshPart(
            "floor",
            floor_v,
            floor_f,
            uvs=floor_v[:, :2].copy() if textured_floor else None,
            texture=checker_texture() if textured_floor else None,
            color=(1.0, 1.0, 1.0) if textured_floor else (0.7, 0.65, 0.6),
            kind="Floor",
        )
    )
    ceil_v, ceil_f = _quad(c[[4, 7, 6, 5]])  # normal -z
    parts.append(MeshPart("ceiling", ceil_v, ceil_f, color=(0.9, 0.9, 0.9), kind="Ceiling"))
    walls = {
        "wall_ymin": [0, 4, 5, 1],  # normal +y (inwards)
        "wall_xmax": [1, 5, 6, 2],  # normal -x
        "wall_ymax": [2, 6, 7, 3],  # normal -y
        "wall_xmin": [3, 7, 4, 0],  # normal +x
    }
    wall_colors = [(0.85, 0.8, 0.7), (0.75, 0.8, 0.85), (0.85, 0.8, 0.7), (0.75, 0.8, 0.85)]
    for (name, idx), color in zip(walls.items(), wall_colors):
        v, f = _quad(c[idx])
        parts.append(MeshPart(name, v, f, color=color, kind="WallInner"))
    if light:
        panel = trimesh.creation.box(extents=(1.0, 1.0, 0.02))
        centre = o + np.array([sx / 2.0, sy / 2.0, sz - 0.02])
        parts.append(
            MeshPart("light_panel", panel.vertices + centre, np.asarray(panel.faces), color=(1.0, 0.97, 0.9), kind="LightPanel", emissive=1.0)
        )
    instances: list[ObjectInstance] = []
    for inst_id, spec in enumerate(objects, start=1):
        points = []
        for k, prim in enumerate(spec.primitives):
            mesh = primitive_mesh(prim, o)
            points.append(mesh.vertices)
            parts.append(
                MeshPart(
                    f"{spec.name}_{k}",
                    np.asarray(mesh.vertices),
                    np.asarray(mesh.faces, dtype=np.int64),
                    color=spec.color,
                    instance_id=inst_id,
                    class_index=spec.class_index,
                    emissive=spec.emissive,
                )
            )
        pts = np.concatenate(points)
        aabb = np.concatenate([pts.min(axis=0), pts.max(axis=0)])
        yaw = spec.primitives[0].yaw
        instances.append(
            ObjectInstance(
                instance_id=inst_id,
                class_index=spec.class_index,
                nyu40_id=spec.nyu40_id,
                category=spec.name,
                super_category=None,
                jid=f"jid-{spec.name}",
                uid=f"uid-{inst_id}",
                aabb=aabb,
                obb=obb_of_points(pts, yaw),
            )
        )
    room_bbox = np.stack([o, o + np.array(size, dtype=np.float64)])
    return Scene(
        scene_id=scene_id,
        house_id="test_house",
        room_type="LivingRoom",
        room_bbox=room_bbox,
        parts=parts,
        instances=instances,
        floor_polygons=[c[[0, 1, 2, 3], :2].copy()],
    )
