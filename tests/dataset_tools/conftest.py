"""Fixtures shared by the dataset-tools tests: the procedural box room and its Embree scene.

Module-scoped, so each test module builds the room once (building it is the slow part) and no test module
sees another's state.
"""

from __future__ import annotations

import pytest

from nerfseg.dataset_tools.raycast import SceneRaycaster
from tests.dataset_tools.scenes import make_box_room


@pytest.fixture(scope="module")
def room():
    return make_box_room()


@pytest.fixture(scope="module")
def rc(room):
    return SceneRaycaster(room)
