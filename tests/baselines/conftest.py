"""What the radiance baselines' tests share: a tiny radiance core and a one-room benchmark per test module."""

from __future__ import annotations

from pathlib import Path

import pytest

from nerfseg import spec
from nerfseg.methods import SceneData
from tests.demo_bench import build_one_room_benchmark

#: a radiance core small enough for a few CPU steps per test
TINY = dict(
    steps=8, batch_rays=128, num_levels=4, log2_table_size=12, base_resolution=8, max_resolution=32,
    march_resolution=32, occ_resolution=16, occ_warmup_steps=4, occ_update_every=4, render_chunk=8192,
    log_every=2, checkpoint_every=0,
)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo room at 48x36 with the sim-m2f prior (a one-scene benchmark: the scene is in 'train')."""
    root = tmp_path_factory.mktemp("baseline")
    return build_one_room_benchmark(root, width=48, height=36, focal=30.0, num_views=12, grid_resolution=16, priors=("sim-m2f",))


@pytest.fixture(scope="module")
def scene(bench: Path) -> SceneData:
    return SceneData(spec.scene_dir(bench, spec.scenes_in_split(bench, "train")[0]), "sim-m2f")
