"""Mask refinement (Instance-NeRF, paper section 3.3): sharpen the instance masks rendered by the instance field
with the view's RGB image (and rendered depth), then fine-tune the field on the refined masks.

Why: the instance field is supervised by projected coarse voxel masks and noisy 2D priors, so its rendered masks
are blurry at object boundaries; a refiner that snaps each mask to the image edges gives cleaner labels for a
second round of training. The reference ran CascadePSP (``segmentation_refinement``) on every rendered instance
and composited the refined soft masks sequentially. Here the refiner is pluggable:

* :class:`EdgeAwareRefiner` (default, numpy/scipy only, no weights): a guided filter (He, Sun, Tang, "Guided Image
  Filtering", ECCV 2010 / TPAMI 2013) of the soft mask with the RGB image and the rendered depth as a joint guide.
  Within each window the output is a linear function of the guide, so the mask's transitions move onto the
  guide's edges (colour or depth discontinuities) and speckles smaller than the window are averaged away.
* :class:`CascadePSPRefiner`: the reference's network through the ``segmentation-refinement`` package, only with
  weights the user supplies (nothing is downloaded).

:func:`refine_instance_map` refines each instance of a label map on its own and recomposes them.
"""

from __future__ import annotations

import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
from scipy import ndimage

from nerfseg.errors import InputError


class Refiner(ABC):
    """Refines one binary/soft instance mask of a view."""

    @abstractmethod
    def refine(self, image: np.ndarray, mask: np.ndarray, depth: np.ndarray | None = None) -> np.ndarray:
        """``image`` (H,W,3) uint8, ``mask`` (H,W) bool or float in [0,1], ``depth`` (H,W) metres or None ->
        (H,W) float in [0,1] (the refined soft mask; callers threshold at 0.5)."""

    def refine_all(self, image: np.ndarray, masks: list[np.ndarray], depth: np.ndarray | None = None) -> list[np.ndarray]:
        """All instance masks of one view; a refiner with per-view work to share overrides this."""
        return [self.refine(image, m, depth) for m in masks]


def _check_inputs(image: np.ndarray, mask: np.ndarray, depth: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(None, f"image must be (H,W,3), got shape {image.shape}", key="image")
    if mask.shape != image.shape[:2]:
        raise InputError(None, f"mask {mask.shape} does not match image {image.shape[:2]}", key="mask")
    if depth is not None:
        depth = np.asarray(depth, dtype=np.float64)
        if depth.shape != mask.shape:
            raise InputError(None, f"depth {depth.shape} does not match image {image.shape[:2]}", key="depth")
    return image, mask, depth


# ---------------------------------------------------------------------------------------------
# guided filter


def _box(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window of the first two axes (reflected borders), every trailing channel at once."""
    size = (2 * r + 1, 2 * r + 1) + (1,) * (x.ndim - 2)
    return ndimage.uniform_filter(x, size=size, mode="reflect")


def _as_guide(guide: np.ndarray) -> np.ndarray:
    guide = np.asarray(guide, dtype=np.float64)
    return guide[..., None] if guide.ndim == 2 else guide


def guide_statistics(guide: np.ndarray, radius: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Window mean (H,W,C) and inverse regularised covariance (H,W,C,C) of a guide: the part of the guided filter
    that does not depend on the filtered mask, computed once per view and radius and shared by all its instances."""
    guide = _as_guide(guide)
    c = guide.shape[2]
    mean_i = _box(guide, radius)
    iu, ju = np.triu_indices(c)
    outer = _box(guide[..., iu] * guide[..., ju], radius) - mean_i[..., iu] * mean_i[..., ju]
    sigma = np.empty(guide.shape[:2] + (c, c))
    for n, (i, j) in enumerate(zip(iu.tolist(), ju.tolist())):  # C(C+1)/2 <= 10 channel copies, not pixels
        sigma[..., i, j] = outer[..., n]
        sigma[..., j, i] = outer[..., n]
    sigma += eps * np.eye(c)
    return mean_i, np.linalg.inv(sigma)


def guided_filter_with(guide: np.ndarray, stats: tuple[np.ndarray, np.ndarray], src: np.ndarray, radius: int) -> np.ndarray:
    """Guided filter of ``src`` (H,W) given the guide's :func:`guide_statistics` for the same ``radius``."""
    guide = _as_guide(guide)
    mean_i, inv_sigma = stats
    src = np.asarray(src, dtype=np.float64)
    mean_p = _box(src, radius)
    cov_ip = _box(guide * src[..., None], radius) - mean_i * mean_p[..., None]
    a = np.einsum("hwij,hwj->hwi", inv_sigma, cov_ip)
    b = mean_p - np.einsum("hwc,hwc->hw", a, mean_i)
    return np.einsum("hwc,hwc->hw", _box(a, radius), guide) + _box(b, radius)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Guided filter of ``src`` (H,W) with a multi-channel ``guide`` (H,W,C), vectorised over pixels.

    Per window: src ~ a . guide + b with a = (Sigma + eps I)^-1 cov(guide, src), b = mean(src) - a . mean(guide);
    the output averages the (a, b) of all windows covering a pixel. ``eps`` (in squared guide units) sets which
    guide variations count as edges: a window whose guide varies by much less than sqrt(eps) is smoothed flat.
    """
    return guided_filter_with(guide, guide_statistics(guide, radius, eps), src, radius)


class EdgeAwareRefiner(Refiner):
    """Guided-filter refinement of a mask with the RGB image and the rendered depth as joint guide.

    Parameters (defaults checked on synthetic noisy masks, see tests/instance_nerf/test_refine.py):

    * ``radius``: window radius in pixels of the finest pass; None = ``max(2, round(min(H, W) / 64))`` (8 px at
      640x480).
    * ``levels``: coarse-to-fine passes with radii ``radius * 2**(levels-1), ..., 2 * radius, radius`` (32, 16, 8 px
      at 640x480), each filtering the previous soft output. The coarse pass removes blocky voxel-projection errors
      and speckles up to its window size and pulls a shifted boundary toward the nearest strong guide edge; the
      fine passes then settle it on that edge without rounding corners much. One pass of a single radius either
      leaves the coarse errors (small window) or over-smooths (large window).
    * ``eps``: regularisation in squared guide units (guide colours in [0,1]); 1e-3 treats colour steps above
      ~0.03 as edges. Larger eps smooths more and follows the image less.
    * ``depth_weight``: scale of the log-depth guide channel (log, so a step from 2 m to 3 m weighs as much as from
      4 m to 6 m: it is the relative jump that marks an occlusion boundary, where two objects of the same colour
      still separate); 0 ignores depth.
    * ``margin``: work on the mask's bounding box grown by ``margin`` coarsest radii (the boundary cannot move
      much further than that), which keeps many small instances cheap on a large image.

    A correct mask on a clean edge stays as it is (a step of the guide that coincides with the mask's step is
    reproduced by the local linear model; checked in the tests), which keeps a second training round on
    refined masks from drifting.
    """

    def __init__(self, radius: int | None = None, eps: float = 1e-3, depth_weight: float = 1.0, levels: int = 3, margin: int = 2):
        if radius is not None and radius < 1:
            raise InputError(None, f"radius must be >= 1, got {radius}", key="radius")
        if eps <= 0 or levels < 1 or depth_weight < 0 or margin < 1:
            raise InputError(None, "eps must be > 0, levels >= 1, depth_weight >= 0, margin >= 1", key="EdgeAwareRefiner")
        self.radius, self.eps, self.depth_weight, self.levels, self.margin = radius, eps, depth_weight, levels, margin

    def radii(self, shape: tuple[int, int]) -> list[int]:
        """Window radii of the passes, coarse to fine, for an image of ``shape``."""
        r = self.radius if self.radius is not None else max(2, round(min(shape) / 64))
        return [r * 2**k for k in range(self.levels - 1, -1, -1)]

    def _guide(self, image: np.ndarray, depth: np.ndarray | None) -> np.ndarray:
        rgb = image.astype(np.float64) / 255.0
        if depth is None or self.depth_weight == 0:
            return rgb
        valid = np.isfinite(depth) & (depth > 0)
        if not valid.any():
            return rgb
        far = depth[valid].max()
        logd = np.log(np.where(valid, depth, far))  # no surface: as far as the farthest surface seen
        return np.concatenate([rgb, (self.depth_weight * logd)[..., None]], axis=2)

    def _crop(self, soft: np.ndarray, radii: list[int]) -> tuple[slice, slice] | None:
        """The mask's bounding box grown by ``margin`` coarsest radii (None for an empty mask)."""
        rows = np.flatnonzero(soft.max(axis=1) > 0)
        if rows.size == 0:
            return None
        cols = np.flatnonzero(soft.max(axis=0) > 0)
        h, w = soft.shape
        pad = self.margin * radii[0]
        return slice(max(rows[0] - pad, 0), min(rows[-1] + pad + 1, h)), slice(max(cols[0] - pad, 0), min(cols[-1] + pad + 1, w))

    def _run(self, guide: np.ndarray, stats: list[tuple[np.ndarray, np.ndarray]], soft: np.ndarray, radii: list[int]) -> np.ndarray:
        p = soft
        for r, st in zip(radii, stats):
            p = np.clip(guided_filter_with(guide, st, p, r), 0.0, 1.0)
        return p

    def refine(self, image: np.ndarray, mask: np.ndarray, depth: np.ndarray | None = None) -> np.ndarray:
        image, mask, depth = _check_inputs(image, mask, depth)
        soft = np.clip(mask.astype(np.float64), 0.0, 1.0)
        out = np.zeros(soft.shape)
        radii = self.radii(soft.shape)
        crop = self._crop(soft, radii)
        if crop is None:
            return out
        guide = self._guide(image[crop], None if depth is None else depth[crop])
        stats = [guide_statistics(guide, r, self.eps) for r in radii]
        out[crop] = self._run(guide, stats, soft[crop], radii)
        return out

    def refine_all(self, image: np.ndarray, masks: list[np.ndarray], depth: np.ndarray | None = None) -> list[np.ndarray]:
        """Like :meth:`refine` per mask, with the guide statistics computed once on the whole view and sliced to each
        mask's crop (the per-mask work is then a few box filters of the mask). The statistics near a crop's border
        see the real neighbours instead of reflected ones, so results can differ from :meth:`refine` there,
        where the mask is ~0 anyway."""
        if not masks:
            return []
        image, _, depth = _check_inputs(image, masks[0], depth)
        guide = self._guide(image, depth)
        radii = self.radii(image.shape[:2])
        stats = [guide_statistics(guide, r, self.eps) for r in radii]
        outs = []
        for mask in masks:
            _, mask, _ = _check_inputs(image, mask, None)
            soft = np.clip(mask.astype(np.float64), 0.0, 1.0)
            out = np.zeros(soft.shape)
            crop = self._crop(soft, radii)
            if crop is not None:
                out[crop] = self._run(guide[crop], [(m[crop], inv[crop]) for m, inv in stats], soft[crop], radii)
            outs.append(out)
        return outs


# ---------------------------------------------------------------------------------------------
# CascadePSP (reference refiner), only with user-supplied weights


class CascadePSPRefiner(Refiner):
    """CascadePSP through the ``segmentation-refinement`` package, with weights given by path; never downloads.

    ``weights_path``: the package's ``model`` file (any name) or a folder holding it as ``model``. ``L`` and
    ``fast`` are the package's options (the reference used fast=False with L=700 and L=900). Depth is ignored
    (CascadePSP sees only RGB). Raises :class:`InputError` naming the path when the weights or the package
    (which needs torch and torchvision) are missing.
    """

    def __init__(self, weights_path: str | Path, device: str = "cpu", L: int = 900, fast: bool = False):
        path = Path(weights_path)
        model_file = path / "model" if path.is_dir() else path
        if not model_file.is_file():
            raise InputError(
                model_file,
                "CascadePSP weights not found: give the segmentation-refinement 'model' file (or a folder holding it); nerfseg never downloads weights",
            )
        try:
            import segmentation_refinement as psp  # optional and heavy (torch + torchvision): imported only here
        except ImportError as exc:
            raise InputError(
                model_file, f"CascadePSP needs the segmentation-refinement package (pip install segmentation-refinement; it needs torch and torchvision): {exc}"
            ) from None
        self.L, self.fast = int(L), bool(fast)
        # the package reads <model_folder>/model; a file of another name is linked under that name in a temp folder
        with tempfile.TemporaryDirectory(prefix="nerfseg_psp_") as tmp:
            folder = model_file.parent
            if model_file.name != "model":
                folder = Path(tmp)
                (folder / "model").symlink_to(model_file.resolve())
            try:
                self._model = psp.Refiner(device=device, model_folder=str(folder), download_and_check_model=False)
            except TypeError:
                raise InputError(model_file, "segmentation-refinement is too old: version >= 0.6 is needed (download_and_check_model=False)") from None
            except Exception as exc:  # noqa: BLE001 - torch.load / load_state_dict raise many types for a wrong or corrupt file
                raise InputError(model_file, f"could not load CascadePSP weights ({type(exc).__name__}: {exc})") from None

    def refine(self, image: np.ndarray, mask: np.ndarray, depth: np.ndarray | None = None) -> np.ndarray:
        image, mask, _ = _check_inputs(image, mask, depth)
        binary = ((mask.astype(np.float64) > 0.5) * 255).astype(np.uint8)
        out = self._model.refine(np.ascontiguousarray(image.astype(np.uint8)), binary, fast=self.fast, L=self.L)
        return np.asarray(out, dtype=np.float64) / 255.0


# ---------------------------------------------------------------------------------------------
# a whole label map


def refine_instance_map(label_map: np.ndarray, image: np.ndarray, depth: np.ndarray | None, refiner: Refiner | None = None) -> np.ndarray:
    """Refine every instance (id > 0) of a (H,W) label map on its own and recompose -> (H,W) int32 label map.

    Compositing follows the reference (``out = (1 - m) * out + id * m`` per instance) with each refined soft mask
    thresholded at 0.5 first, i.e. ``out[m > 0.5] = id``: the reference blended soft masks and cast to int, which
    invents ids (0.6 * 3 -> 1) at soft edges. Order: by area in the input, largest first, so a small object lying on
    or in front of a large one is composited last and ends on top (ties: lower id first). The canvas starts as
    background: pixels that no refined mask claims become 0, except negative (ignore) labels, which are kept.
    ``refiner`` defaults to :class:`EdgeAwareRefiner`.
    """
    label_map = np.asarray(label_map)
    if label_map.ndim != 2 or not np.issubdtype(label_map.dtype, np.integer):
        raise InputError(None, f"label map must be a 2D integer array, got {label_map.dtype} {label_map.shape}", key="label_map")
    image, _, depth = _check_inputs(image, label_map, depth)
    refiner = refiner if refiner is not None else EdgeAwareRefiner()
    out = np.where(label_map > 0, 0, label_map).astype(np.int32)
    ids, areas = np.unique(label_map[label_map > 0], return_counts=True)
    order = ids[np.lexsort((ids, -areas))].tolist()
    refined = refiner.refine_all(image, [label_map == inst for inst in order], depth)
    if len(refined) != len(order):
        raise InputError(None, f"{type(refiner).__name__} returned {len(refined)} masks for {len(order)} instances", key="refiner")
    for inst, soft in zip(order, refined):
        soft = np.asarray(soft, dtype=np.float64)
        if soft.shape != label_map.shape:
            raise InputError(None, f"{type(refiner).__name__} returned a {soft.shape} mask for a {label_map.shape} view", key="refiner")
        out[soft > 0.5] = inst
    return out
