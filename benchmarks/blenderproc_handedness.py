"""Handedness check inside Blender: BlenderProc's 3D-FRONT furniture placement against nerfseg's (the toolbox's).

BlenderProc's Front3DLoader (which rendered the NeRF-RPN / Instance-NeRF data) imports ``raw_model.obj`` with
Blender's OBJ importer (axes: forward -Z, up Y), then sets the object's location to ``pos.xzy``, its scale to
``scale`` and its rotation to ``Rx(-90 deg) @ Quaternion(rot)`` (mathutils reads the quaternion w-first, the file
stores [x, y, z, w]); architecture vertices get y and z swapped. This script does those steps in ``bpy`` for an
asymmetric L-shaped model under random yaws and compares the world vertices with nerfseg's placement, expressed in
BlenderProc's world (nerfseg's y mirrored, which is exactly how the two architecture maps differ).

Result with Blender 4.2 (``pip install 'nerfseg[render]'``): BlenderProc's furniture equals nerfseg's placement with
each model mirrored in its own x (0 m), not nerfseg's placement itself (metres off): see docs/front3d.md.
Run: ``python benchmarks/blenderproc_handedness.py``. Prints numbers only.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from nerfseg.dataset_tools.boxes import Y_UP_TO_Z_UP, quat_xyzw_to_matrix  # noqa: E402

#: an L-shaped block (y-up model frame, standing on y = 0): asymmetric in x and z
BOXES = [((-1.0, 0.0, -0.4), (1.0, 0.8, 0.4)), ((0.6, 0.0, 0.4), (1.0, 0.8, 1.6))]
QUADS = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]


def l_model() -> tuple[np.ndarray, list[tuple[int, ...]]]:
    verts, faces = [], []
    for lo, hi in BOXES:
        base = len(verts)
        verts += [(x, y, z) for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
        faces += [tuple(base + i for i in q) for q in QUADS]
    return np.array(verts, dtype=np.float64), faces


def nerfseg_place(verts: np.ndarray, pos: list[float], rot: list[float], scale: list[float]) -> np.ndarray:
    """The toolbox placement nerfseg uses (z-up world)."""
    return (Y_UP_TO_Z_UP @ (quat_xyzw_to_matrix(rot) @ (verts * scale).T)).T + Y_UP_TO_Z_UP @ np.asarray(pos)


def same_points(a: np.ndarray, b: np.ndarray) -> float:
    """Largest distance between two vertex sets matched by sorting (they hold the same points in another order)."""
    a, b = np.round(a, 5), np.round(b, 5)
    return float(np.abs(a[np.lexsort(a.T[::-1])] - b[np.lexsort(b.T[::-1])]).max())


def main() -> None:
    try:
        import bpy
        import mathutils
    except ImportError:
        print("needs Blender as a Python module: pip install 'nerfseg[render]'")
        return
    verts, faces = l_model()
    world_mirror = np.diag([1.0, -1.0, 1.0])  # BlenderProc's architecture (x, z, y) vs nerfseg's (x, -z, y)
    rng = np.random.default_rng(0)
    worst = {"as placed": 0.0, "model mirrored in x": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        obj_path = Path(tmp) / "l.obj"
        obj_path.write_text("".join(f"v {x} {y} {z}\n" for x, y, z in verts) + "".join("f " + " ".join(str(i + 1) for i in f) + "\n" for f in faces))
        for _ in range(8):
            yaw = float(rng.uniform(-math.pi, math.pi))
            rot = [0.0, math.sin(yaw / 2), 0.0, math.cos(yaw / 2)]  # [x, y, z, w]: a yaw about the file's up axis
            pos = [float(rng.uniform(-3, 3)), 0.0, float(rng.uniform(-3, 3))]
            scale = rng.uniform(0.7, 1.3, 3).tolist()
            bpy.ops.wm.read_factory_settings(use_empty=True)
            bpy.ops.wm.obj_import(filepath=str(obj_path))
            obj = bpy.context.selected_objects[0]
            obj.location = mathutils.Vector(pos).xzy
            obj.scale = scale
            obj.rotation_euler = (mathutils.Matrix.Rotation(math.radians(-90), 4, "X") @ mathutils.Quaternion(rot).to_euler().to_matrix().to_4x4()).to_euler()
            bpy.context.view_layer.update()
            blenderproc = np.array([tuple(obj.matrix_world @ v.co) for v in obj.data.vertices])
            for name, model in (("as placed", verts), ("model mirrored in x", verts * [-1.0, 1.0, 1.0])):
                worst[name] = max(worst[name], same_points(blenderproc, nerfseg_place(model, pos, rot, scale) @ world_mirror.T))
    print(f"Blender {bpy.app.version_string}, 8 random yaws of an L-shaped model; largest vertex distance between BlenderProc's placement and")
    for name, d in worst.items():
        print(f"  nerfseg's (toolbox) placement, {name}, in BlenderProc's mirrored world: {d:.4f} m")


if __name__ == "__main__":
    main()
