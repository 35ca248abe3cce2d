"""A one-room demo benchmark built through the real pipeline (demo generator -> build_dataset), for tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nerfseg.dataset_tools.build import build_dataset, preset_config
from nerfseg.dataset_tools.demo import write_demo_dataset


def build_one_room_benchmark(root: Path, **preset_overrides: Any) -> Path:
    """Demo room seed 0 under ``root/src``, built with the ``mini`` preset plus ``preset_overrides`` into
    ``root/bench`` (a one-scene benchmark: the scene is in 'train'); returns the benchmark root."""
    src = write_demo_dataset(root / "src", num_rooms=1, seed=0)
    cfg = preset_config("mini", **preset_overrides)
    build_dataset(root / "bench", src.front3d_dir, src.future_dir, src.texture_dir, cfg, show_progress=False)
    return root / "bench"
