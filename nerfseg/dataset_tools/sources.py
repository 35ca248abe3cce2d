"""Scene sources: where ``build-dataset`` gets its rooms from, one registered name per dataset.

A source does two jobs, split so that a process pool or a Ray cluster can run the second one:

* ``plan(out_root, config, workers)`` runs once in the parent and returns a :class:`~nerfseg.dataset_tools.build_plan.Plan`
  whose jobs are picklable :class:`~nerfseg.dataset_tools.build_plan.SceneJob` records;
* ``job.loader(job)`` runs in a worker and turns one job into a :class:`LoadedScene` (the scene's geometry
  and labels, or the reason the room is not a scene). The loader is a module-level function, so it is
  pickled by reference and a spawned worker or Ray node needs no registry state.

Everything after loading (cameras, rendering, GT, priors, the benchmark split) is the same for every
source, so a new dataset is one module: a planner and a loader that produce a
:class:`~nerfseg.dataset_tools.scene.Scene` (see docs/architecture.md, "add a ScanNet source").

Sources are registered by name (``register_source``); third-party packages can add theirs through
the ``nerfseg.scene_sources`` entry-point group (each entry point names a factory).
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

from nerfseg.errors import InputError

# The build's data types, LoadedScene (re-exported here for source authors) and the 3D-FRONT planner and
# loader live in build_plan.py, which imports neither this module nor build.py.
from nerfseg.dataset_tools.build_plan import BuildConfig, LoadedScene, Plan, plan_build  # noqa: F401  (LoadedScene: re-export)

ENTRY_POINT_GROUP = "nerfseg.scene_sources"
DEMO_SOURCE_DIR = "demo_source"  # where the demo source writes its 3D-FRONT-format files, inside the benchmark root


@runtime_checkable
class SceneSource(Protocol):
    """One dataset that ``build-dataset`` can turn into benchmark scenes."""

    label: str  # benchmark.json "source"
    dataset_name: str  # the benchmark's default "name"
    location: Path | None  # named in errors such as "no room passed the room filter"

    def plan(self, out_root: Path, config: BuildConfig, workers: int = 1) -> Plan:
        """Decide the scenes (cheap: no geometry is loaded); each job's ``loader`` loads one in a worker."""
        ...


SourceFactory = Callable[..., SceneSource]


@dataclass(frozen=True)
class _Entry:
    factory: SourceFactory
    help: str


_REGISTRY: dict[str, _Entry] = {}
_entry_points_loaded = False


def register_source(name: str, factory: SourceFactory, help: str = "", replace: bool = False) -> None:
    """Register ``factory(**options) -> SceneSource`` under ``name`` (what ``--source NAME`` picks).

    Options come from the command line as strings (``--source-option KEY=VALUE``) or from Python as typed
    values, so a factory converts its own arguments. Registering a taken name is an error unless
    ``replace`` (two packages silently fighting over one name would build the wrong data).
    """
    if not name or name != name.strip():
        raise ValueError(f"scene source name {name!r} must be non-empty without surrounding spaces")
    if name in _REGISTRY and not replace:
        raise ValueError(f"scene source {name!r} is already registered (pass replace=True to override it)")
    _REGISTRY[name] = _Entry(factory, help or (inspect.getdoc(factory) or "").split("\n")[0])


def _load_entry_points() -> None:
    """Register the factories of installed packages' ``nerfseg.scene_sources`` entry points, once."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _REGISTRY:  # a built-in name wins over a plugin's
            register_source(ep.name, ep.load())


def source_names() -> list[str]:
    """Every registered source name, built-in and from entry points, sorted."""
    _load_entry_points()
    return sorted(_REGISTRY)


def source_help(name: str) -> str:
    """One line on what the source reads (for ``--help`` and error messages)."""
    _load_entry_points()
    return _REGISTRY[name].help


def get_source(name: str, **options: Any) -> SceneSource:
    """The source registered as ``name``, built with ``options``; unknown names and options say what exists."""
    _load_entry_points()
    if name not in _REGISTRY:
        near = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise InputError(None, f"unknown scene source {name!r}{hint} (registered: {', '.join(sorted(_REGISTRY))})", key="source")
    factory = _REGISTRY[name].factory
    params = inspect.signature(factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        accepted = [k for k, p in params.items() if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        for key in options:
            if key not in accepted:
                near = difflib.get_close_matches(key, accepted, n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise InputError(None, f"scene source {name!r} has no option {key!r}{hint} (options: {', '.join(accepted) or 'none'})", key="source-option")
        missing = [k for k, p in params.items() if p.default is inspect.Parameter.empty and p.kind is not inspect.Parameter.VAR_POSITIONAL and k not in options]
        if missing:
            raise InputError(None, f"scene source {name!r} needs option(s) {', '.join(missing)}", key="source-option")
    return factory(**options)


def _as_path(value: Any, option: str, required: bool = True) -> Path | None:
    if value is None or value == "":
        if required:
            raise InputError(None, f"option {option!r} is required", key=option)
        return None
    path = Path(value)
    if not path.is_dir():
        raise InputError(path, f"{option}: not a folder", key=option)
    return path


def _as_int(value: Any, option: str, minimum: int) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise InputError(None, f"option {option!r} must be an integer, got {value!r}", key=option) from None
    if n < minimum:
        raise InputError(None, f"option {option!r} must be >= {minimum}, got {n}", key=option)
    return n


# ---------------------------------------------------------------------------------------------
# Built-in sources


@dataclass
class Front3DSource:
    """3D-FRONT house JSONs + 3D-FUTURE models (+ optional textures); one scene per kept room.

    Its planner (``plan_build``) and worker-side loader (``load_front3d_job``) are in build_plan.py.
    """

    front3d_dir: Path
    future_dir: Path
    texture_dir: Path | None = None
    houses: list[str] | None = None
    label: str = "3D-FRONT"
    dataset_name: str = "nerfseg-3dfront"

    @property
    def location(self) -> Path:
        return self.front3d_dir

    def plan(self, out_root: Path, config: BuildConfig, workers: int = 1) -> Plan:
        return plan_build(self.front3d_dir, self.future_dir, self.texture_dir, out_root, config, self.houses, workers=workers)


def front3d_source(front3d: Any, future: Any, texture: Any = None, houses: Any = None) -> Front3DSource:
    """3D-FRONT: options front3d=DIR, future=DIR (3D-FUTURE-model), texture=DIR, houses=uid[,uid...]."""
    if isinstance(houses, str):
        houses = [h for h in houses.split(",") if h]
    return Front3DSource(_as_path(front3d, "front3d"), _as_path(future, "future"), _as_path(texture, "texture", required=False), list(houses) if houses else None)  # type: ignore[arg-type]


@dataclass
class DemoSource:
    """Procedural demo rooms, written as 3D-FRONT files into ``<out>/demo_source`` and built by the 3D-FRONT source.

    Going through the 3D-FRONT files (rather than handing scenes over directly) keeps the demo a test of
    the real loader; the rooms are seeded by the build's ``seed``, so one seed gives one dataset.
    """

    rooms: int
    label: str = "demo"
    dataset_name: str = "nerfseg-demo"
    location: Path | None = None

    def plan(self, out_root: Path, config: BuildConfig, workers: int = 1) -> Plan:
        from nerfseg.dataset_tools.demo import write_demo_dataset

        paths = write_demo_dataset(Path(out_root) / DEMO_SOURCE_DIR, num_rooms=self.rooms, seed=config.seed)
        self.location = paths.front3d_dir
        return Front3DSource(paths.front3d_dir, paths.future_dir, paths.texture_dir).plan(out_root, config, workers)


def demo_source(rooms: Any) -> DemoSource:
    """Procedural demo rooms in 3D-FRONT format: option rooms=N."""
    return DemoSource(_as_int(rooms, "rooms", 1))


register_source("3d-front", front3d_source)
register_source("demo", demo_source)
