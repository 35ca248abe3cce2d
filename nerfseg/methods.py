"""One interface for every method (Instance-NeRF and the baselines) and the registry behind ``--method``.

A method fits on one scene's train views and its 2D prior, then predicts the scene's test views; the
runner turns those predictions into a submission of SPEC section 4. Methods are named configurations
in the spirit of nerfstudio's method specs: ``nerfseg train --method semantic-nerf --preset mini``.
The registry holds import paths as strings so that ``nerfseg`` does not import the method packages
(they depend on it, not the reverse) and a method's heavy dependencies load only when it runs.

Methods from elsewhere plug in without editing this file (docs/write-a-method.md): ``--method
my_pkg.my_module:MyMethod`` imports a class directly, and an installed package can register names in the
entry-point group ``nerfseg.methods`` (``[project.entry-points."nerfseg.methods"] my-method =
"my_pkg.my_module:MyMethod"``), after which ``--method my-method`` works like a built-in.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import json
import os
import re
import shutil
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np

from nerfseg import io, spec
from nerfseg.errors import InputError

#: method name -> "module:Class"
METHODS: dict[str, str] = {
    "prior2d": "baselines.prior2d:Prior2D",
    "semantic-nerf": "baselines.semantic_nerf:SemanticNeRF",
    "dm-nerf": "baselines.dm_nerf:DMNeRF",
    "instance-nerf": "instance_nerf.method:InstanceNeRF",
}
#: entry-point group in which installed packages register methods (name -> "module:Class")
ENTRY_POINT_GROUP = "nerfseg.methods"
#: a method name becomes a folder name (runs/NAME) and a leaderboard label: keep it plain
METHOD_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


@dataclass
class FramePrediction:
    """A method's answer for one test view: a panoptic id map and its segments (SPEC section 4)."""

    name: str
    ids: np.ndarray  # (H,W) uint32, 0 = void
    segments: list[dict[str, Any]]  # {"id", "category_id", "score"?}


class SceneData:
    """What a method may read of a scene: images, poses, depth-free train views and the chosen prior.

    GT maps are deliberately not offered: methods learn from the prior (SPEC section 6).
    """

    def __init__(self, scene_path: Path, prior: str):
        self.path = Path(scene_path)
        self.info = spec.load_scene_info(self.path)
        self.prior = prior
        self.prior_dir = self.path / spec.PRIORS_DIR / prior
        self._prior_segments: dict[str, dict[int, dict[str, Any]]] | None = None

    @property
    def scene_id(self) -> str:
        return self.info.scene_id

    def frame_names(self, split: str) -> list[str]:
        return [f.name for f in self.info.frames_in(split)]

    def rgb(self, name: str) -> np.ndarray:
        return io.read_png(self.path / spec.IMAGES_DIR / f"{name}.png", expect="rgb")

    def prior_frame(self, name: str) -> tuple[np.ndarray, dict[int, dict[str, Any]]]:
        """The prior's panoptic ids (H,W) uint32 and {segment id: segment info} for one view."""
        if self._prior_segments is None:
            path = self.prior_dir / spec.PANOPTIC_JSON
            if not path.exists():
                raise InputError(path, f"prior {self.prior!r} is missing for scene {self.scene_id}; run `nerfseg priors --prior {self.prior}`")
            data = spec.read_json(path)
            self._prior_segments = {
                Path(ann["file_name"]).stem: {int(s["id"]): s for s in ann["segments_info"]} for ann in data.get("annotations", [])
            }
        if name not in self._prior_segments:
            raise InputError(self.prior_dir / spec.PANOPTIC_JSON, f"no annotation for frame {name}")
        ids = io.read_panoptic_png(self.prior_dir / spec.PANOPTIC_DIR / f"{name}.png")
        return ids, self._prior_segments[name]

    def prior_semantic(self, name: str, void: int = -1) -> np.ndarray:
        """The prior's per-pixel class (int64, ``void`` where the prior has no segment)."""
        ids, segments = self.prior_frame(name)
        lut_keys = np.array(sorted(segments), dtype=np.int64)
        lut_vals = np.array([segments[k]["category_id"] for k in sorted(segments)], dtype=np.int64)
        out = np.full(ids.shape, void, dtype=np.int64)
        if lut_keys.size:
            pos = np.clip(np.searchsorted(lut_keys, ids), 0, lut_keys.size - 1)
            hit = lut_keys[pos] == ids
            out[hit] = lut_vals[pos[hit]]
        return out


class Method(ABC):
    """Base class: subclasses set the class variables, a config dataclass with presets, fit and predict."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    url: ClassVar[str] = ""
    semantic_only: ClassVar[bool] = False
    uses_gt_masks: ClassVar[bool] = False

    def __init__(self, config: Any):
        self.config = config

    @classmethod
    @abstractmethod
    def make_config(cls, preset: str, **overrides: Any) -> Any:
        """The method's config dataclass for a preset (``mini`` or ``paper``), with overrides applied."""

    @abstractmethod
    def fit(self, scene: SceneData, work_dir: Path, resume: bool = True) -> dict[str, Any]:
        """Train on the scene's train views and prior; return a summary (times, losses) for the log."""

    @abstractmethod
    def predict(self, scene: SceneData, work_dir: Path) -> Iterator[FramePrediction]:
        """Yield predictions for every TEST view of the scene."""

    def write_extras(self, scene: SceneData, work_dir: Path, scene_out: Path) -> None:
        """Optional: write extra submission files for the scene (e.g. instances3d.h5)."""


def plugin_methods() -> dict[str, Any]:
    """Installed plug-ins: entry-point name -> ``importlib.metadata.EntryPoint`` (nothing is imported yet)."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_methods() -> list[str]:
    """Every name ``--method`` accepts without a ``module:Class`` path: built-ins, then installed plug-ins."""
    return sorted(METHODS) + sorted(set(plugin_methods()) - set(METHODS))


def _import_target(target: str, requested: str) -> Any:
    """Import ``module:Attr`` (``Attr`` may be dotted); errors name what was asked for and why it failed."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise InputError(None, f"--method {requested!r}: expected a name or module:Class, got {target!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # `nerfseg` (a console script) does not search the current folder itself
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):  # the target itself
            raise InputError(None, f"--method {requested!r}: no module named {exc.name!r} (is it installed, or on PYTHONPATH?)") from None
        raise InputError(None, f"--method {requested!r}: importing {module_name} failed: {exc}") from exc
    except ImportError as exc:
        raise InputError(None, f"--method {requested!r}: importing {module_name} failed: {exc}") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(None, f"--method {requested!r}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _check_method_class(obj: Any, requested: str, origin: str) -> type[Method]:
    """A plug-in must be a concrete :class:`Method` subclass with a plain ``name``: say which rule it breaks."""
    if not (inspect.isclass(obj) and issubclass(obj, Method)):
        raise InputError(None, f"--method {requested!r}: {origin} is {obj!r}, not a subclass of nerfseg.methods.Method")
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
        raise InputError(None, f"--method {requested!r}: {origin} does not implement {missing}")
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not METHOD_NAME_RE.match(name):
        raise InputError(None, f"--method {requested!r}: {origin}.name must be a plain name such as 'my-method' (letters, digits, '_.+-'), got {name!r}")
    return obj


def get_method(name: str) -> type[Method]:
    """Resolve ``--method``: a built-in name, an installed plug-in's entry-point name, or ``module:Class``.

    Built-in names win over plug-ins of the same name, so an installed package cannot silently replace a
    reference method. An unknown name gets did-you-mean suggestions (``semantic_nerf`` -> ``semantic-nerf``).
    """
    if name in METHODS:
        return _check_method_class(_import_target(METHODS[name], name), name, METHODS[name])
    if ":" in name:
        return _check_method_class(_import_target(name, name), name, name)
    plugins = plugin_methods()
    if name in plugins:
        ep = plugins[name]
        dist = getattr(getattr(ep, "dist", None), "name", None) or "an installed package"
        origin = f"{ep.value} (entry point {name!r} of {dist})"
        try:
            obj = ep.load()
        except Exception as exc:  # any failure inside someone else's package: say whose it is
            raise InputError(None, f"--method {name!r}: loading {origin} failed: {type(exc).__name__}: {exc}") from exc
        return _check_method_class(obj, name, origin)
    known = available_methods()
    normalised = name.replace("_", "-").lower()
    close = [normalised] if normalised in known else difflib.get_close_matches(normalised, known, n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    raise InputError(
        None, f"unknown method {name!r}{hint}; known: {', '.join(known)}; or pass my_pkg.my_module:MyMethod (docs/write-a-method.md)"
    )


def method_run_name(requested: str, cls: type[Method]) -> str:
    """The name a run is filed under (runs/NAME, meta.json): what the user typed, or the class's ``name``
    when they typed a ``module:Class`` path (a path is no folder name)."""
    return cls.name if ":" in requested else requested


def _config_dict(config: Any) -> Any:
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config


def write_scene_predictions(scene_out: Path, predictions: Iterator[FramePrediction]) -> int:
    """Write one scene's predictions (panoptic PNGs + panoptic.json) into ``scene_out``; returns frames written."""
    annotations = []
    for pred in predictions:
        io.write_panoptic_png(scene_out / spec.PANOPTIC_DIR / f"{pred.name}.png", pred.ids)
        annotations.append({"file_name": f"{pred.name}.png", "image_id": pred.name, "segments_info": pred.segments})
    io.write_json_atomic(scene_out / spec.PANOPTIC_JSON, {"annotations": annotations}, indent=None)
    return len(annotations)


def run_method(
    method_name: str,
    data_root: Path,
    out_dir: Path,
    scenes: list[str] | None = None,
    split: str = "test",
    prior: str = "sim-m2f",
    preset: str = "mini",
    resume: bool = True,
    overrides: dict[str, Any] | None = None,
    log: Any = print,
) -> Path:
    """Fit and predict every requested scene, then (re)assemble ``out_dir/submission``; returns its path.

    ``out_dir`` gets ``config.json`` (the resolved config), ``train_log.jsonl`` (one line per scene) and
    ``scenes/<id>/`` (work folders with checkpoints). A scene whose predictions are complete is skipped on
    resume; its submission folder is written in a temp folder and renamed into place.
    """
    cls = get_method(method_name)
    method_name = method_run_name(method_name, cls)
    config = cls.make_config(preset, **(overrides or {}))
    method = cls(config)
    data_root, out_dir = Path(data_root), Path(out_dir)
    scene_ids = list(scenes) if scenes else spec.scenes_in_split(data_root, split)
    if not scene_ids:
        raise InputError(data_root / spec.BENCHMARK_JSON, f"split {split!r} has no scenes")
    out_dir.mkdir(parents=True, exist_ok=True)
    io.write_json_atomic(
        out_dir / "config.json",
        {"method": method_name, "method_class": f"{cls.__module__}:{cls.__qualname__}", "preset": preset, "prior": prior, "data": str(data_root), "split": split, "scenes": scene_ids, "config": _config_dict(config)},
    )
    submission = out_dir / "submission"
    submission.mkdir(exist_ok=True)
    for sid in scene_ids:
        scene_out = submission / sid
        work = out_dir / "scenes" / sid
        done_marker = work / "predictions.done"
        if resume and done_marker.exists() and scene_out.exists():
            log(f"{sid}: predictions complete, skipped (resume)")
            continue
        scene = SceneData(spec.scene_dir(data_root, sid), prior)
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        summary = method.fit(scene, work, resume=resume)
        t_fit = time.perf_counter() - t0
        tmp = submission / f".{sid}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        n = write_scene_predictions(tmp, method.predict(scene, work))
        method.write_extras(scene, work, tmp)
        if scene_out.exists():
            shutil.rmtree(scene_out)
        os.replace(tmp, scene_out)
        t_all = time.perf_counter() - t0
        done_marker.write_text(json.dumps({"frames": n}))
        entry = {"scene": sid, "fit_seconds": t_fit, "total_seconds": t_all, "test_frames": n, **(summary or {})}
        with open(out_dir / "train_log.jsonl", "a") as fh:
            fh.write(io.dumps_json(entry, indent=None) + "\n")
        log(f"{sid}: fit {t_fit:.1f} s, {n} test views predicted")
    meta = {
        "method": method_name,
        "description": cls.description,
        "url": cls.url,
        "uses_gt_masks": bool(method.uses_gt_masks),  # an instance may turn it on (e.g. oracle detections)
        "semantic_only": cls.semantic_only,
        "prior": prior,
        "preset": preset,
        "spec_version": spec.SPEC_VERSION,
    }
    io.write_json_atomic(submission / spec.META_JSON, meta)
    return submission
