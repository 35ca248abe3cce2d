"""Shared plumbing of the radiance-field baselines (Semantic-NeRF, DM-NeRF).

Both baselines are "radiance core + one extra head": they turn the scene's 2D prior into per-pixel
targets at the training resolution, train a :class:`~nerfseg.radiance.trainer.RadianceTrainer` with a
head (resuming from its checkpoint), render the test views at the dataset resolution and turn the
rendered head outputs into a panoptic map. What differs (the head, its loss, how a rendered output
becomes segments) lives in each method's module; everything else is here so that the two stay
comparable: same targets, same resume rules, same test rendering and PSNR. The work folder (config check,
cached stages, summary) is :class:`nerfseg.runs.WorkFolder`; :class:`RadianceBaseline` is the fit both share.
"""

from __future__ import annotations

import json
import logging
import math
from abc import abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Mapping, TypeVar

import numpy as np
import torch
from torch import nn

from nerfseg import spec
from nerfseg.cameras import Intrinsics
from nerfseg.config import apply_overrides
from nerfseg.errors import InputError
from nerfseg.evaluation.metrics.confusion import confusion_from_maps, iou_per_class
from nerfseg.methods import Method, SceneData
from nerfseg.radiance.config import RadianceConfig
from nerfseg.radiance.trainer import RadianceTrainer
from nerfseg.runs import FIT_SUMMARY, TEST_RENDERS, WorkFolder, downsample_labels, resolve_device

logger = logging.getLogger(__name__)
C = TypeVar("C")

#: per-pixel instance target values besides the per-frame thing index (>= 0)
NEGATIVE = -1  # the prior says "background" (stuff): every object code should be off
IGNORE = -2  # the prior has no segment here (void): no object loss at all

CHECKPOINT = "checkpoint.pt"
#: what a fresh fit starts without (the config's caches and the trainer's own files)
BASELINE_FILES = (CHECKPOINT, FIT_SUMMARY, TEST_RENDERS, "train_log.jsonl")


# ------------------------------------------------------------------------------------------------
# configuration
def make_method_config(cls: type[C], method: str, presets: Mapping[str, tuple[RadianceConfig, dict[str, Any]]], preset: str,
                       overrides: Mapping[str, Any]) -> C:
    """Build a method config dataclass ``cls`` (which has a ``radiance`` field) from the named preset of
    ``presets`` (name -> (radiance config, method values)).

    Overrides go through :func:`nerfseg.config.apply_overrides`: a key names a field of the method config
    first, then a field of the radiance config (``cls.FLAT_SETTINGS``); ``radiance.KEY`` forces the latter.
    Unknown keys and ill-typed values are an error with a did-you-mean (a typo must not silently do nothing).
    """
    if preset not in presets:
        raise InputError(None, f"unknown preset {preset!r} for {method}; choose from {sorted(presets)}")
    radiance, values = presets[preset]
    return apply_overrides(cls(radiance=radiance, preset=preset, **values), overrides)  # type: ignore[call-arg]


# ------------------------------------------------------------------------------------------------
# prior -> per-pixel targets
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


def uses_shared_field(config: Any) -> bool:
    """Whether a baseline config starts from the scene's ``nerfseg grids`` field (``shared_field``) instead of
    training its own (the papers' recipe, and the default)."""
    return bool(getattr(config, "shared_field", False))


def open_trainer(
    scene: SceneData,
    config: Any,
    work_dir: Path,
    setup: Callable[[RadianceTrainer], None],
    extra: Mapping[str, np.ndarray],
    resume: bool,
    trainer_cls: type[RadianceTrainer] = RadianceTrainer,
) -> RadianceTrainer:
    """A trainer for ``scene`` in ``work_dir``: resumed from its checkpoint when ``resume`` and the
    checkpoint was written by the same method config, otherwise fresh (stale outputs removed).

    A checkpoint of another config is not resumed: continuing a run with other settings would give a
    model that no config describes. ``setup`` registers the heads (before a checkpoint is loaded).
    With ``shared_field`` the fresh trainer holds the scene's ``nerfseg grids`` field, frozen
    (:func:`_shared_field_trainer`), and a resumed one is frozen again.
    """
    shared = uses_shared_field(config)

    def prepare(trainer: RadianceTrainer) -> None:
        setup(trainer)
        if shared:  # the method's heads train on the frozen shared field
            trainer.freeze_radiance(True)

    work = WorkFolder(work_dir, config, owned=BASELINE_FILES, label=scene.scene_id)
    kept = work.open(resume)
    ckpt = work.path / CHECKPOINT
    if kept and ckpt.exists():
        trainer = trainer_cls.resume(ckpt, device=device_for(config), out_dir=work.path, scene_dir=scene.path, setup=prepare, extra=extra, progress=show_progress())
        logger.info("%s: resumed at step %d/%d", scene.scene_id, trainer.step, config.radiance.steps)
        return trainer
    work.remove(*BASELINE_FILES)  # same config but no checkpoint: what the old trainer left is not continued
    if shared:
        trainer = _shared_field_trainer(scene, config, work.path, extra, trainer_cls)
    else:
        trainer = trainer_cls(scene.path, config.radiance, device_for(config), work.path, extra, show_progress())
    prepare(trainer)
    return trainer


def _shared_field_trainer(scene: SceneData, config: Any, out_dir: Path, extra: Mapping[str, np.ndarray], trainer_cls: type[RadianceTrainer]) -> RadianceTrainer:
    """A fresh trainer whose field is the scene's ``nerfseg grids`` field (``shared_field``).

    For a method whose head cannot move the geometry anyway (DM-NeRF's object codes read detached features
    and weights), training the field again per method is pure cost: this reuses the one field per scene a
    table trains for Instance-NeRF. ``config.radiance.steps`` counts the head's steps; ray batch, lr and
    seed are the method's; the architecture and occupancy grid are the stored field's (marched pruned from
    step 0).
    """
    from nerfseg.instance_nerf.grids import shared_radiance_checkpoint, stored_radiance_config

    shared = shared_radiance_checkpoint(scene.path)
    if not shared.exists():
        raise InputError(shared, "shared_field=true needs the scene's shared radiance field: run `nerfseg grids --data DIR` first", key="shared_field")
    own = config.radiance
    head_config = stored_radiance_config(shared).replace(
        steps=own.steps, batch_rays=own.batch_rays, patch_size=own.patch_size, lr=own.lr, lr_final_ratio=own.lr_final_ratio,
        checkpoint_every=own.checkpoint_every, seed=own.seed, occ_warmup_steps=0, warmup_march_factor=1.0, eval_every=0,
        log_every=own.log_every)
    trainer = trainer_cls(scene.path, head_config, device_for(config), out_dir, extra, show_progress())
    try:
        trainer.load_checkpoint(shared, model_only=True)
    except RuntimeError as exc:
        raise InputError(shared, f"the shared field does not load: {exc}") from None
    return trainer


def device_for(config: Any) -> str:
    """The device of a config's ``device`` setting (``auto`` when it has none)."""
    return resolve_device(getattr(config, "device", "auto"))


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
    """The stored summary of a finished fit of this config (None if absent, stale or another config, or
    if it stopped short of the configured steps)."""
    summary = WorkFolder(work_dir, config).cached_summary()
    return summary if summary is not None and summary.get("steps", -1) >= config.radiance.steps else None


class RadianceBaseline(Method):
    """The fit both baselines share, as named stages of a :class:`~nerfseg.runs.WorkFolder`: ``train`` (the
    radiance core + head, resumed from its checkpoint), then the method's own :meth:`finish_stages`
    (render the test views once for ``predict``, diagnostics); the summary records each stage's seconds."""

    trainer_cls: ClassVar[type[RadianceTrainer]] = RadianceTrainer

    @abstractmethod
    def setup(self, trainer: RadianceTrainer) -> None:
        """Register the method's head on a trainer (also when rebuilding one from a checkpoint)."""

    @abstractmethod
    def targets(self, scene: SceneData) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Per-pixel training targets of the train views at the training resolution (name -> (F, H, W)),
        and summary entries that describe them."""

    def train_summary(self, trainer: RadianceTrainer, logs: dict[str, Any], work: WorkFolder) -> dict[str, Any]:
        """The summary entries of the training stage (steps, losses)."""
        return {"steps": trainer.step, "train_seconds": trainer.train_seconds,
                "final_loss": logs.get("loss", last_logged(work.path, "loss")),
                "final_train_psnr": logs.get("psnr", last_logged(work.path, "psnr"))}

    @abstractmethod
    def finish_stages(self, trainer: RadianceTrainer, scene: SceneData, work: WorkFolder) -> dict[str, Any]:
        """The stages after training; returns their summary entries."""

    def fit(self, scene: SceneData, work_dir: Path, resume: bool = True) -> dict[str, Any]:
        done = read_fit_summary(work_dir, self.config) if resume else None
        if done is not None:
            return done
        work = WorkFolder(work_dir, self.config, owned=BASELINE_FILES, label=scene.scene_id)

        def train() -> tuple[RadianceTrainer, dict[str, Any], dict[str, Any]]:
            extra, about = self.targets(scene)
            trainer = open_trainer(scene, self.config, work.path, self.setup, extra, resume, trainer_cls=self.trainer_cls)
            return trainer, trainer.train(), about

        trainer, logs, about = work.stage("train", train)
        summary = {**self.train_summary(trainer, logs, work), **about}
        summary.update(self.finish_stages(trainer, scene, work))
        summary["seconds"] = dict(work.seconds)
        return work.write_summary(summary)

    def load_trained(self, scene: SceneData, work_dir: Path) -> RadianceTrainer:
        """The trained model of ``work_dir`` (for prediction without a preceding fit in this process)."""
        if uses_shared_field(self.config):  # the checkpoint holds the shared field's architecture, not the preset's
            ckpt = Path(work_dir) / CHECKPOINT
            if not ckpt.exists():
                raise InputError(ckpt, "no trained model: run fit() first")
            return self.trainer_cls.resume(ckpt, device=device_for(self.config), scene_dir=scene.path, setup=self.setup, progress=False)
        return load_trained(scene, self.config, work_dir, self.setup, self.trainer_cls)

    def radiance_config_used(self, scene: SceneData) -> Any:
        """With ``shared_field``: the ``nerfseg grids`` field's stored settings (a GT-depth field is flagged)."""
        if uses_shared_field(self.config):
            from nerfseg.instance_nerf.grids import shared_radiance_checkpoint, stored_radiance_config

            shared = shared_radiance_checkpoint(scene.path)
            return stored_radiance_config(shared) if shared.exists() else None
        return self.config.radiance

    def fingerprint_inputs(self, scene: SceneData) -> dict[str, Any]:
        """With ``shared_field``: the shared field's hash (a re-fitted field makes the predictions stale)."""
        if not uses_shared_field(self.config):
            return {}
        from nerfseg.instance_nerf.grids import shared_radiance_checkpoint
        from nerfseg.runs import file_digest

        return {"shared_radiance": file_digest(shared_radiance_checkpoint(scene.path))}


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
def prior_confusion(pred: np.ndarray, target: np.ndarray, num_classes: int = spec.NUM_CLASSES) -> np.ndarray:
    """(C, C+1) confusion matrix of a predicted class map against prior classes (negative target = void,
    skipped), counted by the evaluator's own :func:`~nerfseg.evaluation.metrics.confusion.confusion_from_maps`."""
    return confusion_from_maps(target, pred, num_classes, valid=target >= 0)


def miou(conf: np.ndarray) -> float:
    """Mean IoU over classes with a non-empty union (SPEC 5: an absent class is skipped, not 0); the IoUs are
    the evaluator's :func:`~nerfseg.evaluation.metrics.confusion.iou_per_class`."""
    iou = iou_per_class(conf)
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
