"""gt3d.h5 round trip and the NeRF-RPN voxel-unit box export."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from nerfseg.errors import InputError
from nerfseg.gt3d import GT3D, make_instance_table, read_gt3d, write_gt3d


def _gt() -> GT3D:
    inst = np.zeros((8, 6, 4), np.uint16)
    inst[1:3, 2:4, 0:2] = 1
    return GT3D(
        instance=inst,
        semantic=(inst > 0).astype(np.uint8) * 3,
        bbox_min=np.array([0.0, -1.0, 0.0]),
        bbox_max=np.array([4.0, 2.0, 2.0]),
        mode="solid",
        instances=make_instance_table(
            [{"id": 1, "class_index": 3, "nyu40_id": 5, "category": "Dining Chair", "jid": "abc", "aabb": [0.5, 0, 0, 1.5, 1, 1], "obb": [1, 0.5, 0.5, 1, 1, 1, 0.0]}]
        ),
    )


def test_round_trip(tmp_path: Path) -> None:
    write_gt3d(tmp_path / "gt3d.h5", _gt())
    back = read_gt3d(tmp_path / "gt3d.h5")
    assert back.instance.shape == (8, 6, 4) and back.resolution == 8
    assert back.class_of() == {1: 3}
    assert back.instances["category"][0].decode() == "Dining Chair"
    with h5py.File(tmp_path / "gt3d.h5") as f:
        assert "voxel centres" in f["grid"].attrs["sampling"]


def test_boxes_in_voxel_units() -> None:
    aabb, obb = _gt().boxes_in_voxel_units()
    # voxel size is 0.5 m on every axis: (p - min) / 0.5
    np.testing.assert_allclose(aabb[0], [1, 2, 0, 3, 4, 2])
    np.testing.assert_allclose(obb[0], [2, 3, 1, 2, 2, 2, 0])


def test_missing_dataset_named(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f.create_dataset("grid/instance", data=np.zeros((2, 2, 2)))
    with pytest.raises(InputError, match=r"bad.h5 \[grid/semantic\]"):
        read_gt3d(tmp_path / "bad.h5")
