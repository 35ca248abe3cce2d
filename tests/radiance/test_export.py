"""Radiance-grid export: shape convention shared with the 3D GT, alpha definition, value ranges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nerfseg.radiance.export import export_radiance_grid, grid_shape
from nerfseg.radiance.field import FieldConfig, RadianceField
from nerfseg.radiance.scene_box import SceneBox


def test_grid_shape_matches_voxelizer() -> None:
    voxelize = __import__("nerfseg.dataset_tools.voxelize", fromlist=["grid_shape"])
    for bbox, res in [([[0, 0, 0], [5, 4, 2.8]], 64), ([[-1, 2, 0], [3.3, 2.4, 2.6]], 160), ([[0, 0, 0], [1, 1, 1]], 7)]:
        assert grid_shape(bbox, res) == voxelize.grid_shape(np.array(bbox, dtype=float), res)


def test_export_shape_alpha_and_keys(tmp_path: Path) -> None:
    torch.manual_seed(0)
    room = [[0.0, 0.0, 0.0], [5.0, 4.0, 2.8]]
    field = RadianceField(FieldConfig(num_levels=3, log2_table_size=10, base_resolution=4, max_resolution=32, geo_hidden=16, color_hidden=16, sh_degree=2, density_bias=2.0), SceneBox.from_room_bbox(room, 0.05))
    with torch.no_grad():
        for t in field.encoding.tables:
            t.normal_(0, 1.0)
    path = export_radiance_grid(field, room, 20, tmp_path / "features" / "scene.npz", chunk=1000)
    data = np.load(path)
    grid = data["rgbsigma"]
    assert grid.shape == (20, 16, 11, 4) and grid.dtype == np.float32
    assert tuple(data["resolution"]) == (20, 16, 11) and int(data["grid_resolution"]) == 20
    assert "alpha" in str(data["alpha_definition"]) and float(data["voxel_size"]) == 0.25
    assert grid[..., 3].min() >= 0 and grid[..., 3].max() <= 1 and 0 <= grid[..., :3].min() and grid[..., :3].max() <= 1
    assert grid[..., 3].std() > 0
    # alpha at voxel (i, j, k) is 1 - exp(-sigma(centre) * voxel_size)
    i, j, k = 7, 3, 9
    centre = torch.tensor([[(i + 0.5) * 0.25, (j + 0.5) * 0.25, (k + 0.5) * 2.8 / 11]])
    with torch.no_grad():
        sigma = float(field.density(field.box.normalise_points(centre))[0])
    assert abs(grid[i, j, k, 3] - (1 - np.exp(-sigma * 0.25))) < 1e-5
    np.testing.assert_allclose(data["bbox_min"], room[0])
    np.testing.assert_allclose(data["bbox_max"], room[1])


def test_export_from_a_never_pruned_field_fails(tmp_path: Path) -> None:
    """An occupancy grid that was never updated (training ended within the warm-up) makes the export fail
    with a message that says why; after one update the same export works."""
    import pytest

    from nerfseg.radiance.export import NeverPrunedError
    from nerfseg.radiance.occupancy import OccupancyGrid

    room = [[0.0, 0.0, 0.0], [2.0, 2.0, 1.0]]
    field = RadianceField(FieldConfig(num_levels=2, log2_table_size=8, base_resolution=4, max_resolution=8, geo_hidden=8, color_hidden=8, sh_degree=1), SceneBox.from_room_bbox(room, 0.05))
    occ = OccupancyGrid(field.box.aabb_normalised(), 8)
    out = tmp_path / "features" / "s.npz"
    with pytest.raises(NeverPrunedError, match=r"s\.npz: the field's occupancy grid was never updated .* nothing was pruned"):
        export_radiance_grid(field, room, 8, out, occ)
    assert not out.exists()
    occ.update(field.density)
    assert export_radiance_grid(field, room, 8, out, occ).exists()
