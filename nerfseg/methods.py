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
import logging
import os
import re
import shutil
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

import numpy as np

from nerfseg import io, spec
from nerfseg.errors import InputError

logger = logging.getLogger(__name__)

#: method name -> "module:Class"
METHODS: dict[str, str] = {
    "prior2d": "nerfseg.baselines.prior2d:Prior2D",
    "semantic-nerf": "nerfseg.baselines.semantic_nerf:SemanticNeRF",
    "dm-nerf": "nerfseg.baselines.dm_nerf:DMNeRF",
    "instance-nerf": "nerfseg.instance_nerf.method:InstanceNeRF",
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
        self._prior_json: dict[str, Any] | None = None

    @property
    def scene_id(self) -> str:
        return self.info.scene_id

    def frame_names(self, split: str) -> list[str]:
        return [f.name for f in self.info.frames_in(split)]

    def rgb(self, name: str) -> np.ndarray:
        return io.read_png(self.path / spec.IMAGES_DIR / f"{name}.png", expect="rgb")

    def _prior_doc(self) -> dict[str, Any]:
        """The prior's panoptic.json (read once)."""
        if self._prior_json is None:
            path = self.prior_dir / spec.PANOPTIC_JSON
            if not path.exists():
                raise InputError(path, f"prior {self.prior!r} is missing for scene {self.scene_id}; run `nerfseg priors --prior {self.prior}`")
            data = spec.read_json(path)
            if not isinstance(data, dict):
                raise InputError(path, "a prior's panoptic.json must hold a JSON object")
            self._prior_json = data
        return self._prior_json

    @property
    def prior_uses_gt_masks(self) -> bool:
        """Whether the prior is derived from the ground-truth masks (the ``gt`` prior).

        The code that writes a prior records it in the prior's panoptic.json (``uses_gt_masks``); a prior
        written before that is asked of :func:`nerfseg.dataset_tools.priors.prior_uses_gt_masks` by name.
        """
        flag = self._prior_doc().get("uses_gt_masks")
        if isinstance(flag, bool):
            return flag
        from nerfseg.dataset_tools.priors import prior_uses_gt_masks

        return prior_uses_gt_masks(self.prior)

    def prior_frame(self, name: str) -> tuple[np.ndarray, dict[int, dict[str, Any]]]:
        """The prior's panoptic ids (H,W) uint32 and {segment id: segment info} for one view."""
        if self._prior_segments is None:
            data = self._prior_doc()
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

    def prepare_shared(self, scene: SceneData) -> None:
        """Create, once and before any scene is fitted, the inputs every scene of the run shares.

        The runner calls it in the parent process before it fans scenes out to workers, so that two workers
        never both create the same shared file (Instance-NeRF trains its missing NeRF-RCNN here). Default:
        nothing to create.
        """

    def fingerprint_inputs(self, scene: SceneData) -> dict[str, Any]:
        """Inputs outside the config that change this method's predictions (files it reads, hashed).

        They join the scene's run fingerprint (:mod:`nerfseg.runs`); e.g. Instance-NeRF adds its NeRF-RCNN
        checkpoint. The prior and the benchmark are covered by the runner for every method.
        """
        return {}

    def gt_sources(self, scene: SceneData) -> list[str]:
        """Which inputs of this run derive from the ground truth (non-empty: the submission is ``uses_gt_masks``).

        The base class knows the prior and the class flag; a method whose settings can bring in GT (an
        oracle detector) says so through ``uses_gt_masks`` on the instance.
        """
        out = []
        if scene.prior_uses_gt_masks:
            out.append(f"prior {scene.prior!r} is derived from the ground-truth masks")
        if self.uses_gt_masks:
            out.append(f"method {self.name!r} with these settings reads ground-truth masks")
        radiance = self.radiance_config_used(scene)
        if getattr(radiance, "depth_weight", 0.0) > 0:  # docs/contract.md: train-view GT depth is GT input too
            out.append(f"method {self.name!r} fits its radiance field to the train views' GT depth maps (depth_weight > 0)")
        return out

    def radiance_config_used(self, scene: SceneData) -> Any:
        """The settings of the radiance field this method's predictions for ``scene`` came from (None: no field).

        Its own ``config.radiance`` by default; a method that reuses a field trained elsewhere (Instance-NeRF
        and the ``nerfseg grids`` field) returns that field's settings, so a GT-depth field cannot pass unflagged.
        """
        return getattr(self.config, "radiance", None)


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


@dataclass
class _Run:
    """One ``run_method`` call: the method, the inputs every scene's fingerprint shares, and the run folder."""

    name: str
    cls: type[Method]
    method: Method
    config: Any
    preset: str
    prior: str
    data_root: Path
    out_dir: Path
    split: str
    bench: Any  # nerfseg.identity.BenchmarkIdentity
    log: Callable[[str], None]

    @property
    def submission(self) -> Path:
        return self.out_dir / "submission"

    def work(self, sid: str) -> Path:
        return self.out_dir / "scenes" / sid

    def inputs_for(self, scene: SceneData) -> dict[str, Any]:
        """Everything that changes a scene's predictions (:mod:`nerfseg.runs`)."""
        from nerfseg import runs

        return {"method": self.name, "preset": self.preset, "prior": self.prior, "config": runs.jsonable(_config_dict(self.config)),
                "benchmark": self.bench.fingerprint, "code_version": runs.code_version(), "scene": scene.scene_id,
                "prior_files": runs.folder_digest(scene.prior_dir), "method_inputs": self.method.fingerprint_inputs(scene)}

    def write_config(self, scenes: list[str]) -> None:
        """``config.json``: the resolved config of the predictions this folder holds (or is making)."""
        from nerfseg import runs

        io.write_json_atomic(self.out_dir / "config.json", {
            "method": self.name, "method_class": f"{self.cls.__module__}:{self.cls.__qualname__}", "preset": self.preset,
            "prior": self.prior, "data": str(self.data_root), "split": self.split, "scenes": scenes,
            "config": _config_dict(self.config), "benchmark": self.bench.to_json(), "code_version": runs.code_version(),
        })


def _submitted_scenes(submission: Path) -> list[str]:
    return sorted(p.name for p in submission.iterdir() if p.is_dir() and not p.name.startswith(".")) if submission.is_dir() else []


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
    log: Callable[[str], None] | None = None,
    on_change: str = "refuse",
    workers: int = 1,
    executor: str = "process",
) -> Path:
    """Fit and predict every requested scene, then (re)assemble ``out_dir/submission``; returns its path.

    ``out_dir`` gets ``config.json`` (the resolved config), ``train_log.jsonl`` (one line per scene) and
    ``scenes/<id>/`` (work folders with checkpoints and the markers of :mod:`nerfseg.runs`). A scene whose
    predictions were made from exactly the current inputs is skipped on resume. A scene made from other
    inputs (another prior, preset, setting, benchmark or code version) is refused with the differences
    (``on_change="refuse"``, the default: a run folder never mixes two configurations) or retrained
    (``on_change="retrain"``). ``meta.json`` is written last, from the done-markers of the scenes in the
    submission, so it describes the predictions that are there; while scenes change it is absent.
    ``log`` receives one progress line per scene (the CLI echoes them; default: this module's logger).

    ``workers`` > 1 fits that many scenes at once on a process pool, ``executor="ray"`` on a Ray cluster
    (:func:`nerfseg.dataset_tools.ray_executor.map_scenes`, the fan-out ``build-dataset`` and ``grids`` use);
    each worker builds its own method from the same settings and gets ``cores // workers`` torch threads (one
    on Ray). ``log`` must then be picklable (a module-level function such as ``click.echo``).
    """
    from nerfseg import runs

    if on_change not in ("refuse", "retrain"):
        raise InputError(None, f"on_change must be 'refuse' or 'retrain', not {on_change!r}")
    if workers < 1:
        raise InputError(None, f"workers must be at least 1, not {workers}", key="workers")
    setup = _RunSetup(method_name, preset, prior, dict(overrides or {}), str(data_root), str(out_dir), split, log or logger.info)
    run = setup.make()
    data_root, out_dir = run.data_root, run.out_dir
    scene_ids = list(scenes) if scenes else spec.scenes_in_split(data_root, split)
    if not scene_ids:
        raise InputError(data_root / spec.BENCHMARK_JSON, f"split {split!r} has no scenes")
    states, scene_data = _classify_scenes(run, scene_ids, resume)
    _refuse_changed(run, states, on_change)
    out_dir.mkdir(parents=True, exist_ok=True)
    run.submission.mkdir(exist_ok=True)
    stale = [sid for sid in _submitted_scenes(run.submission) if sid not in scene_ids and states[sid].action != runs.DONE]
    if stale or any(states[sid].action != runs.DONE for sid in scene_ids):
        # the submission is incomplete until every scene matches these inputs: no meta.json, so it cannot be
        # evaluated or submitted by mistake in between
        (run.submission / spec.META_JSON).unlink(missing_ok=True)
    for sid in stale:  # predictions of other inputs, not part of this run (retrain policy): out of the submission
        shutil.rmtree(run.submission / sid)
        run.log(f"{sid}: removed from the submission ({states[sid].reason}); not among this run's scenes")
    run.write_config(scene_ids)
    todo = [sid for sid in scene_ids if states[sid].action != runs.DONE]
    if todo:
        run.method.prepare_shared(scene_data[todo[0]])
    if workers == 1 and executor == "process":
        for sid in scene_ids:
            _run_scene(run, scene_data[sid], states[sid])
    else:
        from nerfseg.dataset_tools.ray_executor import map_scenes

        for sid in scene_ids:
            if sid not in todo:
                _run_scene(run, scene_data[sid], states[sid])  # logs the skip
        threads = 1 if executor == "ray" else max(1, (os.cpu_count() or 1) // workers)
        jobs = [_SceneJob(setup, sid, states[sid], threads) for sid in todo]
        for _ in map_scenes(_fit_scene_job, jobs, workers, executor):
            pass
    return _write_meta(run, scene_data)


@dataclass(frozen=True)
class _RunSetup:
    """What a worker needs to rebuild the parent's :class:`_Run` (the method object itself is not sent)."""

    method_name: str
    preset: str
    prior: str
    overrides: dict[str, Any]
    data_root: str
    out_dir: str
    split: str
    log: Callable[[str], None]

    def make(self) -> _Run:
        from nerfseg.identity import benchmark_identity

        cls = get_method(self.method_name)
        config = cls.make_config(self.preset, **self.overrides)
        return _Run(method_run_name(self.method_name, cls), cls, cls(config), config, self.preset, self.prior, Path(self.data_root),
                    Path(self.out_dir), self.split, benchmark_identity(self.data_root), self.log)


@dataclass(frozen=True)
class _SceneJob:
    """One scene for a worker: the run to rebuild, the scene, what the parent decided to do with it."""

    setup: _RunSetup
    scene_id: str
    state: Any  # nerfseg.runs.SceneState
    threads: int


def _fit_scene_job(job: _SceneJob) -> dict[str, Any]:
    """Worker side of ``run_method(workers > 1)``: fit and predict one scene into the shared run folder."""
    import torch

    torch.set_num_threads(job.threads)
    run = job.setup.make()
    _run_scene(run, SceneData(spec.scene_dir(run.data_root, job.scene_id), run.prior), job.state)
    return {"scene": job.scene_id}


def _classify_scenes(run: _Run, scene_ids: list[str], resume: bool) -> tuple[dict[str, Any], dict[str, SceneData]]:
    """What to do with each requested scene and each other scene already in the submission (:func:`nerfseg.runs.classify`)."""
    from nerfseg import runs

    states: dict[str, runs.SceneState] = {}
    scene_data: dict[str, SceneData] = {}
    for sid in dict.fromkeys(scene_ids + _submitted_scenes(run.submission)):  # requested scenes, then the others
        if sid not in scene_ids and not spec.scene_dir(run.data_root, sid).is_dir():
            states[sid] = runs.SceneState(runs.CHANGED, f"not a scene of the benchmark {run.data_root}")
            continue
        scene_data[sid] = SceneData(spec.scene_dir(run.data_root, sid), run.prior)
        # --no-resume retrains the requested scenes; the others are only checked against the current inputs
        states[sid] = runs.classify(run.work(sid), run.submission / sid, run.inputs_for(scene_data[sid]), resume or sid not in scene_ids)
    return states, scene_data


def _refuse_changed(run: _Run, states: dict[str, Any], on_change: str) -> None:
    """Under the ``refuse`` policy, scenes made from other inputs stop the run before any work, with the differences."""
    from nerfseg import runs

    changed = {sid: st for sid, st in states.items() if st.action == runs.CHANGED}
    if not changed or on_change != "refuse":
        return
    lines = [f"  {sid}: {st.reason}" + "".join(f"\n    {c}" for c in st.changes) for sid, st in changed.items()]
    raise InputError(run.out_dir, "this run folder holds results of other inputs, refusing to mix them:\n" + "\n".join(lines)
                     + "\ngive another --out for this configuration, or --on-change retrain to replace those scenes here")


def _run_scene(run: _Run, scene: SceneData, state: Any) -> None:
    """Fit and predict one scene into the submission (atomically replacing its folder), then its done-marker."""
    from nerfseg import runs

    sid = scene.scene_id
    if state.action == runs.DONE:
        run.log(f"{sid}: predictions complete, skipped (resume)")
        return
    if state.action == runs.CHANGED:
        run.log(f"{sid}: retraining, {state.reason}" + "".join(f"; {c}" for c in state.changes))
    work, scene_out = run.work(sid), run.submission / sid
    work.mkdir(parents=True, exist_ok=True)
    runs.write_started(work, run.inputs_for(scene))
    t0 = time.perf_counter()
    summary = run.method.fit(scene, work, resume=state.action == runs.RESUME)
    t_fit = time.perf_counter() - t0
    tmp = run.submission / f".{sid}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    n = write_scene_predictions(tmp, run.method.predict(scene, work))
    run.method.write_extras(scene, work, tmp)
    if scene_out.exists():
        shutil.rmtree(scene_out)
    os.replace(tmp, scene_out)
    t_all = time.perf_counter() - t0
    gt = run.method.gt_sources(scene)
    # inputs again after the fit: a method may have created one meanwhile (e.g. trained its detector)
    runs.write_done(work, run.inputs_for(scene), n, bool(gt), gt)
    entry = {"scene": sid, "fit_seconds": t_fit, "total_seconds": t_all, "test_frames": n, **(summary or {})}
    with open(run.out_dir / "train_log.jsonl", "a") as fh:
        fh.write(io.dumps_json(entry, indent=None) + "\n")
    run.log(f"{sid}: fit {t_fit:.1f} s, {n} test views predicted")


def _write_meta(run: _Run, scene_data: dict[str, SceneData]) -> Path:
    """``meta.json``, last, from the done-markers of the scenes in the submission; every one must be of these inputs."""
    from nerfseg import runs

    in_submission = _submitted_scenes(run.submission)
    markers = {sid: runs.read_marker(run.work(sid) / runs.DONE_MARKER) or {} for sid in in_submission}
    for sid, marker in markers.items():  # every scene shipped must be one of these inputs (a final check)
        if sid not in scene_data or marker.get("fingerprint") != runs.fingerprint(run.inputs_for(scene_data[sid])):
            raise InputError(run.work(sid) / runs.DONE_MARKER, "predictions in the submission do not match this run's inputs; meta.json not written")
    run.write_config(in_submission)
    gt_sources = sorted({s for m in markers.values() for s in m.get("gt_sources", [])})
    meta = {
        "method": run.name,
        "description": run.cls.description,
        "url": run.cls.url,
        "uses_gt_masks": any(bool(m.get("uses_gt_masks")) for m in markers.values()),
        "semantic_only": run.cls.semantic_only,
        "prior": run.prior,
        "preset": run.preset,
        "spec_version": spec.SPEC_VERSION,
        "benchmark": run.bench.to_json(),
        "run_fingerprints": {sid: m.get("fingerprint") for sid, m in markers.items()},
    }
    if gt_sources:
        meta["gt_sources"] = gt_sources
    io.write_json_atomic(run.submission / spec.META_JSON, meta)
    return run.submission
