"""``nerfseg train-rcnn``: train NeRF-RCNN on a built benchmark and print its validation mask AP.

Thin: parses options and calls ``nerfseg.instance_nerf.rcnn.train.train_rcnn``; the main CLI maps the verb here.
"""

from __future__ import annotations

from typing import Any, Mapping

import click

from nerfseg.cli import DEVICES
from nerfseg.settings_cli import list_settings_option, set_option


def _rcnn_settings(opts: Mapping[str, Any]) -> tuple[Any, str]:
    """``train-rcnn --list-settings``: the NeRF-RCNN settings of ``--preset`` (default mini)."""
    from nerfseg.instance_nerf.rcnn.config import preset_config

    preset = opts.get("preset") or "mini"
    return preset_config(preset), f"settings of NeRF-RCNN (preset {preset}):"


@click.command("train-rcnn")
@click.option("--data", "data_root", required=True, type=click.Path(exists=True, file_okay=False), help="Built benchmark root (with features/ and scenes/).")
@click.option("--preset", type=click.Choice(["mini", "paper"]), default="mini", show_default=True, help="mini: CPU minutes; paper: the reference scale (GPU).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="runs/rcnn", show_default=True, help="Run folder (config, log, checkpoints).")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True, help="auto: CUDA when available, else CPU.")
@click.option("--resume/--no-resume", default=True, show_default=True, help="Continue from the run folder's last checkpoint.")
@click.option("--iterations", type=click.IntRange(min=1), default=None, help="Override the preset's number of training steps.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@set_option("Setting KEY=VALUE (repeatable), e.g. --set lr=5e-4; --iterations N is --set iterations=N (docs/settings.md).")
@list_settings_option(_rcnn_settings)
def train_rcnn(data_root: str, preset: str, out_dir: str, device: str, resume: bool, iterations: int | None, progress: bool, overrides: dict[str, str]) -> None:
    """Train NeRF-RCNN (3D boxes + masks on the radiance grids) and print val mask AP25 / AP50."""
    from nerfseg.instance_nerf.rcnn.train import train_rcnn as run

    from nerfseg.instance_nerf.rcnn.config import preset_config
    from nerfseg.config import settings_flag, typed_overrides

    # checked before the data is read: a bad key, type or value is one line, not a traceback mid-training
    with settings_flag("--set"):
        parsed = typed_overrides(lambda **kw: preset_config(preset, **kw), overrides)
        if iterations is not None:
            parsed["iterations"] = iterations
        preset_config(preset, **parsed)  # the config's own checks (base_stride, list lengths) on these values
    summary = run(data_root, out_dir, preset=preset, device=device, resume=resume, overrides=parsed or None, progress=progress)

    def fmt(v: object) -> str:
        return "n/a" if v is None else f"{float(v):.4f}"  # type: ignore[arg-type]

    click.echo(f"iterations: {summary['iterations']}  ({summary['train_scenes']} train / {summary['val_scenes']} val scenes)")
    click.echo(f"val mask AP25: {fmt(summary['ap25'])}  AP50: {fmt(summary['ap50'])}  (best AP25 {fmt(summary['best_ap25'])} at {summary['best_iteration']})")
    if summary.get("mask_threshold") is not None:
        cal = summary["mask_threshold_calibration"]
        tried = ", ".join(f"{c:g}: {fmt(a)}" for c, a in zip(cal["candidates"], cal["ap25"]))
        click.echo(f"mask threshold {summary['mask_threshold']:g}, chosen on val (AP25 by threshold: {tried})")
    click.echo(f"checkpoints: {summary['checkpoint']}  {summary['best_checkpoint']}")
