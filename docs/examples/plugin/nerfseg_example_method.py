"""A minimal nerfseg method: every class of the 2D prior becomes one segment, with the same id in every view.

It learns almost nothing, which is the point: it shows the whole Method interface (a config dataclass
with presets and ``--set`` overrides, ``fit`` writing a resumable result into its work folder, ``predict``
yielding one FramePrediction per test view) in a page of code. Because its ids are the same in every view
it gets a non-zero PQ^scene where the per-view prior gets 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from nerfseg.errors import InputError
from nerfseg.methods import FramePrediction, Method, SceneData


@dataclass
class ClassRegionsConfig:
    preset: str = "mini"
    min_pixels: int = 1  # class regions smaller than this in a test view are left void (id 0)


class ClassRegions(Method):
    name = "class-regions"  # the run folder (runs/class-regions) and the leaderboard label
    description = "One segment per class of the 2D prior, id = class index + 1 in every view."
    url = "https://example.org/class-regions"

    config: ClassRegionsConfig

    @classmethod
    def make_config(cls, preset: str, **overrides: Any) -> ClassRegionsConfig:
        known = {f.name for f in fields(ClassRegionsConfig)} - {"preset"}
        if set(overrides) - known:  # InputError: the CLI prints one line and stops before any work
            raise InputError(None, f"class-regions has no setting {sorted(set(overrides) - known)}; known: {sorted(known)}")
        return ClassRegionsConfig(preset=preset, **overrides)  # same settings for mini and paper

    def fit(self, scene: SceneData, work_dir: Path, resume: bool = True) -> dict[str, Any]:
        """'Training': the classes the prior sees in the train views. Saved, so a re-run resumes."""
        result = Path(work_dir) / "classes.json"
        if resume and result.exists():
            return json.loads(result.read_text())
        seen: set[int] = set()
        for name in scene.frame_names("train"):
            classes = np.unique(scene.prior_semantic(name))  # -1 where the prior has no segment
            seen.update(int(c) for c in classes if c >= 0)
        summary = {"classes": sorted(seen)}
        result.write_text(json.dumps(summary))
        return summary

    def predict(self, scene: SceneData, work_dir: Path) -> Iterator[FramePrediction]:
        known = set(json.loads((Path(work_dir) / "classes.json").read_text())["classes"])
        for name in scene.frame_names("test"):
            semantic = scene.prior_semantic(name)
            ids = np.zeros(semantic.shape, np.uint32)  # 0 = void
            segments = []
            for c in sorted(known):
                mask = semantic == c
                if int(mask.sum()) >= self.config.min_pixels:
                    ids[mask] = c + 1  # the same id in every view: consistent across views
                    segments.append({"id": c + 1, "category_id": c, "score": 1.0})
            yield FramePrediction(name, ids, segments)
