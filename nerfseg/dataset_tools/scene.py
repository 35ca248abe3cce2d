"""The in-memory scene every dataset tool agrees on: what the loader produces and the renderers consume.

World frame: metres, z-up (SPEC section 1). The 3D-FRONT loader converts from y-up on load, so nothing
downstream ever sees y-up data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class MeshPart:
    """One triangle mesh with one material, belonging to one instance (or to the background).

    ``uvs`` are per vertex (vertices are split where an OBJ corner has several uvs), ``texture`` is an
    (H,W,3) uint8 image or None; ``color`` (RGB in [0,1]) multiplies the texture or stands alone.
    """

    name: str
    vertices: np.ndarray  # (V,3) float64, world z-up metres
    faces: np.ndarray  # (F,3) int64
    uvs: np.ndarray | None = None  # (V,2) float64
    texture: np.ndarray | None = None  # (H,W,3) uint8
    color: tuple[float, float, float] = (0.8, 0.8, 0.8)
    instance_id: int = 0  # 0 = background
    class_index: int = 0  # 0 = background
    kind: str = "furniture"  # "furniture" or the 3D-FRONT mesh type ("Floor", "WallInner", "Ceiling", ...)
    emissive: float = 0.0  # > 0 for light sources (ceiling panels, lamp shades)
    # optional source material parameters beyond colour / texture (e.g. roughness, metallic, specular,
    # or ones a renderer cannot map such as transparency); the Embree shader ignores them, the Cycles
    # renderer maps the ones it supports and counts the rest (nerfseg/dataset_tools/cycles.py)
    material: dict[str, float | str] = field(default_factory=dict)


@dataclass
class ObjectInstance:
    """One labelled object of a scene (a row of gt3d.h5's /instances table)."""

    instance_id: int  # 1..N, stable across views
    class_index: int  # 1..10
    nyu40_id: int
    category: str | None  # 3D-FUTURE category
    super_category: str | None
    jid: str  # 3D-FUTURE model id
    uid: str  # furniture uid in the house JSON
    aabb: np.ndarray  # (6,) world xmin,ymin,zmin,xmax,ymax,zmax
    obb: np.ndarray  # (7,) x,y,z,w,l,h,yaw about +z (w >= l, yaw in [-pi/2, pi/2))


@dataclass
class Scene:
    """A room of a house, ready to render: meshes, labelled instances and the room box."""

    scene_id: str
    house_id: str
    room_type: str
    room_bbox: np.ndarray  # (2,3) [[xmin,ymin,zmin],[xmax,ymax,zmax]] metres
    parts: list[MeshPart]
    instances: list[ObjectInstance]
    floor_polygons: list[np.ndarray] = field(default_factory=list)  # (K,2) xy outlines of the room's floor meshes
    warnings: list[str] = field(default_factory=list)  # e.g. missing 3D-FUTURE models (counted in the build report)

    def instance(self, instance_id: int) -> ObjectInstance:
        for inst in self.instances:
            if inst.instance_id == instance_id:
                return inst
        raise KeyError(instance_id)
