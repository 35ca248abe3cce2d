"""Rays: the torch twin agrees with nerfseg.cameras; ray banks sample pixels and targets consistently."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nerfseg.cameras import Intrinsics, look_at, world_rays
from nerfseg.errors import InputError
from nerfseg.io import read_png
from nerfseg.radiance.data import camera_rays, load_depth_targets, load_scene_rays, world_rays_torch
from nerfseg.radiance.scene_box import SceneBox


def test_torch_rays_match_numpy_world_rays() -> None:
    intr = Intrinsics(37, 23, 31.0, 29.5, 17.2, 12.9)
    c2w = look_at(np.array([1.0, -2.0, 1.5]), np.array([0.3, 0.4, 0.8]))
    o_np, d_np = world_rays(c2w, intr)
    o_t, d_t = world_rays_torch(torch.tensor(c2w, dtype=torch.float64), intr)
    np.testing.assert_allclose(o_t.numpy(), o_np, atol=1e-12)
    np.testing.assert_allclose(d_t.numpy(), d_np, atol=1e-12)
    # batched form (one matrix per pixel) gives the same rays
    u, v = torch.tensor([0, 36, 5]), torch.tensor([0, 22, 11])
    c = torch.tensor(c2w, dtype=torch.float64).expand(3, 4, 4)
    o_b, d_b = camera_rays(c, intr, u, v)
    np.testing.assert_allclose(d_b.numpy(), d_np[(v * intr.width + u).numpy()], atol=1e-12)


def test_normalised_rays_keep_the_ray_parameter() -> None:
    box = SceneBox.from_room_bbox([[0, 0, 0], [5, 4, 2.8]], margin=0.1)
    aabb = box.aabb_normalised()
    assert float((aabb[1] - aabb[0]).max()) == pytest.approx(2.0)
    o, d = torch.tensor([[1.0, 2.0, 1.0]]), torch.tensor([[0.3, -0.2, -1.0]])
    on, dn = box.normalise_rays(o, d)
    t = 1.7
    torch.testing.assert_close(on + t * dn, box.normalise_points(o + t * d))


def test_ray_bank_samples_match_images(tiny_scene: Path) -> None:
    bank = load_scene_rays(tiny_scene, "train")
    meta = json.loads((tiny_scene / "transforms.json").read_text())
    assert bank.num_frames == sum(f["split"] == "train" for f in meta["frames"])
    batch = bank.sample(64, torch.Generator().manual_seed(0))
    for i in range(0, 64, 16):
        f, (u, v) = int(batch.frame[i]), batch.pixel[i].tolist()
        img = read_png(tiny_scene / "images" / f"{bank.frame_names[f]}.png", expect="rgb")
        np.testing.assert_allclose(batch.rgb[i].numpy(), img[v, u] / 255.0, atol=1e-6)
        c2w = np.array(meta["frames"][int(bank.frame_names[f])]["transform_matrix"])
        o, d = world_rays(c2w, bank.intr)
        np.testing.assert_allclose(batch.dirs[i].numpy(), d[v * bank.width + u], atol=1e-5)
        np.testing.assert_allclose(batch.origins[i].numpy(), o[0], atol=1e-5)


def test_patches_and_extras(tiny_scene: Path) -> None:
    probe = load_scene_rays(tiny_scene, "train")
    labels = np.arange(probe.num_frames * probe.height * probe.width).reshape(probe.num_frames, probe.height, probe.width)
    bank = load_scene_rays(tiny_scene, "train", extra={"label": labels})
    batch = bank.sample_patches(5, 4, torch.Generator().manual_seed(1))
    assert batch.patch_shape == (5, 4, 4) and len(batch) == 80
    px = batch.pixel.reshape(5, 4, 4, 2)
    assert (px[:, :, 1:, 0] - px[:, :, :-1, 0] == 1).all()  # u grows along a row
    assert (px[:, 1:, :, 1] - px[:, :-1, :, 1] == 1).all()  # v grows down the patch
    assert (batch.frame.reshape(5, 16) == batch.frame.reshape(5, 16)[:, :1]).all()
    expect = labels[batch.frame.numpy(), batch.pixel[:, 1].numpy(), batch.pixel[:, 0].numpy()]
    np.testing.assert_array_equal(batch.extras["label"].numpy(), expect)
    with pytest.raises(InputError, match="label2"):
        bank.add_extra("label2", labels[:, :-1])


def test_downscale_and_bad_input(tiny_scene: Path, tmp_path: Path) -> None:
    bank = load_scene_rays(tiny_scene, "test", downscale=2)
    assert (bank.width, bank.height) == (20, 15) and bank.intr.fx == pytest.approx(load_scene_rays(tiny_scene, "test").intr.fx / 2)
    meta = json.loads((tiny_scene / "transforms.json").read_text())
    meta["w"] = 41
    bad = tmp_path / "bad"
    (bad / "images").mkdir(parents=True)
    for f in meta["frames"][:2]:
        (bad / f["file_path"]).write_bytes((tiny_scene / f["file_path"]).read_bytes())
    meta["frames"] = meta["frames"][:2]
    (bad / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="41x30"):
        load_scene_rays(bad, "train")


def test_depth_targets_downscale_averages_only_valid_pixels(tmp_path: Path) -> None:
    """A 2x downscaled depth map keeps, per block, the mean of the pixels that have a value (0 = none)."""
    (tmp_path / "depth").mkdir()
    mm = np.array([[1000, 3000, 0, 0], [0, 2000, 0, 4000]], dtype=np.uint16)
    Image.fromarray(mm).save(tmp_path / "depth" / "v.png")
    full = load_depth_targets(tmp_path, ["v"], 2, 4)
    np.testing.assert_allclose(full[0], mm / 1000.0)
    half = load_depth_targets(tmp_path, ["v"], 1, 2)
    np.testing.assert_allclose(half[0], [[2.0, 4.0]])
    with pytest.raises(InputError, match="not an integer downscale"):
        load_depth_targets(tmp_path, ["v"], 1, 3)
