"""What the Cycles translation maps from a nerfseg material, and the shading normals both renderers share.

Pure numpy, no Blender: the build audits unsupported materials even when every view comes from the resume cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nerfseg.dataset_tools.scene import MeshPart, Scene

#: MeshPart.material keys mapped onto the Principled BSDF; any other key is counted as unsupported.
SUPPORTED_MATERIAL_KEYS = {"roughness": "Roughness", "metallic": "Metallic", "specular": "Specular IOR Level"}


@dataclass
class MaterialReport:
    """What the translation could not map (rendered with the base colour instead)."""

    unsupported: list[dict[str, str]]

    @property
    def count(self) -> int:
        return len(self.unsupported)




def key_colour(part: MeshPart) -> tuple[float, float, float]:
    return tuple(float(np.clip(c, 0.0, 1.0)) for c in part.color)  # type: ignore[return-value]


def _texture_problem(tex: np.ndarray) -> str | None:
    """None when ``tex`` is an 8-bit (H,W), (H,W,3) or (H,W,4) image, else why it is not used."""
    arr = np.asarray(tex)
    if arr.dtype != np.uint8:
        return f"texture dtype {arr.dtype} (expected uint8)"
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4)):
        return None if arr.shape[0] > 0 and arr.shape[1] > 0 else "empty texture"
    return f"texture shape {arr.shape} (expected (H,W), (H,W,3) or (H,W,4))"


def part_material(part: MeshPart, textured: bool) -> tuple[np.ndarray | None, dict[str, float], list[str]]:
    """(usable texture or None, Principled BSDF inputs, problems) of one part; pure Python, no Blender.

    Problems are what the Cycles translation cannot map (the part then renders with its base colour).
    """
    problems: list[str] = []
    tex = part.texture if textured else None
    if tex is not None:
        why = _texture_problem(tex)
        if why:
            problems.append(why)
            tex = None
    params: dict[str, float] = {}
    for k, val in dict(getattr(part, "material", None) or {}).items():
        if k in SUPPORTED_MATERIAL_KEYS and isinstance(val, (int, float)):
            params[SUPPORTED_MATERIAL_KEYS[k]] = float(val)
        else:
            problems.append(f"material parameter {k}={val!r} not supported")
    if part.kind == "furniture" and any(w in part.name.lower() for w in ("bed", "sofa")):
        params.setdefault("Roughness", 0.5)  # as BlenderProc's 3D-FRONT loader
    return tex, params, problems


def unsupported_materials(scene: Scene) -> list[dict[str, str]]:
    """Parts whose material the Cycles translation renders with the base colour only, and why."""
    out = []
    for part in scene.parts:
        _, _, problems = part_material(part, part.texture is not None and part.uvs is not None)
        if problems:
            out.append({"part": part.name, "kind": part.kind, "problem": "; ".join(problems)})
    return out


def corner_normals_of(scene: Scene, crease_angle_deg: float) -> list[np.ndarray]:
    """Per part (F,3,3) shading normals at triangle corners, the same rule as the Embree shader.

    Smooth (area-weighted vertex normal) where faces meet flatter than the crease angle, the face normal
    across a crease; computed per part exactly as :class:`~nerfseg.dataset_tools.raycast.SceneRaycaster` does on
    its concatenated arrays (parts share no vertices there), so both renderers shade the same normals.
    """
    out = []
    cos_crease = math.cos(math.radians(crease_angle_deg))
    for part in scene.parts:
        v = np.asarray(part.vertices, dtype=np.float64)
        f = np.asarray(part.faces, dtype=np.int64)
        tri = v[f]
        cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        fn = cross / np.maximum(np.linalg.norm(cross, axis=1, keepdims=True), 1e-300)
        fn[np.linalg.norm(cross, axis=1) == 0] = 0.0
        vn = np.zeros_like(v)
        for k in range(3):
            for c in range(3):
                vn[:, c] += np.bincount(f[:, k], weights=cross[:, c], minlength=len(v))
        n = np.linalg.norm(vn, axis=1, keepdims=True)
        vn = np.divide(vn, n, out=np.zeros_like(vn), where=n > 0)
        corners = vn[f]
        smooth = np.einsum("tkc,tc->tk", corners, fn) >= cos_crease
        out.append(np.where(smooth[..., None], corners, fn[:, None, :]))
    return out
