"""The 2D-prior baseline (the paper's Mask2Former row): the prior's own test-view predictions.

Nothing is trained; ids are not consistent across views, which PQ^scene exposes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from nerfseg.config import apply_overrides
from nerfseg.methods import FramePrediction, Method, SceneData


@dataclass
class Prior2DConfig:
    """No settings: the prior is used as it is (kept as a dataclass so every method logs a config)."""

    preset: str = "mini"


class Prior2D(Method):
    name = "prior2d"
    description = "The 2D panoptic prior on the test views, per view (no 3D, no cross-view consistency)."

    @classmethod
    def make_config(cls, preset: str, **overrides: Any) -> Prior2DConfig:
        return apply_overrides(Prior2DConfig(preset=preset), overrides)

    def fit(self, scene: SceneData, work_dir: Path, resume: bool = True) -> dict[str, Any]:
        return {}

    def predict(self, scene: SceneData, work_dir: Path) -> Iterator[FramePrediction]:
        for name in scene.frame_names("test"):
            ids, segments = scene.prior_frame(name)
            segs = [{"id": int(i), "category_id": int(s["category_id"]), "score": float(s.get("score", 1.0))} for i, s in sorted(segments.items())]
            yield FramePrediction(name, ids, segs)
