"""``nerfseg grids``: radiance grids (SPEC 3.2) for every scene of a benchmark, from trained radiance fields.

Thin: parses options and calls :func:`nerfseg.instance_nerf.grids.build_grids`; the main CLI maps the verb here.
"""

from __future__ import annotations

from typing import Any, Mapping

import click

from nerfseg.cli import DEVICES
from nerfseg.settings_cli import list_settings_option, set_option


def _grid_settings(opts: Mapping[str, Any]) -> tuple[Any, str]:
    """``grids --list-settings``: the grid settings of ``--preset`` (default mini)."""
    from nerfseg.instance_nerf.grids import grid_settings

    preset = opts.get("preset") or "mini"
    return grid_settings(preset), f"settings of nerfseg grids (preset {preset}):"


@click.command("grids")
@click.option("--data", "data_root", required=True, type=click.Path(exists=True, file_okay=False), help="Built benchmark root.")
@click.option("--preset", type=click.Choice(["mini", "paper"]), default="mini", show_default=True,
              help="mini: short CPU radiance training, 64-voxel grids; paper: torch-ngp schedule, 256-voxel grids (GPU).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Scenes trained in parallel (process pool).")
@click.option("--executor", type=click.Choice(["process", "ray"]), default="process", show_default=True)
@click.option("--scenes", multiple=True, help="Only these scene ids (repeatable; default: train, val and test scenes).")
@click.option("--split", "splits", multiple=True, type=click.Choice(["train", "val", "test"]),
              help="Only the scenes of these splits (repeatable; with --scenes: both). A set built only to train NeRF-RCNN needs train and val.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True, help="auto: CUDA when available, else CPU.")
@click.option("--resume/--no-resume", default=True, show_default=True, help="Skip up-to-date grids; continue interrupted radiance runs.")
@set_option("Setting KEY=VALUE (repeatable): resolution, eval_views or a radiance setting such as steps (docs/settings.md).")
@list_settings_option(_grid_settings)
def grids(data_root: str, preset: str, workers: int, executor: str, scenes: tuple[str, ...], splits: tuple[str, ...], device: str, resume: bool, overrides: dict[str, str]) -> None:
    """Train a radiance field per scene and write <data>/features/<scene>.npz (RGB + alpha over room_bbox)."""
    from nerfseg.instance_nerf.grids import build_grids, grid_settings
    from nerfseg import spec

    from nerfseg.config import typed_overrides

    parsed = typed_overrides(lambda **kw: grid_settings(preset, **kw), {"device": device, **overrides})
    settings = grid_settings(preset, **parsed)
    chosen = list(scenes) + [sid for split in splits for sid in spec.scenes_in_split(data_root, split) if sid not in scenes]
    if splits and not chosen:
        raise click.UsageError(f"no scenes in split(s) {', '.join(splits)} of {data_root}")
    records = build_grids(data_root, settings, scenes=chosen or None, workers=workers, executor=executor, resume=resume, log=click.echo)
    built = sum(not r.get("skipped") for r in records)
    click.echo(f"{len(records)} grids ({built} built, {len(records) - built} up to date) in {data_root}/features "
               f"(radiance {settings.radiance.steps} steps, longest side {settings.resolution})")
