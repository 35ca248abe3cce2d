"""``nerfseg train --method NAME``: fit a method on each scene and write its submission."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import click

from nerfseg.settings_cli import list_settings_option, set_option


def _method_settings(opts: Mapping[str, Any]) -> tuple[Any, str]:
    """``train --list-settings``: the settings of ``--method`` at ``--preset`` (default mini)."""
    from nerfseg.methods import get_method

    name = opts.get("method_name")
    if not name:
        raise click.UsageError("--list-settings needs --method NAME (the settings are the method's)")
    preset = opts.get("preset") or "mini"
    return get_method(name).make_config(preset), f"settings of {name} (preset {preset}):"


@click.command("train")
@click.option("--method", "method_name", required=True, help="Method: prior2d, semantic-nerf, dm-nerf, instance-nerf, an installed plug-in's name, or my_pkg.my_module:MyMethod (docs/write-a-method.md).")
@click.option("--data", "data_root", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True, help="Built benchmark root.")
@click.option("--scenes", multiple=True, help="Only these scenes (repeatable); default: every scene of --split.")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True)
@click.option("--prior", default="sim-m2f", show_default=True, help="2D prior to learn from.")
@click.option("--preset", type=click.Choice(["mini", "paper"]), default="mini", show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None, help="Run folder (default runs/NAME).")
@click.option("--no-resume", is_flag=True, help="Retrain scenes that already have predictions.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Scenes trained in parallel (each gets cores/workers threads).")
@click.option("--executor", type=click.Choice(["process", "ray"]), default="process", show_default=True, help="Where the scenes run: a local process pool or a Ray cluster.")
@set_option("Setting KEY=VALUE (repeatable), e.g. --set steps=500; typed and checked before any work (docs/settings.md).")
@list_settings_option(_method_settings)
@click.option("--on-change", type=click.Choice(["refuse", "retrain"]), default="refuse", show_default=True,
              help="When the run folder holds scenes made with other inputs (prior, preset, --set, benchmark, code "
                   "version): refuse with the differences, or retrain those scenes here.")
def train(method_name: str, data_root: Path, scenes: tuple[str, ...], split: str, prior: str, preset: str, out_dir: Path | None, no_resume: bool,
          workers: int, executor: str, overrides: dict[str, str], on_change: str) -> None:
    """Train METHOD on the scenes and write runs/NAME/submission (format: docs/contract.md section 4)."""
    from nerfseg.config import settings_flag, typed_overrides
    from nerfseg.methods import get_method, method_run_name, run_method

    cls = get_method(method_name)
    run_name = method_run_name(method_name, cls)  # an unknown method fails here, before any work
    # every --set key, type and input path is checked here, before any folder is made or scene loaded; keys the
    # defaults lack go to make_config, so a plug-in's own message about them is what the user reads
    parsed = typed_overrides(lambda **kw: cls.make_config(preset, **kw), overrides, unknown="keep")
    with settings_flag("--set"):
        cls.make_config(preset, **parsed)  # unknown keys, and the method's own checks of the combination
    out = out_dir or Path("runs") / run_name
    submission = run_method(method_name, data_root, out, scenes=list(scenes) or None, split=split, prior=prior, preset=preset, resume=not no_resume, overrides=parsed, log=click.echo, on_change=on_change, workers=workers, executor=executor)
    hint = eval_hint(run_name, data_root, split, submission)
    click.echo(f"submission written to {submission}" + (f"; evaluate with: {hint}" if hint else
                                                          " (the train split has no evaluation; use --split val or test)"))


def eval_hint(run_name: str, data_root: Path, split: str, submission: Path) -> str | None:
    """The ``nerfseg eval`` command that evaluates what ``train`` just wrote, runnable as printed from the same
    folder: the split it was trained for, and ``--predictions`` unless the run is where ``eval --method``
    looks by itself (runs/NAME/submission). None for the train split, which eval does not score."""
    import shlex

    if split not in ("val", "test"):
        return None
    args = ["nerfseg", "eval", "--method", run_name, "--data", str(data_root)]
    if split != "test":
        args += ["--split", split]
    if Path(submission).resolve() != (Path("runs") / run_name / "submission").resolve():
        args += ["--predictions", str(submission)]
    return shlex.join(args)


