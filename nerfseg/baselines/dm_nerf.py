"""DM-NeRF (Wang et al., ICLR 2023) on the nerfseg radiance core: an object field learnt from 2D masks.

Recipe (the authors' code, github.com/vLAR-group/DM-NeRF: ``networks/dm_nerf.py``, ``render.py``,
``evaluator.py``, ``penalizer.py``):

* an object field of K + 1 codes per sample (the last one = empty space) on DETACHED geometry
  features, composited with DETACHED weights as logits, then a sigmoid: the object field can never
  move the geometry;
* per ray batch, the prior's masks are Hungarian-matched (``scipy.optimize.linear_sum_assignment``)
  to the K codes on cost = BCE + (1 - soft IoU); loss = mean BCE of the matched pairs + mean output of
  the unmatched codes + mean (1 - sIoU) of the matched pairs. Matching is redone per batch, which is
  why the prior's per-view id permutation does not matter;
* the emptiness loss: samples in front of the (detached) rendered surface push all codes towards
  [0, ..., 0, 1]; samples within +-tolerance of it push the empty code to 0.

Our batches hold rays of a few images (``images_per_batch``; the reference: one image of 3072 rays);
the masks of each image are matched separately and the per-image losses averaged, because two masks
of the same object seen in two images must be free to take the same code.

Deviations forced by the core, and why: the reference object branch reads the 256-d trunk feature of
a positional-encoded MLP, which carries where the sample is. Our geometry feature is 15-d and mostly
describes density and colour, so two identical chairs get nearly the same feature and could not get
different codes. The head therefore also sees a frequency encoding of the sample position
(``xyz_frequencies``, 0 switches it off); it has no parameters upstream, so the geometry still gets no
gradient from the object loss. K is a config cap (``max_objects``), not the GT object count the
reference used, because methods never see GT.

Prediction: argmax over the K codes where that code's probability > 0.5, else background; the class
of object k is the majority prior class over the training pixels rendered as k (as the paper did);
ids are code + 1 in every view (so PQ^scene can reward consistency), background is one stuff segment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from nerfseg.baselines.common import (
    IGNORE,
    FeatureHead,
    RadianceBaseline,
    evenly_spaced,
    make_method_config,
    panoptic_from_labels,
    prior_instance_targets,
    prior_semantic_targets,
    psnr,
    read_fit_summary,
    render_frames,
)
from nerfseg import spec
from nerfseg.errors import InputError
from nerfseg.methods import FramePrediction, SceneData
from nerfseg.radiance.config import RadianceConfig
from nerfseg.radiance.config import preset as radiance_preset
from nerfseg.radiance.data import RayBatch
from nerfseg.radiance.trainer import RadianceTrainer
from nerfseg.runs import TEST_RENDERS, WorkFolder

HEAD = "objects"
TARGET = "instance"
NO_OBJECT = 255  # code map value of background pixels in the cached test renders


# ------------------------------------------------------------------------------------------------
# the object-code loss
def soft_iou(probs: torch.Tensor, gt: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Soft IoU (M, K) of every GT mask (R, M) in {0,1} with every predicted channel (R, K) in [0,1]:
    sum(o g) / (sum o + sum g - sum(o g) + eps), the reference's sIoU."""
    inter = gt.transpose(0, 1) @ probs  # (M, K)
    return inter / (probs.sum(0).unsqueeze(0) + gt.sum(0).unsqueeze(1) - inter + eps)


def match_costs(logits: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean-over-rays BCE (M, K) and soft IoU (M, K) between GT masks (R, M) and code logits (R, K).

    BCE is written with softplus on the logits (log sigmoid(x) = -softplus(-x)) so that saturated
    codes give finite costs, and as two matrix products instead of an (R, M, K) tensor.
    """
    r = max(int(logits.shape[0]), 1)
    pos, neg = F.softplus(-logits), F.softplus(logits)  # -log o, -log(1 - o)
    bce = (gt.transpose(0, 1) @ pos + (1.0 - gt).transpose(0, 1) @ neg) / r
    return bce, soft_iou(torch.sigmoid(logits), gt)


def hungarian_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """DM-NeRF's object loss on the rays of ONE image.

    ``logits`` (R, K) rendered code logits, ``labels`` (R,) the prior's mask index of each ray (>= 0)
    or a negative value for rays that belong to no mask (background: every code should be off).
    Returns the loss and the assignment (mask values, code indices) chosen by the Hungarian matching.
    """
    k = logits.shape[1]
    masks = torch.unique(labels[labels >= 0])
    probs = torch.sigmoid(logits)
    if masks.numel() == 0:
        return probs.mean(), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    gt = (labels.unsqueeze(1) == masks.unsqueeze(0)).to(logits.dtype)  # (R, M)
    bce, siou = match_costs(logits, gt)
    cost = (bce + (1.0 - siou)).detach().cpu().double().numpy()
    rows, cols = linear_sum_assignment(cost)
    r_t = torch.as_tensor(rows, device=logits.device)
    c_t = torch.as_tensor(cols, device=logits.device)
    loss = bce[r_t, c_t].mean() + (1.0 - siou[r_t, c_t]).mean()
    unmatched = np.setdiff1d(np.arange(k), cols)
    if unmatched.size:
        loss = loss + probs[:, torch.as_tensor(unmatched, device=logits.device)].mean()
    return loss, masks.cpu().numpy()[rows], cols


def object_loss(logits: torch.Tensor, labels: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """:func:`hungarian_loss` per image of the batch (rays with ``labels == IGNORE`` dropped), averaged
    over the images that have rays: mask indices are per view, so each image is matched on its own."""
    keep = labels != IGNORE
    logits, labels, frames = logits[keep], labels[keep], frames[keep]
    if labels.numel() == 0:
        return logits.sum() * 0.0
    terms = []
    for f in torch.unique(frames):  # a few images per batch: a short Python loop, not per ray
        sel = frames == f
        terms.append(hungarian_loss(logits[sel], labels[sel])[0])
    return torch.stack(terms).mean()


def emptiness_loss(
    sample_logits: torch.Tensor,
    t: torch.Tensor,
    ray_indices: torch.Tensor,
    depth: torch.Tensor,
    opacity: torch.Tensor,
    ray_length: torch.Tensor,
    tolerance: float = 0.05,
    sigma: float = 0.05,
) -> torch.Tensor:
    """DM-NeRF's empty-space penalty on per-sample code logits (S, K+1).

    With d the detached rendered depth of each ray (expected t, normalised by opacity) and the
    distance in metres along the ray ``delta = (d - t) * |dir|`` (our t is depth along the optical
    axis), g = exp(-delta^2 / (2 sigma^2)) / (0.4 sqrt(2 pi)) + 1e-8 as the reference:
    samples with delta > tol (in front of the surface) get BCE of all codes toward [0..0, 1] weighted
    by (1 - g), normalised by (K+1) * #front; samples with |delta| <= tol get BCE of the empty code toward
    0 weighted by g, normalised by #surface. Samples behind the surface and rays that hit nothing
    (opacity < 0.5) are left alone.
    """
    if sample_logits.numel() == 0:
        return sample_logits.sum() * 0.0
    kp1 = sample_logits.shape[1]
    op = opacity.detach()
    d = depth.detach() / op.clamp_min(1e-6)
    hit = (op > 0.5)[ray_indices]
    delta = (d[ray_indices] - t.detach()) * ray_length.detach()[ray_indices]
    g = torch.exp(-(delta**2) / (2.0 * sigma**2)) / (0.4 * math.sqrt(2.0 * math.pi)) + 1e-8
    front = hit & (delta > tolerance)
    surface = hit & (delta.abs() <= tolerance)
    loss = sample_logits.sum() * 0.0
    if bool(front.any()):
        target = torch.zeros(kp1, device=sample_logits.device, dtype=sample_logits.dtype)
        target[-1] = 1.0
        lf = sample_logits[front]
        bce = F.binary_cross_entropy_with_logits(lf, target.expand_as(lf), reduction="none").sum(-1)
        loss = loss + (bce * (1.0 - g[front])).sum() / (kp1 * int(front.sum()))
    if bool(surface.any()):
        ls = sample_logits[surface, -1]
        bce = F.binary_cross_entropy_with_logits(ls, torch.zeros_like(ls), reduction="none")
        loss = loss + (bce * g[surface]).sum() / int(surface.sum())
    return loss


# ------------------------------------------------------------------------------------------------
# configuration
@dataclass
class DMNeRFConfig:
    """DM-NeRF settings; ``radiance`` is the shared core's config (steps, rays, lr, ...)."""

    FLAT_SETTINGS = ("radiance",)  # `--set steps=500` means radiance.steps (no annotation: not a field)

    preset: str = "mini"
    radiance: RadianceConfig = field(default_factory=lambda: radiance_preset("mini"))
    max_objects: int = 24  # K object codes (+1 empty code)
    head_hidden: int = 64  # reference: 256 -> 128
    head_layers: int = 2
    xyz_frequencies: int = 6  # positional encoding of the sample position fed to the head (0 = off)
    images_per_batch: int = 4  # images whose rays make one batch (reference: 1)
    object_weight: float = 1.0
    empty_weight: float = 1.0
    empty_tolerance: float = 0.05  # metres (reference tolerance)
    empty_sigma: float = 0.05  # metres (reference deta_w)
    fg_threshold: float = 0.5
    vote_views: int = 24  # train views rendered for the class vote (0 = all)
    vote_downscale: int = 2  # ... at 1/this of the dataset resolution
    head_lr: float | None = None  # None: the radiance lr (and its decay)
    #: False (the paper): the field is trained here, jointly with the head. True: the head is trained alone on
    #: the scene's frozen ``nerfseg grids`` field (the one Instance-NeRF reuses), for ``steps`` steps; the
    #: object codes read detached geometry either way, so only the field's quality differs
    shared_field: bool = False
    device: str = "auto"


def _presets() -> dict[str, tuple[RadianceConfig, dict[str, Any]]]:
    return {
        "mini": (radiance_preset("mini").replace(checkpoint_every=500), dict(max_objects=24)),
        # the reference schedule: 500k steps of 3072 rays from one image, lr decayed x0.1 over the run;
        # the base lr stays the hash-grid one (the reference 5e-4 is for an 8x256 MLP)
        "paper": (
            radiance_preset("paper").replace(steps=500_000, batch_rays=3072, lr_final_ratio=0.1, checkpoint_every=5000),
            dict(max_objects=32, head_hidden=128, images_per_batch=1, vote_views=0, vote_downscale=1),
        ),
    }


class FewImageTrainer(RadianceTrainer):
    """The radiance trainer with batches drawn from ``images_per_batch`` random images (pixels uniform
    within each), from the trainer's own seeded generator so that resume stays exact."""

    images_per_batch: int = 1

    def sample_batch(self) -> RayBatch:
        bank = self.rays
        n_img = max(1, min(self.images_per_batch, bank.num_frames))
        per = max(1, self.config.batch_rays // n_img)
        frames = torch.randperm(bank.num_frames, generator=self.generator)[:n_img]
        pix = torch.randint(0, bank.height * bank.width, (n_img, per), generator=self.generator)
        frame = frames.unsqueeze(1).expand(n_img, per).reshape(-1)
        pix = pix.reshape(-1)
        return bank.gather(frame, pix % bank.width, pix // bank.width)


class DMNeRF(RadianceBaseline):
    name = "dm-nerf"
    description = "DM-NeRF: an object-code field on detached geometry, Hungarian-matched to the 2D prior's masks per batch, with the emptiness loss."
    url = "https://github.com/vLAR-group/DM-NeRF"

    config: DMNeRFConfig
    trainer_cls: ClassVar[type[RadianceTrainer]] = FewImageTrainer

    def __init__(self, config: DMNeRFConfig):
        super().__init__(config)
        if not 1 <= config.max_objects < NO_OBJECT:
            raise InputError(None, f"max_objects must be in 1..{NO_OBJECT - 1}, got {config.max_objects}")
        self._last_terms: dict[str, float] = {}

    @classmethod
    def make_config(cls, preset: str, **overrides: Any) -> DMNeRFConfig:
        return make_method_config(DMNeRFConfig, cls.name, _presets(), preset, overrides)

    # ------------------------------------------------------------------------------------------
    def setup(self, trainer: RadianceTrainer) -> None:
        """Register the object head (detached features and weights, per-sample outputs for the
        emptiness loss) and the batch composition."""
        cfg = self.config
        if isinstance(trainer, FewImageTrainer):
            trainer.images_per_batch = cfg.images_per_batch
        head = FeatureHead(trainer.field.geo_feat_dim, cfg.max_objects + 1, cfg.head_hidden, cfg.head_layers, detach_features=True, xyz_frequencies=cfg.xyz_frequencies)
        trainer.add_head(HEAD, head, loss=self.loss, weight=1.0, detach_weights=True, lr=cfg.head_lr, needs_samples=True)

    def loss(self, outputs: dict, batch: RayBatch) -> torch.Tensor:
        cfg = self.config
        k = cfg.max_objects
        l_obj = object_loss(outputs[HEAD][:, :k], batch.extras[TARGET].long(), batch.frame)
        total = cfg.object_weight * l_obj
        self._last_terms = {"object_loss": float(l_obj.detach())}
        if cfg.empty_weight > 0:
            s = outputs["samples"]
            l_empty = emptiness_loss(
                s[f"head:{HEAD}"], s["t"], s["ray_indices"], outputs["depth"], outputs["opacity"], batch.dirs.norm(dim=-1), cfg.empty_tolerance, cfg.empty_sigma
            )
            total = total + cfg.empty_weight * l_empty
            self._last_terms["empty_loss"] = float(l_empty.detach())
        return total

    def targets(self, scene: SceneData) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        targets, counts = prior_instance_targets(scene, scene.frame_names("train"), self.config.radiance.downscale)
        return {TARGET: targets}, {"prior_masks_per_view": float(np.mean(counts)) if counts else 0.0}

    def train_summary(self, trainer: RadianceTrainer, logs: dict[str, Any], work: WorkFolder) -> dict[str, Any]:
        return {**super().train_summary(trainer, logs, work), **{f"final_{k}": v for k, v in self._last_terms.items()}}

    # ------------------------------------------------------------------------------------------
    def codes(self, rendered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rendered head logits (H, W, K+1) -> (code index or NO_OBJECT (uint8), its probability)."""
        k = self.config.max_objects
        probs = 1.0 / (1.0 + np.exp(-rendered[..., :k].astype(np.float64)))
        code = probs.argmax(-1)
        p = np.take_along_axis(probs, code[..., None], -1)[..., 0]
        code = np.where(p > self.config.fg_threshold, code, NO_OBJECT).astype(np.uint8)
        return code, p.astype(np.float32)

    def vote_classes(self, trainer: RadianceTrainer, scene: SceneData) -> tuple[np.ndarray, np.ndarray]:
        """Class of each code by majority prior class over the train pixels rendered as that code.

        Returns (K,) classes (-1 = never seen or mostly background: the code is not an object) and the
        (K, 11) vote table. Votes include the background class so that a code that learnt a wall
        is dropped rather than labelled with its rare thing pixels.
        """
        cfg = self.config
        k = cfg.max_objects
        votes = np.zeros((k, spec.NUM_CLASSES), dtype=np.int64)
        views = evenly_spaced(scene.frame_names("train"), cfg.vote_views)
        for name, out in render_frames(trainer, scene, "train", views, [HEAD], cfg.vote_downscale):
            code, _ = self.codes(out[HEAD])
            sem = prior_semantic_targets(scene, [name], cfg.vote_downscale)[0]
            valid = (code != NO_OBJECT) & (sem >= 0)
            idx = code[valid].astype(np.int64) * spec.NUM_CLASSES + sem[valid]
            votes += np.bincount(idx, minlength=k * spec.NUM_CLASSES).reshape(k, spec.NUM_CLASSES)
        classes = np.where(votes.sum(1) > 0, votes.argmax(1), -1)
        classes = np.where(classes == spec.BACKGROUND, -1, classes)
        return classes, votes

    def finish_stages(self, trainer: RadianceTrainer, scene: SceneData, work: WorkFolder) -> dict[str, Any]:
        """Vote the code classes, render the test views once (codes cached for predict) and their PSNR."""
        classes, votes = work.stage("vote", lambda: self.vote_classes(trainer, scene))
        psnrs = work.stage("render_test", lambda: self._render_test(trainer, scene, work, classes))
        return {
            "test_psnr": float(np.mean(psnrs)) if psnrs else float("nan"),
            "objects": int((classes >= 0).sum()),
            "object_classes": {int(i) + 1: int(c) for i, c in enumerate(classes) if c >= 0},
            "vote_pixels": int(votes.sum()),
            "vote_seconds": work.seconds["vote"],
            "test_render_seconds": work.seconds["render_test"],
        }

    def _render_test(self, trainer: RadianceTrainer, scene: SceneData, work: WorkFolder, classes: np.ndarray) -> list[float]:
        """Code classes and the test views' codes into ``TEST_RENDERS`` (read by predict); returns their PSNRs."""
        arrays: dict[str, np.ndarray] = {"__classes__": classes.astype(np.int64)}
        psnrs = []
        for name, out in render_frames(trainer, scene, "test", None, [HEAD]):
            code, p = self.codes(out[HEAD])
            arrays[f"code:{name}"], arrays[f"prob:{name}"] = code, p.astype(np.float16)
            psnrs.append(psnr(out["rgb"], scene.rgb(name)))
        work.write_npz(TEST_RENDERS, arrays)
        return psnrs

    def predict(self, scene: SceneData, work_dir: Path) -> Iterator[FramePrediction]:
        work = WorkFolder(work_dir, self.config)
        work_dir = work.path
        if read_fit_summary(work_dir, self.config) is not None:
            arrays = work.read_npz(TEST_RENDERS)
            classes = arrays["__classes__"]
        else:
            trainer = self.load_trained(scene, work_dir)
            classes, _ = self.vote_classes(trainer, scene)
            arrays = {}
            for name, out in render_frames(trainer, scene, "test", None, [HEAD]):
                arrays[f"code:{name}"], arrays[f"prob:{name}"] = self.codes(out[HEAD])
        for name in scene.frame_names("test"):
            if f"code:{name}" not in arrays:
                raise InputError(work_dir / TEST_RENDERS, f"no rendered object codes for test view {name}; re-run fit")
            yield FramePrediction(name, *self.panoptic(arrays[f"code:{name}"], arrays[f"prob:{name}"].astype(np.float32), classes))

    def panoptic(self, code: np.ndarray, prob: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Code map -> panoptic ids: object k (with a class) -> id k + 1, everything else one background
        segment with id K + 1 and category 0; score = mean code probability over the segment."""
        k = self.config.max_objects
        background = k + 1
        cls_of_code = np.append(classes, -1)  # index k (NO_OBJECT remapped below) -> no class
        code_i = np.where(code == NO_OBJECT, k, code).astype(np.int64)
        is_obj = cls_of_code[code_i] >= 0
        labels = np.where(is_obj, code_i + 1, background)
        sums = np.bincount(labels.ravel(), weights=prob.ravel(), minlength=background + 1)
        counts = np.bincount(labels.ravel(), minlength=background + 1)
        categories = {i + 1: int(c) for i, c in enumerate(classes) if c >= 0}
        categories[background] = spec.BACKGROUND
        scores = {int(i): float(sums[i] / counts[i]) for i in np.nonzero(counts)[0] if i != background}
        return panoptic_from_labels(labels, categories, scores)
