"""Per-view resume of Cycles RGB: finished views kept next to the scene folders, so a killed build re-renders only what is missing.

:class:`SceneRGB` is the build's hook (``build_scene`` creates one per scene when ``--renderer cycles``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from nerfseg.cameras import Intrinsics
from nerfseg.dataset_tools.cycles import CyclesScene, CyclesSettings, require_bpy
from nerfseg.dataset_tools.cycles_materials import unsupported_materials
from nerfseg.dataset_tools.scene import Scene
from nerfseg.errors import InputError
from nerfseg.io import read_png

CACHE_PREFIX = ".cycles-views-"


def view_key(c2w: np.ndarray, intr: Intrinsics, settings_fingerprint: str) -> str:
    """Hash of everything that decides a view's pixels besides the scene: pose, intrinsics, settings."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(np.asarray(c2w, dtype=np.float64)).tobytes())
    h.update(json.dumps(asdict(intr), sort_keys=True).encode())
    h.update(settings_fingerprint.encode())
    return h.hexdigest()[:16]


class ViewCache:
    """Finished Cycles views of one scene, kept outside the scene's partial folder so a killed build keeps them.

    Files are ``<frame>-<view_key>.png``, each written atomically; a file whose key does not match the
    current pose / intrinsics / settings is ignored (and removed with the folder once the scene is done).
    """

    def __init__(self, root: Path, scene_id: str, fingerprint: str):
        self.dir = Path(root) / f"{CACHE_PREFIX}{scene_id}-{fingerprint}"
        self.fingerprint = fingerprint
        for stale in Path(root).glob(f"{CACHE_PREFIX}{scene_id}-*"):
            if stale != self.dir:  # views rendered with other settings can never be reused
                shutil.rmtree(stale, ignore_errors=True)
        self.reused = 0
        self.rendered = 0

    def path(self, name: str, c2w: np.ndarray, intr: Intrinsics) -> Path:
        return self.dir / f"{name}-{view_key(c2w, intr, self.fingerprint)}.png"

    def get_or_render(self, name: str, c2w: np.ndarray, intr: Intrinsics, renderer: "LazyCycles") -> np.ndarray:
        path = self.path(name, c2w, intr)
        if path.exists():
            try:
                rgb = read_png(path, expect="rgb")
                if rgb.shape == (intr.height, intr.width, 3):
                    self.reused += 1
                    return rgb
            except InputError:
                pass  # a damaged cache file: render again
        rgb = renderer.get().render_rgb(c2w, intr, out_png=path)
        self.rendered += 1
        return rgb

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class LazyCycles:
    """Translate the scene into Blender on first use, so a fully cached (resumed) scene skips the translation."""

    def __init__(self, scene: Scene, settings: CyclesSettings, crease_angle_deg: float):
        self.scene, self.settings, self.crease = scene, settings, crease_angle_deg
        self.cycles: CyclesScene | None = None

    def get(self) -> CyclesScene:
        if self.cycles is None:
            self.cycles = CyclesScene(self.scene, self.settings, self.crease)
        return self.cycles


class SceneRGB:
    """The build's hook: the Cycles RGB of every view of one scene, with per-view resume and a record.

    ``build_scene`` creates one per scene, calls :meth:`view` for each frame, then :meth:`record` and, once
    the scene is safely in place, :meth:`finish` (which deletes the view cache).
    """

    def __init__(self, scene: Scene, settings: CyclesSettings, cache_root: Path, fingerprint: str, crease_angle_deg: float = 35.0):
        require_bpy()
        settings.validate()
        self.lazy = LazyCycles(scene, settings, crease_angle_deg)
        self.cache = ViewCache(cache_root, scene.scene_id, fingerprint)
        self.seconds = 0.0

    def view(self, name: str, c2w: np.ndarray, intr: Intrinsics) -> np.ndarray:
        import time

        t = time.perf_counter()
        rgb = self.cache.get_or_render(name, c2w, intr, self.lazy)
        self.seconds += time.perf_counter() - t
        return rgb

    def record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"views_rendered": self.cache.rendered, "views_reused": self.cache.reused, "render_seconds": self.seconds}
        if self.cache.rendered:
            rec["seconds_per_rendered_view"] = self.seconds / self.cache.rendered
        if self.lazy.cycles is not None:
            rec.update(self.lazy.cycles.record())
        else:  # every view came from the resume cache: Blender never started, the material audit still runs
            problems = unsupported_materials(self.lazy.scene)
            rec.update({"unsupported_materials": len(problems), "unsupported_material_parts": problems})
        return rec

    def finish(self) -> None:
        self.cache.remove()
