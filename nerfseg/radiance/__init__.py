"""The shared radiance-field core every method trains on (torch; CPU or CUDA, no custom kernels).

Scene normalisation (:mod:`.scene_box`), rays in the one pixel convention (:mod:`.data`), grid and SH
encodings (:mod:`.encodings`), the density/colour field with attachable heads (:mod:`.field`),
empty-space skipping (:mod:`.occupancy`), packed volume rendering (:mod:`.render`), the trainer with
presets ``mini`` (CPU) and ``paper`` (GPU) (:mod:`.config`, :mod:`.trainer`) and the radiance-grid
export for 3D detectors (:mod:`.export`). Import needs torch (the ``[train]`` extra).
"""

from nerfseg.radiance.config import PRESETS, RadianceConfig, preset
from nerfseg.radiance.data import RayBank, RayBatch, camera_rays, load_scene_rays, world_rays_torch
from nerfseg.radiance.encodings import GridEncoding, dense_grid, hash_grid, spherical_harmonics
from nerfseg.radiance.export import export_radiance_grid, grid_shape, sample_radiance_grid
from nerfseg.radiance.field import FieldConfig, RadianceField
from nerfseg.radiance.occupancy import OccupancyGrid
from nerfseg.radiance.render import MarchSettings, distortion_loss, render_rays, volume_render
from nerfseg.radiance.scene_box import SceneBox, ray_aabb
from nerfseg.radiance.trainer import RadianceTrainer

__all__ = [
    "PRESETS",
    "FieldConfig",
    "GridEncoding",
    "MarchSettings",
    "OccupancyGrid",
    "RadianceConfig",
    "RadianceField",
    "RadianceTrainer",
    "RayBank",
    "RayBatch",
    "SceneBox",
    "camera_rays",
    "dense_grid",
    "distortion_loss",
    "export_radiance_grid",
    "grid_shape",
    "hash_grid",
    "load_scene_rays",
    "preset",
    "ray_aabb",
    "render_rays",
    "sample_radiance_grid",
    "spherical_harmonics",
    "volume_render",
    "world_rays_torch",
]
