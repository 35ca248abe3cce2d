"""PyTorch datasets of one benchmark scene: its views (one item per image) and its rays (one item per pixel).

For researchers who train in their own loop instead of through ``nerfseg train`` (docs/python-api.md).
Everything is read through the same readers the benchmark uses (``nerfseg.spec``, ``nerfseg.io``,
:class:`nerfseg.methods.SceneData` for the prior) and the rays come from the radiance core's
:func:`nerfseg.radiance.data.camera_rays`, so a pixel means here what it means to the builder, the
methods and the evaluator (pixel centres at +0.5, OpenGL camera looking along -z, camera-to-world poses).

Fields (``fields=``): a method of the benchmark may learn only from :data:`INPUT_FIELDS` of the TRAIN views
(docs/contract.md section 6); :data:`GT_FIELDS` are the ground truth, for analysis and evaluation.
This module needs the ``train`` extra (torch); the directory ``nerfseg/data/`` beside it holds package
data (class tables), not code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from nerfseg import io, spec
from nerfseg.errors import InputError
from nerfseg.methods import SceneData

#: what a method may learn from: RGB, camera and the 2D prior (void = -1 in ``prior_semantic``, 0 in ``prior_instance``)
INPUT_FIELDS: tuple[str, ...] = ("image", "pose", "intrinsics", "prior_semantic", "prior_instance")
#: ground truth: depth (metres along the optical axis, 0 = no hit), instance ids, class indices, COCO panoptic ids
GT_FIELDS: tuple[str, ...] = ("depth", "instance", "semantic", "panoptic")
VIEW_FIELDS: tuple[str, ...] = INPUT_FIELDS + GT_FIELDS
#: per-pixel fields a ray carries (``rgb`` is the view's ``image``); rays always have origin and direction
RAY_FIELDS: tuple[str, ...] = ("rgb", "prior_semantic", "prior_instance", "depth", "instance", "semantic", "panoptic")
VIEW_SPLITS: tuple[str, ...] = ("train", "test", "all")


def scene_paths(root: str | Path, split: str = "test") -> list[Path]:
    """Folders of the scenes of one scene split (train/val/test) of a built benchmark, in benchmark.json's order."""
    return [spec.scene_dir(root, sid) for sid in spec.scenes_in_split(root, split)]


def _check_scene(path: Path) -> None:
    """Name the mistake when ``path`` is not a scene folder (the usual one: the benchmark root)."""
    if (path / spec.TRANSFORMS_JSON).is_file():
        return
    if (path / spec.BENCHMARK_JSON).is_file():
        ids = [p.name for p in sorted((path / spec.SCENES_DIR).glob("*")) if p.is_dir()][:5]
        raise InputError(path, f"this is a benchmark root, not a scene folder; pass {path / spec.SCENES_DIR}/<scene_id> (e.g. {', '.join(ids) or 'none found'}) or use nerfseg.data.scene_paths()")
    raise InputError(path / spec.TRANSFORMS_JSON, "file not found: not a benchmark scene folder (docs/contract.md section 3)")


def _check_fields(fields: Sequence[str], allowed: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [f for f in fields if f not in allowed]
    if unknown:
        raise InputError(None, f"unknown field(s) {unknown}; choose from {list(allowed)}")
    return tuple(fields)


class SceneViews(Dataset):
    """The views of one scene, one item per image: a dict of tensors plus ``name`` (frame stem) and ``index``.

    ======================  =======================  =========================================================
    key                     shape, dtype             meaning
    ======================  =======================  =========================================================
    ``image``               (H, W, 3) float32        RGB in [0, 1]
    ``pose``                (4, 4) float32           camera-to-world, OpenGL camera axes, metres, z-up world
    ``intrinsics``          (3, 3) float32           pinhole K (fx, fy, cx, cy in pixels)
    ``prior_semantic``      (H, W) int64             the 2D prior's class index 0..10, -1 where it has no segment
    ``prior_instance``      (H, W) int64             the 2D prior's segment id, 0 = none (ids differ per view)
    ``depth``               (H, W) float32           GT depth in metres along the optical axis, 0 = no hit
    ``instance``            (H, W) int64             GT instance id, 0 = background (same id in every view)
    ``semantic``            (H, W) int64             GT class index 0..10
    ``panoptic``            (H, W) int64             GT COCO panoptic segment id (0 = void)
    ======================  =======================  =========================================================

    ``split`` picks the view split inside the scene (``train``, ``test`` or ``all``); ``prior`` names the 2D
    prior (``None`` when no prior field is asked for). Items load lazily, so a DataLoader with workers
    reads images in parallel; the default collate stacks them into batches.
    """

    def __init__(self, scene: str | Path, split: str = "train", fields: Sequence[str] = VIEW_FIELDS, prior: str | None = "sim-m2f"):
        self.path = Path(scene)
        _check_scene(self.path)
        if split not in VIEW_SPLITS:
            raise InputError(None, f"unknown view split {split!r}; choose from {list(VIEW_SPLITS)}")
        self.fields = _check_fields(fields, VIEW_FIELDS)
        wants_prior = any(f.startswith("prior_") for f in self.fields)
        if wants_prior and prior is None:
            raise InputError(None, "prior fields were asked for but prior=None; pass prior='sim-m2f' (or another prior of the scene)")
        self.scene = SceneData(self.path, prior or "")
        if wants_prior and not (self.scene.prior_dir / spec.PANOPTIC_JSON).is_file():
            raise InputError(self.scene.prior_dir / spec.PANOPTIC_JSON, f"prior {prior!r} is missing for this scene; run `nerfseg priors --prior {prior}` or pick another prior")
        self.info = self.scene.info
        self.split = split
        self.frames = [f for f in self.info.frames if split == "all" or f.split == split]
        self._index = {f.name: i for i, f in enumerate(self.info.frames)}
        self.K = torch.tensor([[self.info.fl_x, 0.0, self.info.cx], [0.0, self.info.fl_y, self.info.cy], [0.0, 0.0, 1.0]], dtype=torch.float32)

    @property
    def scene_id(self) -> str:
        return self.info.scene_id

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of every view."""
        return self.info.height, self.info.width

    def __len__(self) -> int:
        return len(self.frames)

    def _read(self, name: str, field: str) -> torch.Tensor:
        root = self.path
        if field == "image":
            return torch.from_numpy(io.read_png(root / spec.IMAGES_DIR / f"{name}.png", expect="rgb").astype(np.float32) / 255.0)
        if field == "depth":
            return torch.from_numpy(io.read_depth_metres(root / spec.DEPTH_DIR / f"{name}.png"))
        if field == "instance":
            return torch.from_numpy(io.read_png(root / spec.INSTANCE_DIR / f"{name}.png", expect="gray16").astype(np.int64))
        if field == "semantic":
            return torch.from_numpy(io.read_png(root / spec.SEMANTIC_DIR / f"{name}.png", expect="gray8").astype(np.int64))
        if field == "panoptic":
            return torch.from_numpy(io.read_panoptic_png(root / spec.PANOPTIC_DIR / f"{name}.png").astype(np.int64))
        if field == "prior_semantic":
            return torch.from_numpy(self.scene.prior_semantic(name, void=-1))
        if field == "prior_instance":
            ids, _ = self.scene.prior_frame(name)
            return torch.from_numpy(ids.astype(np.int64))
        raise AssertionError(field)  # fields are checked in __init__

    def __getitem__(self, i: int) -> dict[str, Any]:
        frame = self.frames[i]
        item: dict[str, Any] = {"name": frame.name, "index": self._index[frame.name]}
        for field in self.fields:
            if field == "pose":
                item["pose"] = torch.tensor(frame.transform_matrix, dtype=torch.float32)
            elif field == "intrinsics":
                item["intrinsics"] = self.K.clone()
            else:
                value = self._read(frame.name, field)
                if value.shape[:2] != self.image_size:
                    raise InputError(self.path, f"frame {frame.name}: {field} is {tuple(value.shape[:2])}, transforms.json says {self.image_size}")
                item[field] = value
        return item


class SceneRays(Dataset):
    """Every pixel of a scene's views as a ray; item ``i`` is pixel ``i % (H*W)`` (row-major) of view ``i // (H*W)``.

    An item is a dict: ``origin`` (3,) and ``direction`` (3,) float32 in world metres (direction has camera
    z = -1, so the GT ``depth`` is the ray parameter t of the hit), ``view`` (index into :attr:`views`),
    ``pixel`` (v, u), plus the per-pixel ``fields`` (``rgb`` (3,) in [0, 1], and any of the label maps of
    :class:`SceneViews` as scalars). Index it with an int, or with a 1-D tensor / list of ints for a whole
    batch at once (every value then gets a leading batch dimension)::

        rays = SceneRays(scene, split="train")
        batches = DataLoader(rays, batch_size=None, sampler=BatchSampler(RandomSampler(rays), 4096, drop_last=True))

    Views are held in memory at their smallest dtype (uint8 RGB, int32 labels); rays are rebuilt per batch.
    """

    def __init__(self, scene: str | Path, split: str = "train", fields: Sequence[str] = ("rgb", "prior_semantic", "prior_instance"), prior: str | None = "sim-m2f"):
        self.fields = _check_fields(fields, RAY_FIELDS)
        view_fields = ["image" if f == "rgb" else f for f in self.fields]
        self.views = SceneViews(scene, split, ["pose", *view_fields], prior)
        self.height, self.width = self.views.image_size
        items = [self.views[i] for i in range(len(self.views))]
        self.names = [it["name"] for it in items]
        self.poses = torch.stack([it["pose"] for it in items]) if items else torch.zeros((0, 4, 4))
        self.maps: dict[str, torch.Tensor] = {}
        for field, key in zip(self.fields, view_fields):
            stack = [it[key] for it in items]
            if field == "rgb":
                self.maps[field] = (torch.stack(stack) * 255.0).round().to(torch.uint8) if stack else torch.zeros((0, self.height, self.width, 3), dtype=torch.uint8)
            elif field == "depth":
                self.maps[field] = torch.stack(stack) if stack else torch.zeros((0, self.height, self.width))
            else:  # label maps: panoptic ids need 24 bits, so int32 rather than int16
                self.maps[field] = torch.stack(stack).to(torch.int32) if stack else torch.zeros((0, self.height, self.width), dtype=torch.int32)
        from nerfseg.radiance.data import scene_intrinsics

        self.intrinsics = scene_intrinsics(self.views.info)

    def __len__(self) -> int:
        return len(self.names) * self.height * self.width

    def __getitem__(self, index: int | Sequence[int] | torch.Tensor) -> dict[str, torch.Tensor]:
        from nerfseg.radiance.data import camera_rays

        single = isinstance(index, (int, np.integer)) or (isinstance(index, torch.Tensor) and index.dim() == 0)
        idx = torch.as_tensor(index, dtype=torch.int64).reshape(-1)
        n = len(self)
        if idx.numel() and (int(idx.min()) < -n or int(idx.max()) >= n):
            raise IndexError(f"ray index out of range for {n} rays")
        idx = torch.where(idx < 0, idx + n, idx)
        per_view = self.height * self.width
        view, pixel = idx // per_view, idx % per_view
        v, u = pixel // self.width, pixel % self.width
        origin, direction = camera_rays(self.poses[view].to(torch.float64), self.intrinsics, u, v)
        out: dict[str, torch.Tensor] = {"origin": origin.float(), "direction": direction.float(), "view": view, "pixel": torch.stack([v, u], -1)}
        for field, stack in self.maps.items():
            value = stack[view, v, u]
            if field == "rgb":
                value = value.float() / 255.0
            elif field != "depth":
                value = value.long()
            out[field] = value
        if single:
            out = {k: t[0] for k, t in out.items()}
        return out
