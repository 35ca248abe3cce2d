"""benchmarks/instance_nerf_labels.py: the label-consistency numbers, checked by hand on small arrays."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from nerfseg.cameras import Intrinsics, look_at

_path = Path(__file__).resolve().parents[2] / "benchmarks" / "instance_nerf_labels.py"
_spec = importlib.util.spec_from_file_location("instance_nerf_labels", _path)
labels_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(labels_tool)  # type: ignore[union-attr]


def test_label_shares_count_every_view_on_the_instance_cells() -> None:
    # cell 7 is seen 4 times: twice as instance 1, once background, once instance 2; cell 9 only as instance 2
    cells = np.array([7, 7, 7, 7, 9, 9, 3, -1])
    labels = np.array([1, 1, 0, 2, 2, 2, 0, 1])  # the last pixel has no depth hit: left out
    got = labels_tool.label_shares(cells, labels)
    assert got[1] == {"pixels": 2, "cells": 1, "shares": {0: 0.25, 1: 0.5, 2: 0.25}}
    assert got[2]["pixels"] == 3 and got[2]["cells"] == 2
    assert got[2]["shares"] == pytest.approx({0: 1 / 6, 1: 2 / 6, 2: 3 / 6}, abs=1e-3)
    assert 0 not in got  # background is not an instance


def test_kept_by_stage1_is_the_rendered_fraction() -> None:
    matched = np.array([[1, 1, 1, 1], [2, 2, 0, -1]])
    rendered = np.array([[1, 0, 0, 1], [0, 0, 0, 0]])
    assert labels_tool.kept_by_stage1(matched, rendered) == {1: 0.5, 2: 0.0}


def test_surface_cells_put_a_fronto_parallel_wall_in_one_cell_plane() -> None:
    intr = Intrinsics(8, 6, 4.0, 4.0, 4.0, 3.0)
    c2w = look_at(np.array([0.0, 0.0, 1.0]), np.array([0.0, 2.0, 1.0]))  # looking along +y at a wall 2 m away
    depth = np.full((6, 8), 2.0)
    depth[0, 0] = 0.0  # no hit
    cells = labels_tool.surface_cells(depth, c2w, intr, origin=np.array([-5.0, -5.0, -5.0]), voxel=0.1)
    assert cells[0] == -1
    y = (cells[1:] >> 20) & ((1 << 20) - 1)
    assert np.all(y == int(np.floor((2.0 + 5.0) / 0.1 + 1e-9)))
