"""Train a radiance field on one scene's train views; evaluate, render, checkpoint and resume.

Methods build on this trainer instead of writing their own loop: they register extra per-sample heads
(:meth:`RadianceTrainer.add_head`) with a loss, optionally freeze the radiance part
(:meth:`RadianceTrainer.freeze_radiance`, Instance-NeRF stage 2), and the trainer renders the heads
with the same weights as colour. All randomness of the training loop comes from one seeded generator
that is saved in checkpoints, so a resumed run repeats exactly what the original would have done.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from nerfseg.cameras import Intrinsics
from nerfseg.config import check_choices, setting_error
from nerfseg.errors import InputError
from nerfseg.io import atomic_path, write_json_atomic
from nerfseg.progress import Progress
from nerfseg.radiance.config import RadianceConfig
from nerfseg.radiance.data import RayBank, RayBatch, load_depth_targets, load_scene_rays, world_rays_torch
from nerfseg.radiance.field import RadianceField
from nerfseg.radiance.occupancy import OccupancyGrid
from nerfseg.radiance.render import Head, MarchSettings, distortion_loss, render_rays
from nerfseg.radiance.scene_box import SceneBox
from nerfseg.spec import load_scene_info

logger = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1
#: the RayBank extra that holds the train views' depth (metres) when depth_weight > 0
DEPTH_TARGET = "_depth_target"
#: A loss on a head: (render outputs, batch) -> scalar tensor.
HeadLoss = Callable[[dict, RayBatch], torch.Tensor]
#: Called after every training step with (trainer, step, logs).
Callback = Callable[["RadianceTrainer", int, dict], None]


def psnr_from_mse(mse: float) -> float:
    return float(-10.0 * math.log10(max(mse, 1e-12)))


@dataclass
class HeadSpec:
    """A registered head: the module (geo_feat, xyz) -> (S, C), its loss and how it is composited."""

    module: nn.Module
    loss: HeadLoss | None = None
    weight: float = 1.0
    detach_weights: bool = False
    needs_samples: bool = False


class RadianceTrainer:
    """Owns the field, occupancy grid, optimiser, heads and ray bank of one scene.

    ``out_dir`` (optional) receives ``config.json`` (resolved config), ``train_log.jsonl`` (step, loss,
    psnr, lr, time, samples per ray; plus test PSNR when ``eval_every`` > 0) and ``checkpoint.pt``.
    ``extra`` are per-pixel training targets for the heads (see :class:`RayBank`).
    """

    def __init__(
        self,
        scene_dir: str | Path,
        config: RadianceConfig,
        device: str | torch.device = "cpu",
        out_dir: str | Path | None = None,
        extra: Mapping[str, np.ndarray | torch.Tensor] | None = None,
        progress: bool = True,
    ) -> None:
        self.scene_dir = Path(scene_dir)
        self.config = config
        check_choices(config)  # again: a config's fields may have been assigned after it was built
        self.device = torch.device(device)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.progress = progress
        torch.manual_seed(config.seed)
        self.info = load_scene_info(self.scene_dir)
        self.rays: RayBank = load_scene_rays(self.scene_dir, "train", config.downscale, extra)
        if config.depth_weight > 0:
            self.rays.add_extra(DEPTH_TARGET, load_depth_targets(self.scene_dir, self.rays.frame_names, self.rays.height, self.rays.width))
        if config.patch_size > min(self.rays.height, self.rays.width):  # a setting that does not fit this scene
            raise setting_error("patch_size", config.patch_size,
                                f"patch_size {config.patch_size} exceeds the training images ({self.rays.width}x{self.rays.height})")
        self._test_rays: RayBank | None = None
        self.box = SceneBox.from_room_bbox(self.info.room_bbox, config.bbox_margin)
        self.field = RadianceField(config.field_config(), self.box).to(self.device)
        step = self.box.longest_side / config.march_resolution
        self.settings = MarchSettings(step=step, min_near=config.min_near, early_stop_eps=config.early_stop_eps)
        density_threshold = -math.log(1.0 - config.occ_alpha_threshold) / step
        self.occupancy = OccupancyGrid(self.box.aabb_normalised(), config.occ_resolution, config.occ_decay, density_threshold).to(self.device)
        self.heads = nn.ModuleDict()
        self.head_specs: dict[str, HeadSpec] = {}
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step = 0
        self.train_seconds = 0.0
        self.radiance_frozen = False
        self.optimizer = torch.optim.Adam(
            [
                {"params": self.field.grid_parameters(), "lr": config.lr, "base_lr": config.lr, "weight_decay": 0.0, "name": "grid"},
                {"params": self.field.mlp_parameters(), "lr": config.lr, "base_lr": config.lr, "weight_decay": config.mlp_weight_decay, "name": "mlp"},
            ],
            betas=tuple(config.adam_betas),
            eps=config.adam_eps,
        )
        if config.compile:
            # nn.Module.compile() captures nothing here (torch 2.13 CPU: dynamo skips the module's call
            # frame, measured with torch._dynamo's counters), so compile the forwards; the modules, and so
            # the checkpoints' keys, stay as they are. Measured on a mini step: ~3% faster after ~4 s of
            # compiling (docs/performance.md section 4)
            for module in (self.field.geo_mlp, self.field.color_mlp):
                module.forward = torch.compile(module.forward, dynamic=True)
        if self.out_dir is not None:
            self.write_config()

    # ------------------------------------------------------------------------------------------
    # extension points for the methods
    def add_head(
        self,
        name: str,
        module: nn.Module,
        loss: HeadLoss | None = None,
        weight: float = 1.0,
        detach_weights: bool = False,
        lr: float | None = None,
        needs_samples: bool = False,
    ) -> None:
        """Register a per-sample head rendered with the density weights (detached if ``detach_weights``).

        ``module(geo_feat, xyz)`` must return (S, C); its output appears as ``outputs[name]`` (R, C) and
        ``loss(outputs, batch)`` (weighted by ``weight``) joins the training loss. The module's
        parameters get their own optimiser group (``lr`` defaults to the config's) and are checkpointed.
        """
        if name in self.heads:
            raise ValueError(f"head {name!r} is already registered")
        module = module.to(self.device)
        self.heads[name] = module
        self.head_specs[name] = HeadSpec(module, loss, weight, detach_weights, needs_samples)
        params = [p for p in module.parameters() if p.requires_grad]
        if params:
            rate = self.config.lr if lr is None else lr
            self.optimizer.add_param_group({"params": params, "lr": rate, "base_lr": rate, "weight_decay": 0.0, "name": f"head:{name}"})

    def freeze_radiance(self, frozen: bool = True) -> None:
        """Stop training the field (grid, MLPs) and the occupancy grid; heads keep training."""
        self.radiance_frozen = frozen
        for p in self.field.parameters():
            p.requires_grad_(not frozen)

    # ------------------------------------------------------------------------------------------
    # training
    def sample_batch(self) -> RayBatch:
        cfg = self.config
        if cfg.patch_size > 0:
            n = max(1, cfg.batch_rays // (cfg.patch_size**2))
            return self.rays.sample_patches(n, cfg.patch_size, self.generator)
        return self.rays.sample(cfg.batch_rays, self.generator)

    def _background(self, n: int, training: bool) -> torch.Tensor:
        kind = self.config.background
        if training and self.config.warmup_background and self.step < self.config.occ_warmup_steps:
            kind = self.config.warmup_background
        if kind == "random" and training:
            return torch.rand(n, 3, generator=self.generator).to(self.device)
        if kind == "white":
            return torch.ones(3, device=self.device)
        return torch.zeros(3, device=self.device)  # black, and "random" outside training

    def _lr_factor(self, step: int) -> float:
        total = max(self.config.steps, 1)
        return self.config.lr_final_ratio ** (min(step, total) / total)

    def _render_heads(self, names: Iterable[str] | None = None) -> tuple[dict[str, Head], set[str]]:
        names = list(self.heads.keys()) if names is None else list(names)
        unknown = [n for n in names if n not in self.heads]
        if unknown:
            raise KeyError(f"unknown heads {unknown}; registered: {list(self.heads.keys())}")
        heads = {n: self.heads[n] for n in names}
        detach = {n for n in names if self.head_specs[n].detach_weights}
        return heads, detach  # type: ignore[return-value]

    def train_step(self, batch: RayBatch | None = None) -> dict[str, float]:
        """One optimisation step on ``batch`` (default: a fresh sample); returns scalar logs."""
        cfg = self.config
        self.field.train()
        self.heads.train()
        if batch is None:
            batch = self.sample_batch()
        batch = batch.to(self.device)
        n = len(batch)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * self._lr_factor(self.step)
        jitter = torch.rand(n, generator=self.generator).to(self.device)
        bg = self._background(n, training=True)
        heads, detach = self._render_heads()
        needs_samples = any(s.needs_samples for s in self.head_specs.values()) or (cfg.distortion_weight > 0 and not self.radiance_frozen)
        settings = self.settings
        if self.step < cfg.occ_warmup_steps and cfg.warmup_march_factor != 1.0:
            # nothing is skipped yet: a coarser march keeps the first steps affordable on a CPU
            settings = dataclasses.replace(settings, step=settings.step * cfg.warmup_march_factor)
        out = render_rays(self.field, batch.origins, batch.dirs, settings, self.occupancy, heads, detach, bg, jitter, needs_samples)
        mse = torch.mean((out["rgb"] - batch.rgb) ** 2)
        logs: dict[str, float] = {"mse": float(mse.detach())}
        loss = mse if not self.radiance_frozen else mse.detach() * 0.0
        if cfg.distortion_weight > 0 and not self.radiance_frozen:
            smp = out["samples"]
            dist = distortion_loss(smp["weights"], smp["t"], smp["deltas"], smp["ray_indices"], n)
            loss = loss + cfg.distortion_weight * dist
            logs["distortion"] = float(dist.detach())
        if cfg.depth_weight > 0 and not self.radiance_frozen:
            target = batch.extras[DEPTH_TARGET]
            has = target > 0
            depth_l1 = torch.abs(out["depth"] - target)[has].sum() / n  # rays without a value add nothing
            loss = loss + cfg.depth_weight * depth_l1
            logs["depth_l1"] = float(depth_l1.detach())
        if cfg.tv_weight > 0 and not self.radiance_frozen:
            tv = self.field.encoding.tv_loss(cfg.tv_samples or None, self.generator)
            loss = loss + cfg.tv_weight * tv
            logs["tv"] = float(tv.detach())
        for name, spec in self.head_specs.items():
            if spec.loss is not None:
                term = spec.loss(out, batch)
                loss = loss + spec.weight * term
                logs[f"loss_{name}"] = float(term.detach())
        self.optimizer.zero_grad(set_to_none=True)
        if loss.requires_grad:
            loss.backward()
            self.optimizer.step()
        self.step += 1
        if not self.radiance_frozen and self.step >= cfg.occ_warmup_steps and self.step % cfg.occ_update_every == 0:
            self.update_occupancy()
        logs.update(
            loss=float(loss.detach()),
            psnr=psnr_from_mse(logs["mse"]),
            samples_per_ray=out["num_samples"] / max(n, 1),
            probed_per_ray=out["num_probed"] / max(n, 1),
            lr=self.optimizer.param_groups[0]["lr"],
        )
        return logs

    def update_occupancy(self) -> None:
        was = self.field.training
        self.field.eval()
        self.occupancy.update(self.field.density, self.generator)
        self.field.train(was)

    def train(self, steps: int | None = None, callbacks: Sequence[Callback] = ()) -> dict[str, float]:
        """Run ``steps`` more steps (default: up to ``config.steps``); returns the last logs.

        Reports progress (nerfseg.progress: a bar on a terminal, periodic lines in a log; loss, PSNR), appends to ``train_log.jsonl``, evaluates test PSNR every
        ``eval_every`` steps and checkpoints every ``checkpoint_every`` steps and at the end.
        """
        cfg = self.config
        todo = max(cfg.steps - self.step, 0) if steps is None else int(steps)
        logs: dict[str, float] = {}
        logger.debug("radiance: %d steps from step %d on %s (%s preset, %d train rays, %d rays/step)", todo, self.step,
                     self.device, cfg.preset, self.rays.num_rays, cfg.batch_rays)
        progress = Progress(self.step + todo, "radiance", "step", enabled=self.progress and todo > 0, completed=self.step)
        with progress:
            for _ in range(todo):
                t0 = time.perf_counter()
                logs = self.train_step()
                self.train_seconds += time.perf_counter() - t0
                logs["time"] = self.train_seconds
                step = self.step
                if cfg.log_every and (step % cfg.log_every == 0 or step == 1):
                    self._log({"step": step, **logs})
                if cfg.eval_every and step % cfg.eval_every == 0:
                    ev = self.evaluate("test", max_views=cfg.eval_views)
                    logs["test_psnr"] = ev["psnr"]
                    self._log({"step": step, "time": self.train_seconds, "test_psnr": ev["psnr"], "test_views": ev["num_views"]})
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and self.out_dir is not None:
                    self.save_checkpoint()
                for cb in callbacks:
                    cb(self, step, logs)
                progress.advance(info=_progress_info(logs))
        if self.out_dir is not None and todo > 0:
            self.save_checkpoint()
        return logs

    def _log(self, record: dict[str, Any]) -> None:
        if self.out_dir is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "train_log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------------------------------------
    # rendering and evaluation
    @property
    def test_rays(self) -> RayBank:
        if self._test_rays is None:
            self._test_rays = load_scene_rays(self.scene_dir, "test", self.config.downscale)
        return self._test_rays

    @property
    def intrinsics(self) -> Intrinsics:
        """Intrinsics of the training resolution (after ``downscale``)."""
        return self.rays.intr

    @torch.no_grad()
    def render_rays(self, origins: torch.Tensor, dirs: torch.Tensor, heads: Iterable[str] | Mapping[str, Head] | None = None, chunk: int | None = None) -> dict[str, torch.Tensor]:
        """Render world rays (R,3) in chunks without gradients; returns (R, ...) tensors on the device."""
        self.field.eval()
        self.heads.eval()
        if isinstance(heads, Mapping):
            head_fns, detach = dict(heads), set()
        else:
            head_fns, detach = self._render_heads(heads)
        chunk = chunk or self.config.render_chunk
        bg = self._background(1, training=False)
        parts: dict[str, list[torch.Tensor]] = {}
        for i in range(0, origins.shape[0], chunk):
            o = origins[i : i + chunk].to(self.device)
            d = dirs[i : i + chunk].to(self.device)
            out = render_rays(self.field, o, d, self.settings, self.occupancy, head_fns, detach, bg)
            for k, v in out.items():
                if isinstance(v, torch.Tensor):
                    parts.setdefault(k, []).append(v)
        return {k: torch.cat(v) for k, v in parts.items()}

    def render_view(
        self, c2w: np.ndarray | torch.Tensor, intr: Intrinsics | None = None, heads: Iterable[str] | Mapping[str, Head] | None = None, chunk: int | None = None
    ) -> dict[str, np.ndarray]:
        """Render one camera: ``rgb`` (H,W,3) in [0,1], ``depth`` (H,W) metres along the optical axis
        (expected t; 0 where nothing is hit), ``opacity`` (H,W), and per head (H,W,C) as float32 numpy.
        ``heads`` are registered head names (default: all) or a dict of extra head callables."""
        intr = intr or self.intrinsics
        c2w_t = torch.as_tensor(np.asarray(c2w), dtype=torch.float32)
        origins, dirs = world_rays_torch(c2w_t, intr)
        out = self.render_rays(origins, dirs, heads, chunk)
        h, w = intr.height, intr.width
        return {k: v.reshape(h, w, *v.shape[1:]).float().cpu().numpy() for k, v in out.items()}

    def evaluate(self, split: str = "test", max_views: int | None = None) -> dict[str, Any]:
        """Mean PSNR (dB, over views) of rendered ``split`` views against their images, at the training
        resolution, and their mean rendered opacity; ``max_views`` takes evenly spaced views for quick checks
        during training. In a closed room every ray ends on a surface, so an opacity well below 1 means fog
        (a field that has not formed its geometry), whatever the PSNR says."""
        bank = self.test_rays if split == "test" else self.rays
        idx = list(range(bank.num_frames))
        if max_views is not None and max_views < len(idx):
            idx = [int(i) for i in np.linspace(0, len(idx) - 1, max_views).round()]
        t0 = time.perf_counter()
        psnrs, opacities = [], []
        for i in idx:
            out = self.render_view(bank.c2w[i], bank.intr, heads=[])
            gt = bank.images[i].float().numpy() / 255.0
            psnrs.append(psnr_from_mse(float(np.mean((np.clip(out["rgb"], 0, 1) - gt) ** 2))))
            opacities.append(float(np.mean(out["opacity"])))
        return {
            "psnr": float(np.mean(psnrs)) if psnrs else float("nan"),
            "opacity": float(np.mean(opacities)) if opacities else float("nan"),
            "psnr_per_view": dict(zip([bank.frame_names[i] for i in idx], psnrs)),
            "num_views": len(idx),
            "seconds": time.perf_counter() - t0,
        }

    # ------------------------------------------------------------------------------------------
    # persistence
    def write_config(self) -> None:
        assert self.out_dir is not None
        write_json_atomic(
            self.out_dir / "config.json",
            {
                "radiance": self.config.to_dict(),
                "scene_dir": str(self.scene_dir),
                "scene_id": self.info.scene_id,
                "device": str(self.device),
                "torch": torch.__version__,
                "train_resolution": [self.rays.width, self.rays.height],
                "train_views": self.rays.num_frames,
                "scene_box": {"bbox_min": self.box.bbox_min, "bbox_max": self.box.bbox_max, "scale": self.box.scale},
                "march_step_m": self.settings.step,
            },
        )

    def state_dict(self, model_only: bool = False) -> dict[str, Any]:
        state: dict[str, Any] = {
            "version": CHECKPOINT_VERSION,
            "config": self.config.to_dict(),
            "scene_dir": str(self.scene_dir),
            "step": self.step,
            "field": self.field.state_dict(),
            "occupancy": self.occupancy.state_dict(),
            "heads": self.heads.state_dict(),
        }
        if not model_only:
            state.update(
                optimizer=self.optimizer.state_dict(),
                generator=self.generator.get_state(),
                train_seconds=self.train_seconds,
                radiance_frozen=self.radiance_frozen,
            )
        return state

    def save_checkpoint(self, path: str | Path | None = None, model_only: bool = False) -> Path:
        """Write a checkpoint atomically (default ``<out_dir>/checkpoint.pt``)."""
        if path is None:
            if self.out_dir is None:
                raise ValueError("save_checkpoint needs a path when the trainer has no out_dir")
            path = self.out_dir / "checkpoint.pt"
        path = Path(path)
        with atomic_path(path) as tmp:
            torch.save(self.state_dict(model_only), tmp)
        return path

    def load_checkpoint(self, path: str | Path, model_only: bool = False) -> None:
        """Load field, occupancy and head weights (and, unless ``model_only``, the optimiser, step and
        random state, i.e. everything a resumed run needs). Heads must be registered before loading."""
        path = Path(path)
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
        except FileNotFoundError:
            raise InputError(path, "checkpoint not found") from None
        except Exception as exc:
            raise InputError(path, f"unreadable checkpoint ({type(exc).__name__}: {exc})") from None
        if state.get("version") != CHECKPOINT_VERSION:
            raise InputError(path, f"checkpoint version {state.get('version')} != {CHECKPOINT_VERSION}")
        self.field.load_state_dict(state["field"])
        self.occupancy.load_state_dict(state["occupancy"])
        missing = set(k.split(".")[0] for k in state["heads"]) - set(self.heads.keys())
        if missing:
            raise InputError(path, f"checkpoint has heads {sorted(missing)} that are not registered; add_head() them before loading")
        self.heads.load_state_dict(state["heads"], strict=False)
        if model_only:
            return
        self.step = int(state["step"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.freeze_radiance(bool(state.get("radiance_frozen", False)))

    @classmethod
    def resume(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        out_dir: str | Path | None = None,
        scene_dir: str | Path | None = None,
        setup: Callable[["RadianceTrainer"], None] | None = None,
        extra: Mapping[str, np.ndarray | torch.Tensor] | None = None,
        progress: bool = True,
    ) -> "RadianceTrainer":
        """Rebuild a trainer from a checkpoint and continue exactly where it stopped.

        ``setup(trainer)`` runs before the state is loaded: methods re-register their heads there.
        ``out_dir`` defaults to the checkpoint's folder, ``scene_dir`` to the one recorded in it.
        """
        path = Path(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except FileNotFoundError:
            raise InputError(path, "checkpoint not found") from None
        config = RadianceConfig.from_dict(state["config"])
        trainer = cls(scene_dir or state["scene_dir"], config, device, out_dir or path.parent, extra, progress)
        if setup is not None:
            setup(trainer)
        trainer.load_checkpoint(path)
        return trainer


def _progress_info(logs: dict[str, float]) -> str:
    """The training numbers worth watching, shown after the step count (bar or log line)."""
    nan = float("nan")
    return (f"loss {logs.get('loss', nan):.4f}  psnr {logs.get('psnr', nan):.2f}  "
            f"spr {logs.get('samples_per_ray', 0.0):.1f}")
