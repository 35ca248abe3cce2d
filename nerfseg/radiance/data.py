"""Training rays of a scene: images + poses in memory, rays built on demand in the one pixel convention.

A :class:`RayBank` keeps the train images as uint8 (F, H, W, 3) and the camera-to-world matrices, not a
precomputed ray per pixel: at the paper resolution (640x480, hundreds of views) per-pixel origins and
directions would cost gigabytes, whereas rebuilding the rays of a batch is a (B,3)x(B,3,3) product.
Rays follow :mod:`nerfseg.cameras` exactly (pixel centres at +0.5, OpenGL camera looking along -z,
directions with camera z = -1 so that t is depth); :func:`camera_rays` is the torch twin of
:func:`nerfseg.cameras.world_rays` and a test checks they agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from PIL import Image

from nerfseg.cameras import Intrinsics
from nerfseg.errors import InputError
from nerfseg.io import read_depth_metres, read_png
from nerfseg.spec import DEPTH_DIR, IMAGES_DIR, TRANSFORMS_JSON, SceneInfo, load_scene_info


def scene_intrinsics(info: SceneInfo) -> Intrinsics:
    return Intrinsics(info.width, info.height, info.fl_x, info.fl_y, info.cx, info.cy)


def camera_rays(c2w: torch.Tensor, intr: Intrinsics, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """World origins and directions (camera z = -1) of pixels (u, v) (integer columns/rows).

    ``c2w`` is (4,4) for one camera or (B,4,4) with one matrix per pixel. Same convention and the same
    arithmetic as :func:`nerfseg.cameras.world_rays`: d_cam = ((u+.5-cx)/fx, -(v+.5-cy)/fy, -1).
    """
    uf = u.to(c2w.dtype) + 0.5
    vf = v.to(c2w.dtype) + 0.5
    d_cam = torch.stack([(uf - intr.cx) / intr.fx, -(vf - intr.cy) / intr.fy, -torch.ones_like(uf)], dim=-1)
    if c2w.dim() == 2:
        dirs = d_cam @ c2w[:3, :3].T
        origins = c2w[:3, 3].expand_as(dirs)
    else:
        dirs = torch.einsum("bij,bj->bi", c2w[:, :3, :3], d_cam)
        origins = c2w[:, :3, 3]
    return origins, dirs


def world_rays_torch(c2w: torch.Tensor, intr: Intrinsics) -> tuple[torch.Tensor, torch.Tensor]:
    """(H*W, 3) origins and directions of every pixel, row-major: the torch twin of ``cameras.world_rays``."""
    v, u = torch.meshgrid(torch.arange(intr.height, device=c2w.device), torch.arange(intr.width, device=c2w.device), indexing="ij")
    return camera_rays(c2w, intr, u.reshape(-1), v.reshape(-1))


@dataclass
class RayBatch:
    """A batch of rays with their targets. ``patch_shape`` = (P, K, K) when the rays are P square patches
    (row-major inside each patch), so a loss can reshape per-ray values to (P, K, K, ...)."""

    origins: torch.Tensor  # (R, 3) world metres
    dirs: torch.Tensor  # (R, 3) world, camera z = -1
    rgb: torch.Tensor | None  # (R, 3) float in [0, 1]
    frame: torch.Tensor  # (R,) index into the bank's frames
    pixel: torch.Tensor  # (R, 2) (u, v) integer column, row
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    patch_shape: tuple[int, int, int] | None = None

    def __len__(self) -> int:
        return int(self.origins.shape[0])

    def to(self, device: torch.device | str) -> "RayBatch":
        mv = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return replace(
            self,
            origins=mv(self.origins),
            dirs=mv(self.dirs),
            rgb=mv(self.rgb),
            frame=mv(self.frame),
            pixel=mv(self.pixel),
            extras={k: mv(v) for k, v in self.extras.items()},
        )


class RayBank:
    """All pixels of one split's frames, sampled uniformly or as square patches.

    ``extras`` are per-pixel targets (e.g. prior labels) as arrays (F, H, W, ...) in the order of
    :attr:`frame_names`, at this bank's (possibly downscaled) resolution; each batch carries them under
    the same names.
    """

    def __init__(
        self,
        images: torch.Tensor,
        c2w: torch.Tensor,
        intr: Intrinsics,
        frame_names: list[str],
        extras: Mapping[str, np.ndarray | torch.Tensor] | None = None,
        source: Path | None = None,
    ) -> None:
        if images.dim() != 4 or images.shape[-1] != 3 or images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 (F,H,W,3), got {images.dtype} {tuple(images.shape)}")
        self.images = images
        self.c2w = c2w.float()
        self.intr = intr
        self.frame_names = list(frame_names)
        self.source = source
        self.extras: dict[str, torch.Tensor] = {}
        for name, arr in (extras or {}).items():
            self.add_extra(name, arr)

    @property
    def num_frames(self) -> int:
        return int(self.images.shape[0])

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    @property
    def num_rays(self) -> int:
        return self.num_frames * self.height * self.width

    def add_extra(self, name: str, array: np.ndarray | torch.Tensor) -> None:
        """Attach a per-pixel target (F, H, W, ...) (e.g. refined masks for a second training round)."""
        t = torch.as_tensor(np.asarray(array)) if not isinstance(array, torch.Tensor) else array
        if tuple(t.shape[:3]) != (self.num_frames, self.height, self.width):
            raise InputError(
                self.source,
                f"extra target {name!r} has shape {tuple(t.shape)}; expected ({self.num_frames}, {self.height}, {self.width}, ...) "
                f"(frames in the order of RayBank.frame_names, at the bank's resolution)",
            )
        self.extras[name] = t

    def gather(self, frame: torch.Tensor, u: torch.Tensor, v: torch.Tensor, patch_shape: tuple[int, int, int] | None = None) -> RayBatch:
        """The rays and targets of explicit pixels (all CPU long tensors of equal length)."""
        origins, dirs = camera_rays(self.c2w[frame], self.intr, u, v)
        rgb = self.images[frame, v, u].float() / 255.0
        extras = {k: t[frame, v, u] for k, t in self.extras.items()}
        return RayBatch(origins, dirs, rgb, frame, torch.stack([u, v], -1), extras, patch_shape)

    def sample(self, num_rays: int, generator: torch.Generator | None = None) -> RayBatch:
        """``num_rays`` pixels drawn uniformly (with replacement) over all pixels of all frames."""
        flat = torch.randint(0, self.num_rays, (num_rays,), generator=generator)
        hw = self.height * self.width
        frame, rem = flat // hw, flat % hw
        return self.gather(frame, rem % self.width, rem // self.width)

    def sample_patches(self, num_patches: int, patch_size: int, generator: torch.Generator | None = None) -> RayBatch:
        """``num_patches`` random ``patch_size`` x ``patch_size`` patches (each inside one frame)."""
        k = int(patch_size)
        if k > min(self.height, self.width):
            raise ValueError(f"patch size {k} exceeds the image size {self.width}x{self.height}")
        frame = torch.randint(0, self.num_frames, (num_patches,), generator=generator)
        u0 = torch.randint(0, self.width - k + 1, (num_patches,), generator=generator)
        v0 = torch.randint(0, self.height - k + 1, (num_patches,), generator=generator)
        dv, du = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")
        u = (u0[:, None, None] + du).reshape(-1)
        v = (v0[:, None, None] + dv).reshape(-1)
        f = frame[:, None, None].expand(num_patches, k, k).reshape(-1)
        return self.gather(f, u, v, patch_shape=(num_patches, k, k))

    def frame_rays(self, index: int) -> RayBatch:
        """All pixels of one frame, row-major (for rendering a training view)."""
        v, u = torch.meshgrid(torch.arange(self.height), torch.arange(self.width), indexing="ij")
        u, v = u.reshape(-1), v.reshape(-1)
        return self.gather(torch.full_like(u, index), u, v)


def load_image(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    """RGB uint8 image, area-downsampled to ``size`` = (w, h) when given (box filter = pixel-centre aligned)."""
    arr = read_png(path, expect="rgb")
    if size is not None and (arr.shape[1], arr.shape[0]) != size:
        arr = np.asarray(Image.fromarray(arr).resize(size, Image.BOX))
    return arr


def load_depth_targets(scene_dir: str | Path, frame_names: list[str], height: int, width: int) -> np.ndarray:
    """(F, H, W) float32 depth in metres along the optical axis of ``frame_names`` (0 = no value), at
    (``height``, ``width``): a downscaled map keeps, per block, the mean of the pixels that have a value."""
    scene_dir = Path(scene_dir)
    maps = []
    for name in frame_names:
        path = scene_dir / DEPTH_DIR / f"{name}.png"
        if not path.exists():
            raise InputError(path, "depth map missing (depth_weight > 0 needs the depth maps of the train views)")
        metres = read_depth_metres(path)
        h, w = metres.shape
        if (h, w) != (height, width):
            f = h // height
            if f * height != h or f * width != w:
                raise InputError(path, f"depth map is {w}x{h}; the training images are {width}x{height} (not an integer downscale)")
            blocks = metres.reshape(height, f, width, f)
            count = (blocks > 0).sum(axis=(1, 3))
            metres = np.where(count > 0, blocks.sum(axis=(1, 3)) / np.maximum(count, 1), 0.0).astype(np.float32)
        maps.append(metres)
    return np.stack(maps)


def load_scene_rays(
    scene_dir: str | Path,
    split: str = "train",
    downscale: int = 1,
    extra: Mapping[str, np.ndarray | torch.Tensor] | None = None,
) -> RayBank:
    """Read ``transforms.json`` and ``images/<frame>.png`` of one view split into a :class:`RayBank`.

    ``downscale`` (integer) shrinks images by area averaging and scales the intrinsics with
    :meth:`Intrinsics.scaled`, which keeps the pixel-centre convention when it divides W and H.
    """
    scene_dir = Path(scene_dir)
    info = load_scene_info(scene_dir)
    frames = info.frames_in(split)
    if not frames:
        raise InputError(scene_dir / TRANSFORMS_JSON, f"no frames in split {split!r}", key="frames")
    if downscale < 1 or int(downscale) != downscale:
        raise ValueError(f"downscale must be a positive integer, got {downscale}")
    intr = scene_intrinsics(info)
    if downscale > 1:
        intr = intr.scaled(1.0 / downscale)
    size = (intr.width, intr.height)
    imgs = []
    for fr in frames:
        path = scene_dir / IMAGES_DIR / f"{fr.name}.png"
        img = load_image(path, size if downscale > 1 else None)
        if img.shape[:2] != (intr.height, intr.width):
            raise InputError(path, f"image is {img.shape[1]}x{img.shape[0]}; transforms.json says {intr.width}x{intr.height}")
        imgs.append(img)
    images = torch.from_numpy(np.stack(imgs))
    c2w = torch.tensor([fr.transform_matrix for fr in frames], dtype=torch.float32)
    if c2w.shape[1:] != (4, 4):
        raise InputError(scene_dir / TRANSFORMS_JSON, f"transform_matrix must be 4x4, got {tuple(c2w.shape[1:])}", key="frames")
    return RayBank(images, c2w, intr, [fr.name for fr in frames], extra, source=scene_dir)
