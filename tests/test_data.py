"""nerfseg.data: the PyTorch datasets of a scene's views and rays read what the files hold, in the one camera convention."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import BatchSampler, DataLoader, SequentialSampler  # noqa: E402

from nerfseg import io, spec  # noqa: E402
from nerfseg.cameras import Intrinsics, project_points, world_rays  # noqa: E402
from nerfseg.data import GT_FIELDS, INPUT_FIELDS, SceneRays, SceneViews, scene_paths  # noqa: E402
from nerfseg.errors import InputError  # noqa: E402
from nerfseg.methods import SceneData  # noqa: E402
from tests.evaluation.fixtures import make_tiny_benchmark  # noqa: E402


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One test scene, six 32x24 views (test views 0000 and 0003), `gt` prior."""
    return make_tiny_benchmark(tmp_path_factory.mktemp("data_bench"), num_scenes=1)


@pytest.fixture(scope="module")
def scene(bench: Path) -> Path:
    return scene_paths(bench, "test")[0]


def test_views_hold_what_the_files_hold(scene: Path) -> None:
    views = SceneViews(scene, split="train", prior="gt")
    info = spec.load_scene_info(scene)
    assert len(views) == 4 and views.image_size == (24, 32) and views.scene_id == info.scene_id
    item = views[1]
    name = item["name"]
    assert name == "0002" and item["index"] == 2
    shapes = {k: (tuple(v.shape), v.dtype) for k, v in item.items() if isinstance(v, torch.Tensor)}
    assert shapes == {
        "image": ((24, 32, 3), torch.float32),
        "pose": ((4, 4), torch.float32),
        "intrinsics": ((3, 3), torch.float32),
        "prior_semantic": ((24, 32), torch.int64),
        "prior_instance": ((24, 32), torch.int64),
        "depth": ((24, 32), torch.float32),
        "instance": ((24, 32), torch.int64),
        "semantic": ((24, 32), torch.int64),
        "panoptic": ((24, 32), torch.int64),
    }
    rgb = io.read_png(scene / spec.IMAGES_DIR / f"{name}.png", expect="rgb")
    assert torch.equal(item["image"], torch.from_numpy(rgb.astype(np.float32) / 255))
    depth_mm = io.read_png(scene / spec.DEPTH_DIR / f"{name}.png", expect="gray16")
    assert torch.allclose(item["depth"], torch.from_numpy(depth_mm / 1000.0).float())
    assert item["depth"].max() > 1.0  # metres, not millimetres
    assert torch.equal(item["pose"], torch.tensor(info.frames[2].transform_matrix, dtype=torch.float32))
    assert item["intrinsics"][0, 0] == pytest.approx(info.fl_x) and item["intrinsics"][1, 2] == pytest.approx(info.cy)
    sd = SceneData(scene, "gt")
    assert torch.equal(item["prior_semantic"], torch.from_numpy(sd.prior_semantic(name, void=-1)))
    # the gt prior is the GT with ids permuted per view: same classes as the GT semantic map where not void
    valid = item["panoptic"] != 0
    assert torch.equal(item["prior_semantic"][valid], item["semantic"][valid])
    assert set(item["instance"].unique().tolist()) - {0} <= set(item["panoptic"].unique().tolist())


def test_view_splits_fields_and_batches(scene: Path) -> None:
    test = SceneViews(scene, split="test", fields=INPUT_FIELDS, prior="gt")
    assert [test[i]["name"] for i in range(len(test))] == ["0000", "0003"]
    assert not set(GT_FIELDS) & set(test[0])
    assert len(SceneViews(scene, split="all", fields=("pose",), prior=None)) == 6
    batch = next(iter(DataLoader(SceneViews(scene, fields=("image", "semantic"), prior=None), batch_size=3)))
    assert batch["image"].shape == (3, 24, 32, 3) and batch["semantic"].shape == (3, 24, 32) and batch["name"] == ["0001", "0002", "0004"]


def test_mistakes_are_named(bench: Path, scene: Path) -> None:
    with pytest.raises(InputError, match="this is a benchmark root, not a scene folder.*tiny_000"):
        SceneViews(bench)
    with pytest.raises(InputError, match="prior 'sim-m2f' is missing"):
        SceneViews(scene)  # the tiny benchmark ships only the gt prior
    with pytest.raises(InputError, match="unknown field"):
        SceneViews(scene, fields=("rgb",), prior="gt")
    with pytest.raises(InputError, match="unknown view split"):
        SceneViews(scene, split="val", prior="gt")


def test_rays_follow_the_camera_convention(scene: Path) -> None:
    fields = ("rgb", "depth", "semantic", "prior_instance", "panoptic")
    rays = SceneRays(scene, split="train", fields=fields, prior="gt")
    views = SceneViews(scene, split="train", prior="gt")
    h, w = 24, 32
    assert len(rays) == 4 * h * w
    k = 2 * h * w + 5 * w + 7  # view 2, row 5, column 7
    ray = rays[k]
    item = views[2]
    assert ray["view"] == 2 and ray["pixel"].tolist() == [5, 7]
    assert torch.allclose(ray["rgb"], item["image"][5, 7])
    for f in ("depth", "semantic", "prior_instance", "panoptic"):
        assert ray[f] == item[f][5, 7], f
    # the numpy reference of the builder: same origin and direction for this pixel
    info = views.info
    intr = Intrinsics(info.width, info.height, info.fl_x, info.fl_y, info.cx, info.cy)
    c2w = item["pose"].double().numpy()
    origins, dirs = world_rays(c2w, intr)
    assert np.allclose(ray["origin"].numpy(), origins[5 * w + 7], atol=1e-5)
    assert np.allclose(ray["direction"].numpy(), dirs[5 * w + 7], atol=1e-5)
    # t = depth lands on the point that projects back to the pixel centre at that depth
    point = (ray["origin"] + ray["depth"] * ray["direction"]).double().numpy()[None]
    uv, z = project_points(point, c2w, intr)
    assert np.allclose(uv[0], [7.5, 5.5], atol=1e-3) and z[0] == pytest.approx(float(ray["depth"]), rel=1e-5)


def test_rays_batch_indexing_matches_single_items(scene: Path) -> None:
    rays = SceneRays(scene, split="test", prior="gt")
    idx = torch.tensor([0, 17, len(rays) - 1, 300])
    batch = rays[idx]
    assert batch["origin"].shape == (4, 3) and batch["rgb"].shape == (4, 3) and batch["prior_semantic"].shape == (4,)
    for j, i in enumerate(idx.tolist()):
        single = rays[i]
        for key, value in single.items():
            assert torch.equal(batch[key][j], value), key
    assert torch.equal(rays[-1]["origin"], rays[len(rays) - 1]["origin"])
    with pytest.raises(IndexError):
        rays[len(rays)]
    loader = DataLoader(rays, batch_size=None, sampler=BatchSampler(SequentialSampler(rays), 256, drop_last=False))
    total = sum(b["rgb"].shape[0] for b in loader)
    assert total == len(rays)
