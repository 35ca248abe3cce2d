"""Shared plumbing of the radiance-field baselines (Semantic-NeRF, DM-NeRF).

Both baselines are "radiance core + one extra head": they turn the scene's 2D prior into per-pixel
targets at the training resolution, train a :class:`~nerfseg.radiance.trainer.RadianceTrainer` with a
head (resuming from its checkpoint), render the test views at the dataset resolution and turn the
rendered head outputs into a panoptic map. What differs (the head, its loss, how a rendered output
becomes segments) lives in each method's module; everything else is here so that the two stay
comparable: same targets, same resume rules, same test rendering and PSNR.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar

import numpy as np
import torch
from torch import nn

from nerfseg import spec
from nerfseg.cameras import Intrinsics
from nerfseg.config import apply_overrides
from nerfseg.errors import InputError
from nerfseg.io import atomic_path, write_json_atomic
from nerfseg.methods import SceneData
from nerfseg.radiance.config import RadianceConfig
from nerfseg.radiance.trainer import RadianceTrainer

C = TypeVar("C")

#: per-pixel instance target values besides the per-frame thing index (>= 0)
NEGATIVE = -1  # the prior says "background" (stuff): every object code should be off
IGNORE = -2  # the prior has no segment here (void): no object loss at all

CHECKPOINT = "checkpoint.pt"
METHOD_CONFIG = "method_config.json"
FIT_SUMMARY = "fit_summary.json"
TEST_RENDERS = "test_renders.npz"


# ------------------------------------------------------------------------------------------------
# configuration
def make_method_config(cls: type[C], radiance: RadianceConfig, values: Mapping[str, Any], overrides: Mapping[str, Any]) -> C:
    """Build a method config dataclass ``cls`` (which has a ``radiance`` field) from preset ``values``.

    Overrides go through :func:`nerfseg.config.apply_overrides`: a key names a field of the method config
    first, then a field of the radiance config (``cls.FLAT_SETTINGS``); ``radiance.KEY`` forces the latter.
    Unknown keys and ill-typed values are an error with a did-you-mean (a typo must not silently do nothing).
    """
    return apply_overrides(cls(radiance=radiance, **values), overrides)  # type: ignore[call-arg]


def config_to_json(config: Any) -> dict[str, Any]:
    """JSON-comparable form of a config (tuples become lists, as after a JSON round trip)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


# ------------------------------------------------------------------------------------------------
# prior -> per-pixel targets
def downsample_labels(labels: np.ndarray, factor: int) -> np.ndarray:
    """Nearest (centre) sampling of an (H, W, ...) label map by an integer factor.

    Labels cannot be averaged like colours; the pixel nearest the centre of each ``factor`` x ``factor``
    block is the one whose centre the downscaled camera's ray passes through (for odd factors exactly).
    """
    if factor == 1:
        return labels
    off = factor // 2
    h, w = labels.shape[0] // factor, labels.shape[1] // factor
    return labels[off::factor, off::factor][:h, :w]


def prior_semantic_targets(scene: SceneData, frames: list[str], factor: int = 1) -> np.ndarray:
    """(F, H, W) int64 prior class per pixel (-1 = void) for ``frames``, at 1/``factor`` resolution."""
    return np.stack([downsample_labels(scene.prior_semantic(name, void=-1), factor) for name in frames])


def prior_instance_targets(scene: SceneData, frames: list[str], factor: int = 1) -> tuple[np.ndarray, list[int]]:
    """(F, H, W) int32 per-frame thing index (0..M_f-1), ``NEGATIVE`` on stuff, ``IGNORE`` on void.

    Prior ids are permuted per view, so an index only means something inside its own frame; the
    DM-NeRF loss matches each frame's masks to the object codes separately. Also returns M_f per frame.
    """
    out, counts = [], []
    for name in frames:
        ids, segments = scene.prior_frame(name)
        ids = downsample_labels(ids, factor)
        keys = np.array(sorted(segments), dtype=np.int64)
        things = [k for k in sorted(segments) if int(segments[k]["category_id"]) != spec.BACKGROUND]
        value = np.array([things.index(k) if k in things else NEGATIVE for k in sorted(segments)], dtype=np.int32)
        frame = np.full(ids.shape, IGNORE, dtype=np.int32)
        if keys.size:
            pos = np.clip(np.searchsorted(keys, ids), 0, keys.size - 1)
            hit = keys[pos] == ids
            frame[hit] = value[pos[hit]]
        out.append(frame)
        counts.append(len(things))
    return np.stack(out), counts


# ------------------------------------------------------------------------------------------------
# heads
def frequency_encoding(x: torch.Tensor, num_frequencies: int) -> torch.Tensor:
    """NeRF positional encoding [x, sin(2^k pi x), cos(2^k pi x)], k < L (L = 0: x itself)."""
    if num_frequencies <= 0:
        return x
    freqs = (2.0 ** torch.arange(num_frequencies, device=x.device, dtype=x.dtype)) * math.pi
    xf = x.unsqueeze(-1) * freqs  # (N, 3, L)
    return torch.cat([x, torch.sin(xf).flatten(1), torch.cos(xf).flatten(1)], dim=-1)


class FeatureHead(nn.Module):
    """A per-sample MLP on the radiance geometry features (optionally detached, optionally with a
    positional encoding of the sample position), the shape both baselines' heads take.

    ``detach_features`` is the difference between the baselines: Semantic-NeRF trains the shared
    features with its labels, DM-NeRF's object field must not move the geometry.
    """

    def __init__(self, geo_dim: int, out_dim: int, hidden: int, layers: int, detach_features: bool, xyz_frequencies: int = 0) -> None:
        super().__init__()
        self.detach_features = detach_features
        self.xyz_frequencies = xyz_frequencies
        in_dim = geo_dim + (3 + 6 * xyz_frequencies if xyz_frequencies > 0 else 0)
        mods: list[nn.Module] = []
        d = in_dim
        for _ in range(layers):
            mods += [nn.Linear(d, hidden), nn.ReLU(inplace=True)]
            d = hidden
        mods.append(nn.Linear(d, out_dim))
        self.mlp = nn.Sequential(*mods)

    def forward(self, geo_feat: torch.Tensor, xyz: torch.Tensor) -> torch.Tensor:
        h = geo_feat.detach() if self.detach_features else geo_feat
        if self.xyz_frequencies > 0:
            h = torch.cat([h, frequency_encoding(xyz.detach(), self.xyz_frequencies).to(h.dtype)], dim=-1)
        return self.mlp(h)


# ------------------------------------------------------------------------------------------------
# training with resume
def show_progress() -> bool:
    """Always report training progress: nerfseg.progress draws a bar on a terminal and writes periodic lines
    with an ETA when stderr is a file, so a job run under nohup or a scheduler is not silent for hours
    (``NERFSEG_PROGRESS=off`` silences it)."""
    return True


def open_trainer(
    scene: SceneData,
    config: Any,
    work_dir: Path,
    setup: Callable[[RadianceTrainer], None],
    extra: Mapping[str, np.ndarray],
    resume: bool,
    trainer_cls: type[RadianceTrainer] = RadianceTrainer,
    log: Callable[[str], None] | None = None,
) -> RadianceTrainer:
    """A trainer for ``scene`` in ``work_dir``: resumed from its checkpoint when ``resume`` and the
    checkpoint was written by the same method config, otherwise fresh (stale outputs removed).

    A checkpoint of another config is not resumed: continuing a run with other settings would give a
    model that no config describes. ``setup`` registers the heads (before a checkpoint is loaded).
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    ckpt = work_dir / CHECKPOINT
    saved_cfg = work_dir / METHOD_CONFIG
    current = config_to_json(config)
    same = saved_cfg.exists() and json.loads(saved_cfg.read_text()) == current
    if resume and ckpt.exists() and same:
        trainer = trainer_cls.resume(ckpt, device=device_for(config), out_dir=work_dir, scene_dir=scene.path, setup=setup, extra=extra, progress=show_progress())
        if log:
            log(f"{scene.scene_id}: resumed at step {trainer.step}/{config.radiance.steps}")
        return trainer
    if ckpt.exists() and log:
        log(f"{scene.scene_id}: {'config changed, ' if not same else ''}training from scratch")
    for name in (CHECKPOINT, FIT_SUMMARY, TEST_RENDERS, "train_log.jsonl"):
        (work_dir / name).unlink(missing_ok=True)
    write_json_atomic(saved_cfg, current)
    trainer = trainer_cls(scene.path, config.radiance, device_for(config), work_dir, extra, show_progress())
    setup(trainer)
    return trainer


def device_for(config: Any) -> str:
    wanted = getattr(config, "device", "auto")
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return wanted


def load_trained(scene: SceneData, config: Any, work_dir: Path, setup: Callable[[RadianceTrainer], None], trainer_cls: type[RadianceTrainer] = RadianceTrainer) -> RadianceTrainer:
    """The trained model of ``work_dir`` (for prediction without a preceding fit in this process)."""
    ckpt = Path(work_dir) / CHECKPOINT
    if not ckpt.exists():
        raise InputError(ckpt, "no trained model: run fit() first")
    trainer = trainer_cls(scene.path, config.radiance, device_for(config), None, None, False)
    setup(trainer)
    trainer.load_checkpoint(ckpt, model_only=True)
    return trainer


def read_fit_summary(work_dir: Path, config: Any) -> dict[str, Any] | None:
    """The stored summary of a finished fit of this config (None if absent, stale or another config)."""
    path = Path(work_dir) / FIT_SUMMARY
    cfg = Path(work_dir) / METHOD_CONFIG
    if not path.exists() or not cfg.exists() or not (Path(work_dir) / TEST_RENDERS).exists():
        return None
    if json.loads(cfg.read_text()) != config_to_json(config):
        return None
    summary = json.loads(path.read_text())
    return summary if summary.get("steps", -1) >= config.radiance.steps else None


def write_npz_atomic(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


# ------------------------------------------------------------------------------------------------
# rendering
def scene_intrinsics(scene: SceneData) -> Intrinsics:
    i = scene.info
    return Intrinsics(i.width, i.height, i.fl_x, i.fl_y, i.cx, i.cy)


def render_frames(trainer: RadianceTrainer, scene: SceneData, split: str, names: Iterable[str] | None, heads: list[str], factor: int = 1) -> Iterable[tuple[str, dict[str, np.ndarray]]]:
    """Render frames of ``split`` (all, or ``names``) at 1/``factor`` of the dataset resolution."""
    frames = {f.name: f for f in scene.info.frames_in(split)}
    intr = scene_intrinsics(scene)
    if factor > 1:
        intr = intr.scaled(1.0 / factor)
    for name in names if names is not None else list(frames):
        out = trainer.render_view(np.asarray(frames[name].transform_matrix, dtype=np.float32), intr, heads=heads)
        yield name, out


def psnr(pred: np.ndarray, target_u8: np.ndarray) -> float:
    mse = float(np.mean((np.clip(pred, 0.0, 1.0) - target_u8.astype(np.float32) / 255.0) ** 2))
    return float(-10.0 * math.log10(max(mse, 1e-12)))


def evenly_spaced(items: list[str], count: int) -> list[str]:
    """``count`` items spread over the list (all when ``count`` <= 0 or >= len)."""
    if count <= 0 or count >= len(items):
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, count).round()]


# ------------------------------------------------------------------------------------------------
# metrics and panoptic maps
def confusion(pred: np.ndarray, target: np.ndarray, num_classes: int = spec.NUM_CLASSES) -> np.ndarray:
    """Confusion matrix [target, pred] over pixels whose target is a class (negative = void, skipped)."""
    valid = target >= 0
    idx = target[valid].astype(np.int64) * num_classes + pred[valid].astype(np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def miou(conf: np.ndarray) -> float:
    """Mean IoU over classes with a non-empty union (SPEC 5: an absent class is skipped, not 0)."""
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def panoptic_from_labels(labels: np.ndarray, categories: Mapping[int, int], scores: Mapping[int, float] | None = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """(H, W) non-negative segment ids + {id: category} -> uint32 id map and its segments (id 0 = void)."""
    ids = labels.astype(np.uint32)
    present = np.unique(ids)
    segments = [
        {"id": int(i), "category_id": int(categories[int(i)]), **({"score": float(scores[int(i)])} if scores and int(i) in scores else {})}
        for i in present
        if i != spec.VOID_ID
    ]
    return ids, segments


def last_logged(work_dir: Path, key: str) -> float | None:
    """The last value of ``key`` in the trainer's ``train_log.jsonl`` (for a fit resumed when already done)."""
    path = Path(work_dir) / "train_log.jsonl"
    if not path.exists():
        return None
    value = None
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        if key in rec:
            value = rec[key]
    return value
