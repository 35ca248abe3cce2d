"""Radiance grids for every scene (SPEC 3.2): train the radiance field on a scene's train views, sample
RGB + alpha over room_bbox, write ``<data>/features/<scene>.npz``.

Why here and not in the dataset build: NeRF-RCNN must see what a radiance field makes of a room (fog,
holes, floaters, view-dependent colour), not the clean meshes, or the detector would be trained on inputs
it never gets at test time. So the grids always come from a trained field, for the train scenes (the
detector's training data) as for val and test.

Layout written (all under the data root):

* ``radiance/<scene>/``: the radiance trainer's folder (``config.json``, ``train_log.jsonl``,
  ``checkpoint.pt``) plus ``grid.json``, the record of how the grid was made (settings, steps, seconds,
  PSNR). The Instance-NeRF method reuses ``checkpoint.pt`` instead of training the field again.
* ``features/<scene>.npz``: written atomically by :func:`nerfseg.radiance.export.export_radiance_grid`.

Training, validation and test grids must come from the same settings (``nerfseg grids`` with the same preset
and overrides for every split): the detector learns what a field of that budget makes of a room. A budget that
ends before the first occupancy update (e.g. ``--set steps=200`` at ``mini``, whose first update follows step
208) is refused before any training: such a field is never pruned (:class:`nerfseg.radiance.export.NeverPrunedError`).

Resumable: a scene whose npz exists and whose ``grid.json`` records the same settings is skipped; a
radiance run interrupted mid-way continues from its checkpoint when its config is unchanged. Scenes run
one per worker through a process pool or Ray (:func:`build_grids`), each worker on one torch thread.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from nerfseg import spec
from nerfseg.config import apply_overrides
from nerfseg.errors import InputError
from nerfseg.progress import Progress
from nerfseg.io import write_json_atomic
from nerfseg.radiance.config import RadianceConfig
from nerfseg.radiance.config import preset as radiance_preset
from nerfseg.radiance.export import export_radiance_grid, grid_shape
from nerfseg.radiance.trainer import RadianceTrainer
from nerfseg.runs import resolve_device

logger = logging.getLogger(__name__)

FEATURES_DIR = "features"
RADIANCE_DIR = "radiance"
CHECKPOINT = "checkpoint.pt"
GRID_RECORD = "grid.json"
GRID_FORMAT = "nerfseg-grid-v1"
SPLITS = ("train", "val", "test")


@dataclass
class GridSettings:
    """How the grids of a benchmark are made: the radiance field's config and the grid resolution.

    ``mini``: the radiance core's CPU preset with a shorter budget (``steps``; recorded in every
    ``grid.json``) and 64 voxels on the longest side (NeRF-RCNN's mini input resolution, so nothing is
    resampled). ``paper``: the torch-ngp stage-1 setting and 256 voxels (Instance-NeRF's likely value,
    reference notes section 3).
    """

    FLAT_SETTINGS = ("radiance",)  # `--set steps=500` means radiance.steps (no annotation: not a field)

    preset: str = "mini"
    resolution: int = 64
    radiance: RadianceConfig = field(default_factory=lambda: radiance_preset("mini"))
    eval_views: int = 4  # test views rendered for the recorded test PSNR (0 = skip)
    device: str = "auto"

    def record(self) -> dict[str, Any]:
        """JSON form compared on resume (device excluded: where it ran does not change what it is)."""
        d = json.loads(json.dumps(asdict(self)))
        d.pop("device", None)
        d.pop("eval_views", None)
        return d


def grid_settings(preset: str = "mini", **overrides: Any) -> GridSettings:
    """Settings of a preset with overrides (:func:`nerfseg.config.apply_overrides`): own fields first, then
    radiance fields (``radiance.KEY`` forces)."""
    if preset == "mini":
        base = GridSettings("mini", 64, radiance_preset("mini").replace(steps=1500, checkpoint_every=500))
    elif preset == "paper":
        base = GridSettings("paper", 256, radiance_preset("paper").replace(checkpoint_every=5000), eval_views=8)
    else:
        raise InputError(None, f"unknown grid preset {preset!r}; expected 'mini' or 'paper'")
    return apply_overrides(base, overrides)


def check_grid_budget(settings: GridSettings) -> None:
    """Refuse a radiance budget that ends before the occupancy grid is first updated (its grids are never pruned)."""
    rad = settings.radiance
    first = rad.first_occupancy_update()
    if rad.steps < first:
        raise InputError(
            None,
            f"radiance steps={rad.steps} ends before the first occupancy update (after step {first}: warm-up "
            f"{rad.occ_warmup_steps}, every {rad.occ_update_every}); such a field is never pruned and its grid is not "
            f"what trained fields give at test. Use steps >= {first} (better: the test grids' own settings)",
            key="steps",
        )


def feature_file(data_root: str | Path, scene_id: str) -> Path:
    return Path(data_root) / FEATURES_DIR / f"{scene_id}.npz"


def radiance_dir(data_root: str | Path, scene_id: str) -> Path:
    return Path(data_root) / RADIANCE_DIR / scene_id


def shared_radiance_checkpoint(scene_dir: str | Path) -> Path:
    """The ``nerfseg grids`` field of a scene folder (``<root>/scenes/<id>``): ``<root>/radiance/<id>/checkpoint.pt``.

    The one field per scene that every method able to start from a trained NeRF reuses (Instance-NeRF
    always when it exists, DM-NeRF with ``shared_field=true``), so a table trains each scene's NeRF once.
    """
    scene_dir = Path(scene_dir)
    return radiance_dir(scene_dir.parent.parent, scene_dir.name) / CHECKPOINT


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def grid_is_current(data_root: str | Path, scene_id: str, settings: GridSettings) -> bool:
    """True when the scene's npz exists and its ``grid.json`` records exactly these settings."""
    rec = _read_json(radiance_dir(data_root, scene_id) / GRID_RECORD)
    return feature_file(data_root, scene_id).exists() and isinstance(rec, dict) and rec.get("settings") == settings.record()


def recorded_grid_settings(data_root: str | Path, scene_ids: Iterable[str]) -> dict[str, Any] | None:
    """The grid settings recorded in the scenes' ``grid.json`` (None when none has one).

    Raises when scenes were gridded with different settings: a detector trained and validated on a mix of
    budgets is described by none of them (re-run ``nerfseg grids`` with one setting for all splits).
    """
    seen: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for sid in scene_ids:
        rec = _read_json(radiance_dir(data_root, sid) / GRID_RECORD)
        if isinstance(rec, dict) and isinstance(rec.get("settings"), dict):
            key = json.dumps(rec["settings"], sort_keys=True)
            seen.setdefault(key, (rec["settings"], []))[1].append(sid)
    if len(seen) > 1:
        groups = "; ".join(f"{len(ids)} scenes like {ids[0]}: steps={st.get('radiance', {}).get('steps')}, resolution={st.get('resolution')}" for st, ids in seen.values())
        raise InputError(Path(data_root) / RADIANCE_DIR, f"the grids were made with {len(seen)} different settings ({groups}); make all with one setting")
    return next(iter(seen.values()))[0] if seen else None


def detector_grid_mismatch(rcnn_checkpoint: str | Path, data_root: str | Path, scene_id: str) -> str | None:
    """A message when the NeRF-RCNN run of ``rcnn_checkpoint`` was trained on grids made with other settings
    than the scene's own grid (both as recorded: ``summary.json`` of the run, the scene's ``grid.json``)."""
    summary = _read_json(Path(rcnn_checkpoint).parent / "summary.json")
    scene = _read_json(radiance_dir(data_root, scene_id) / GRID_RECORD)
    trained = summary.get("grid_settings") if isinstance(summary, dict) else None
    here = scene.get("settings") if isinstance(scene, dict) else None
    if not isinstance(trained, dict) or not isinstance(here, dict) or trained == here:
        return None
    rad_t, rad_h = trained.get("radiance", {}), here.get("radiance", {})
    keys = sorted(k for k in set(rad_t) | set(rad_h) if rad_t.get(k) != rad_h.get(k))
    keys += [k for k in ("preset", "resolution") if trained.get(k) != here.get(k)]
    return (f"NeRF-RCNN was trained on grids made with other settings than {scene_id}'s (differ in {keys}; "
            f"steps {rad_t.get('steps')} vs {rad_h.get('steps')}): the detector sees inputs unlike its training data")


# ------------------------------------------------------------------------------------------------
# radiance training with resume (shared with the Instance-NeRF method)


def train_radiance(
    scene_dir: str | Path,
    config: RadianceConfig,
    out_dir: str | Path,
    device: str = "cpu",
    resume: bool = True,
    progress: bool = False,
) -> RadianceTrainer:
    """A radiance field trained to ``config.steps`` in ``out_dir``, continuing a checkpoint of the same config.

    A checkpoint written with another config is discarded, not continued: a field trained half with one
    setting and half with another is described by no config.
    """
    out_dir = Path(out_dir)
    ckpt = out_dir / CHECKPOINT
    saved = _read_json(out_dir / "config.json")
    same = isinstance(saved, dict) and saved.get("radiance") == json.loads(json.dumps(config.to_dict()))
    if resume and same and ckpt.exists():
        trainer = RadianceTrainer.resume(ckpt, device=device, out_dir=out_dir, scene_dir=scene_dir, progress=progress)
        logger.info("%s: radiance resumed at step %d/%d", Path(scene_dir).name, trainer.step, config.steps)
    else:
        for name in (CHECKPOINT, "train_log.jsonl", GRID_RECORD):
            (out_dir / name).unlink(missing_ok=True)
        trainer = RadianceTrainer(scene_dir, config, device, out_dir, progress=progress)
    if trainer.step < config.steps:
        trainer.train()
    return trainer


def stored_radiance_config(checkpoint: str | Path) -> RadianceConfig:
    """The radiance config a checkpoint was trained with (its architecture is what a reuse must match)."""
    checkpoint = Path(checkpoint)
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise InputError(checkpoint, "radiance checkpoint not found") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a corrupt file
        raise InputError(checkpoint, f"unreadable radiance checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or "config" not in state or "field" not in state:
        raise InputError(checkpoint, "not a radiance checkpoint (no config/field)")
    return RadianceConfig.from_dict(state["config"])


def load_radiance(
    checkpoint: str | Path,
    scene_dir: str | Path,
    device: str = "cpu",
    config: RadianceConfig | None = None,
    out_dir: str | Path | None = None,
    extra: dict[str, Any] | None = None,
) -> RadianceTrainer:
    """A fresh trainer (step 0) holding a stored field and occupancy grid, for rendering or training heads.

    ``config`` (default: the checkpoint's own) may change training settings (steps, rays, patches, lr);
    the architecture must match the checkpoint's, which ``load_checkpoint`` checks.
    """
    config = config or stored_radiance_config(checkpoint)
    trainer = RadianceTrainer(scene_dir, config, device, out_dir, extra, progress=False)
    try:
        trainer.load_checkpoint(checkpoint, model_only=True)
    except RuntimeError as exc:
        raise InputError(checkpoint, f"the stored field does not fit the requested architecture: {exc}") from None
    return trainer


# ------------------------------------------------------------------------------------------------
# one scene


@dataclass
class GridJob:
    """One scene's grid: picklable, so the process pool and Ray can ship it."""

    data_root: str
    scene_id: str
    settings: GridSettings
    resume: bool = True
    threads: int = 1


def build_scene_grid(job: GridJob) -> dict[str, Any]:
    """Train (or resume) the scene's field, export its grid, write ``grid.json``; returns the record."""
    torch.set_num_threads(max(1, job.threads))
    settings = job.settings
    root = Path(job.data_root)
    scene = spec.scene_dir(root, job.scene_id)
    out = radiance_dir(root, job.scene_id)
    if job.resume and grid_is_current(root, job.scene_id, settings):
        rec = _read_json(out / GRID_RECORD)
        return {**rec, "skipped": True}
    device = resolve_device(settings.device)
    t0 = time.perf_counter()
    trainer = train_radiance(scene, settings.radiance, out, device, resume=job.resume)
    t_train = time.perf_counter() - t0
    test_psnr = test_opacity = None
    if settings.eval_views > 0:
        quality = trainer.evaluate("test", max_views=settings.eval_views)
        test_psnr, test_opacity = quality["psnr"], quality["opacity"]
    t1 = time.perf_counter()
    path = export_radiance_grid(trainer.field, trainer.info.room_bbox, settings.resolution, feature_file(root, job.scene_id), trainer.occupancy)
    t_export = time.perf_counter() - t1
    rec = {
        "format": GRID_FORMAT,
        "scene": job.scene_id,
        "settings": settings.record(),
        "shape": list(grid_shape(trainer.info.room_bbox, settings.resolution)),
        "radiance_steps": trainer.step,
        "radiance_train_seconds": trainer.train_seconds,
        "wall_train_seconds": t_train,
        "export_seconds": t_export,
        "test_psnr": test_psnr,
        "test_opacity": test_opacity,  # near 1 in a closed room; 0.3-0.6 is fog (docs/instance-nerf.md)
        "device": device,
        "features": str(path),
        "checkpoint": str(out / CHECKPOINT),
    }
    write_json_atomic(out / GRID_RECORD, rec)
    return {**rec, "skipped": False}


# ------------------------------------------------------------------------------------------------
# all scenes


def benchmark_scenes(data_root: str | Path, scenes: Iterable[str] | None = None) -> list[str]:
    """The requested scenes, or every scene of the train, val and test splits (in that order)."""
    if scenes:
        return list(dict.fromkeys(scenes))
    out: list[str] = []
    for split in SPLITS:
        out += [s for s in spec.scenes_in_split(data_root, split) if s not in out]
    if not out:
        raise InputError(Path(data_root) / spec.BENCHMARK_JSON, "the benchmark lists no scenes")
    return out


def build_grids(
    data_root: str | Path,
    settings: GridSettings,
    scenes: Sequence[str] | None = None,
    workers: int = 1,
    executor: str = "process",
    resume: bool = True,
    log: Callable[[str], None] | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Grids for ``scenes`` (default: all splits) in a process pool or on Ray; returns one record per scene.

    ``log`` receives one line per scene (the CLI echoes them; default: this module's logger).

    ``progress``: a bar over scenes on a terminal, periodic lines with an ETA in a log (nerfseg.progress)."""
    root = Path(data_root)
    ids = benchmark_scenes(root, scenes)
    for sid in ids:
        if not (spec.scene_dir(root, sid) / spec.TRANSFORMS_JSON).exists():
            raise InputError(spec.scene_dir(root, sid) / spec.TRANSFORMS_JSON, f"scene {sid} is missing")
    if executor not in ("process", "ray"):
        raise InputError(None, f"unknown executor {executor!r}; expected 'process' or 'ray'")
    check_grid_budget(settings)
    threads = 1 if workers > 1 or executor == "ray" else max(1, torch.get_num_threads())
    jobs = [GridJob(str(root), sid, settings, resume, threads) for sid in ids]
    records: list[dict[str, Any]] = []
    log = log or logger.info

    def done(rec: dict[str, Any]) -> None:
        records.append(rec)
        if rec.get("skipped"):
            log(f"{rec['scene']}: grid up to date, skipped")
        else:
            psnr, opacity = rec.get("test_psnr"), rec.get("test_opacity")
            log(f"{rec['scene']}: {rec['radiance_steps']} steps in {rec['wall_train_seconds']:.0f} s, grid {rec['shape']} "
                f"in {rec['export_seconds']:.1f} s" + (f", test PSNR {psnr:.2f}" if psnr is not None else "")
                + (f", opacity {opacity:.2f}" if opacity is not None else ""))

    from nerfseg.dataset_tools.ray_executor import map_scenes

    with Progress(len(jobs), "grids", "scene", enabled=progress) as bar:
        for rec in map_scenes(build_scene_grid, jobs, workers, executor):
            done(rec)
            bar.advance(info=f"last {rec['scene']}")
    order = {sid: i for i, sid in enumerate(ids)}
    return sorted(records, key=lambda r: order[r["scene"]])
