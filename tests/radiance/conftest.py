"""Fixtures of the radiance tests: one tiny synthetic scene per session (a few seconds to render).

The tests run torch on one thread: their tensors are small, and on a shared 2-core machine two
intra-op threads that wait for each other made each tiny op up to 30x slower.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import torch

from tests.radiance.synthetic import make_scene


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 views (14 train, 2 test) of the synthetic room at 40x30 pixels."""
    return make_scene(tmp_path_factory.mktemp("radiance") / "scene", num_views=16, width=40, height=30, seed=0)
