"""Click commands of the dataset step: ``build-dataset``, ``show`` and ``priors`` (thin: parse, call one function)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import click

from nerfseg.settings_cli import list_settings_option, set_option

from nerfseg.dataset_tools.sources import DEMO_SOURCE_DIR  # noqa: F401  (kept importable from here: where --demo writes its files)


def _build_settings(opts: Mapping[str, Any]) -> tuple[Any, str]:
    """``build-dataset --list-settings``: the build settings of ``--preset`` (default mini)."""
    from nerfseg.dataset_tools.build import preset_config

    preset = opts.get("preset") or "mini"
    return preset_config(preset), f"settings of nerfseg build-dataset (preset {preset}):"


@click.command("build-dataset")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True, help="Benchmark root to write (resumable).")
@click.option("--source", "source_name", default=None, help="Scene source to build from (built in: 3d-front, demo; plugins: the nerfseg.scene_sources entry points). --front3d and --demo pick it for you.")
@click.option("--source-option", "source_options", multiple=True, metavar="KEY=VALUE", help="Option of --source (repeatable), e.g. --source demo --source-option rooms=4 (docs/architecture.md).")
@click.option("--demo", "demo", type=int, default=None, help="Generate N procedural demo rooms in 3D-FRONT format and build them (= --source demo --source-option rooms=N).")
@click.option("--front3d", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None, help="3D-FRONT folder of house JSONs.")
@click.option("--future", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None, help="3D-FUTURE-model folder.")
@click.option("--texture", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None, help="3D-FRONT-texture folder (optional).")
@click.option("--houses", multiple=True, help="Only these house JSONs (uid or file name); repeatable.")
@click.option("--preset", type=click.Choice(["mini", "paper"]), default="mini", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--test-rooms", type=int, default=None, help="With --demo: exactly this many test scenes (default: 20%% of the rooms).")
@click.option("--val-rooms", type=int, default=None, help="With --demo: exactly this many val scenes (default: 10%%, at least one from 3 rooms).")
@click.option("--views", type=int, default=None, help="Override the preset's views per scene.")
@click.option("--grid", "grid_resolution", type=int, default=None, help="Override the preset's voxel grid resolution (longest side).")
@click.option("--voxelization", type=click.Choice(["solid", "surface"]), default="solid", show_default=True)
@click.option("--prior", "priors", multiple=True, default=("sim-m2f", "gt"), show_default=True, help="2D priors to write (repeatable; 'none' for none).")
@click.option("--nerf-rpn-export", is_flag=True, help="Also write NeRF-RPN aabb/ and obb/ .npy (voxel units).")
@click.option("--workers", type=int, default=1, show_default=True, help="Process-pool workers.")
@click.option("--executor", type=click.Choice(["process", "ray"]), default="process", show_default=True)
@click.option("--ban-list", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None, help="JSON object ban list replacing the default (format of nerfseg/data/front3d_ban_list.json; see docs/front3d.md).")
@click.option("--renderer", type=click.Choice(["raycast", "cycles"]), default="raycast", show_default=True, help="RGB renderer (labels and depth always come from Embree); cycles needs the render extra, see docs/rendering.md.")
@click.option("--cycles-samples", type=int, default=None, help="Cycles: maximum samples per pixel (default 64).")
@click.option("--cycles-denoiser", type=click.Choice(["openimagedenoise", "optix", "none"]), default=None, help="Cycles: denoiser (default openimagedenoise).")
@click.option("--cycles-device", type=click.Choice(["auto", "cpu", "gpu"]), default=None, help="Cycles: render device (default auto: a GPU when Cycles finds one).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@set_option("Build setting KEY=VALUE (repeatable), e.g. --set camera.KEY=..., applied after the options above (docs/settings.md).")
@list_settings_option(_build_settings)
def build_dataset(
    out_dir: Path,
    source_name: str | None,
    source_options: tuple[str, ...],
    demo: int | None,
    front3d: Path | None,
    future: Path | None,
    texture: Path | None,
    houses: tuple[str, ...],
    preset: str,
    seed: int,
    test_rooms: int | None,
    val_rooms: int | None,
    views: int | None,
    grid_resolution: int | None,
    voxelization: str,
    priors: tuple[str, ...],
    nerf_rpn_export: bool,
    workers: int,
    executor: str,
    ban_list: Path | None,
    renderer: str,
    cycles_samples: int | None,
    cycles_denoiser: str | None,
    cycles_device: str | None,
    quiet: bool,
    overrides: dict[str, str],
) -> None:
    """Build the benchmark (images, poses, 2D and 3D GT, priors) from 3D-FRONT or the demo generator."""
    from nerfseg.dataset_tools.build import preset_config
    from nerfseg.config import apply_overrides

    source_name, options = _pick_source(source_name, source_options, demo, front3d, future, texture, houses)
    if source_name == "demo" and "rooms" in options:
        demo = int(options["rooms"]) if str(options["rooms"]).isdigit() else None  # for --test-rooms; the source checks the value
    priors = tuple(p for p in priors if p != "none")
    room_filter = None
    if ban_list is not None:
        from nerfseg.dataset_tools.front3d import RoomFilter, read_ban_rules

        room_filter = RoomFilter(ban_rules=read_ban_rules(ban_list))
    config = preset_config(preset, seed=seed, num_views=views, grid_resolution=grid_resolution, voxelization=voxelization, priors=priors, nerf_rpn_export=nerf_rpn_export, room_filter=room_filter)
    config = apply_overrides(config, overrides, flag="--set")  # typed and checked before anything is written
    if test_rooms is not None or val_rooms is not None:
        config = dataclasses.replace(config, scene_split=demo_scene_split(demo, test_rooms, val_rooms, config.scene_split))
    if renderer == "cycles":
        from nerfseg.dataset_tools.build import check_renderer

        overrides = {"samples": cycles_samples, "denoiser": cycles_denoiser, "device": cycles_device}
        config = dataclasses.replace(config, renderer="cycles", cycles=dataclasses.replace(config.cycles, **{k: v for k, v in overrides.items() if v is not None}))
        check_renderer(config)  # a missing bpy fails here, before the demo generator or any rendering
    from nerfseg.dataset_tools.build import build_from_source
    from nerfseg.dataset_tools.sources import get_source

    scene_source = get_source(source_name, **options)
    bench = build_from_source(out_dir, scene_source, config, workers=workers, executor=executor, show_progress=not quiet)
    rep = bench["report"]
    click.echo(
        f"{out_dir}: {len(bench['scenes'])} scenes ({rep['scenes_built']} built, {rep['scenes_reused']} reused) in {rep['build_seconds']:.1f} s; "
        f"splits train/val/test = {len(bench['splits']['train'])}/{len(bench['splits']['val'])}/{len(bench['splits']['test'])}; "
        f"{len(rep['dropped_rooms'])} rooms dropped; {rep['num_missing_models']} missing models"
    )


def _pick_source(
    source_name: str | None, source_options: tuple[str, ...], demo: int | None, front3d: Path | None, future: Path | None, texture: Path | None, houses: tuple[str, ...]
) -> tuple[str, dict[str, Any]]:
    """The scene source and its options from ``--source``/``--source-option`` or the friendly ``--demo``/``--front3d``."""
    options: dict[str, Any] = {}
    for item in source_options:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.UsageError(f"--source-option {item!r}: expected KEY=VALUE")
        options[key.strip()] = value
    friendly = {}
    if demo is not None:
        friendly["demo"] = {"rooms": demo}
    if front3d is not None or future is not None or texture is not None or houses:
        if front3d is not None and future is None and source_name in (None, "3d-front"):
            raise click.UsageError("--front3d needs --future (the 3D-FUTURE-model folder)")
        friendly["3d-front"] = {k: v for k, v in {"front3d": front3d, "future": future, "texture": texture, "houses": list(houses) or None}.items() if v is not None}
    if len(friendly) > 1:
        raise click.UsageError("give exactly one of --demo N or --front3d DIR (with --future DIR)")
    if source_name is None:
        if not friendly:
            raise click.UsageError("give exactly one of --demo N or --front3d DIR (with --future DIR), or --source NAME")
        source_name = next(iter(friendly))
    if friendly and source_name not in friendly:
        raise click.UsageError(f"--source {source_name} does not take {'--demo' if 'demo' in friendly else '--front3d/--future/--texture/--houses'}; use --source-option KEY=VALUE")
    return source_name, {**friendly.get(source_name, {}), **options}


def demo_scene_split(demo: int | None, test_rooms: int | None, val_rooms: int | None, default: tuple[float, float, float]) -> tuple[float, float, float]:
    """Scene-split fractions that give exactly ``test_rooms`` / ``val_rooms`` of ``demo`` rooms (the split rounds
    fraction x rooms; every demo room becomes a scene). Only with --demo: a 3D-FRONT build does not know its room
    count before the room filter runs."""
    if demo is None:
        raise click.UsageError("--test-rooms / --val-rooms need --demo N (3D-FRONT splits are fractions)")
    n = int(demo)
    test = round(default[2] * n) if test_rooms is None else int(test_rooms)
    val = round(default[1] * n) if val_rooms is None else int(val_rooms)
    if test < 1 or val < (1 if n >= 3 else 0) or test + val > n - 1:
        # the split keeps at least one train room (nerfseg.dataset_tools.build.split_scenes), so that is asked here too
        raise click.UsageError(f"--test-rooms {test} and --val-rooms {val} do not fit in --demo {n} rooms "
                               "(need test >= 1, val >= 1 from 3 rooms on, test + val < rooms: one room trains)")
    return ((n - test - val) / n, val / n, test / n)


@click.command("show")
@click.argument("scene_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), required=True, help="PNG to write.")
@click.option("--views", "num_views", type=int, default=3, show_default=True)
@click.option("--frame", "frames", multiple=True, help="Draw these views (frame names such as 0007; repeatable) instead of evenly spaced ones.")
@click.option("--split", "view_split", type=click.Choice(["all", "train", "test"]), default="all", show_default=True,
              help="Pick the evenly spaced views among all views, the training views or the held-out test views.")
def show(scene_dir: Path, out_file: Path, num_views: int, frames: tuple[str, ...], view_split: str) -> None:
    """Draw an overview of one scene: views with RGB / instance / semantic / depth and a top-down plan with boxes."""
    from nerfseg.dataset_tools.show import draw_scene_overview

    drawn = draw_scene_overview(scene_dir, out_file, num_views=num_views, frames=list(frames) or None, split=view_split)
    click.echo(f"wrote {out_file} (views {', '.join(drawn)})")


@click.command("verify-front3d")
@click.option("--front3d", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True, help="3D-FRONT folder of house JSONs.")
@click.option("--future", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True, help="3D-FUTURE-model folder (with model_info.json).")
@click.option("--texture", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None, help="3D-FRONT-texture folder (optional).")
@click.option("--parse-models", type=int, default=0, show_default=True, help="Also parse this many referenced OBJs (a seeded sample; -1 = all, about a second each).")
@click.option("--out", "--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Also write the full report (every jid) as JSON (--json: the old name).")
def verify_front3d_command(front3d: Path, future: Path, texture: Path | None, parse_models: int, json_out: Path | None) -> None:
    """Check a 3D-FRONT / 3D-FUTURE download before a long build: layout, counts, unknown pairs, unreadable or missing models."""
    from nerfseg.dataset_tools.verify_front3d import verify_front3d
    from nerfseg.io import write_json_atomic

    rep = verify_front3d(front3d, future, texture, parse_models=parse_models)
    for line in rep.lines():
        click.echo(line)
    if json_out is not None:
        write_json_atomic(json_out, rep.to_json())
    if rep.problems:
        raise SystemExit(1)
