"""``nerfseg eval``: evaluate a method's submission on a built benchmark and print a pasteable table."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from nerfseg import spec


@click.command("eval")
@click.option("--method", "method_name", required=True, help="Method name; 'gt' and 'prior2d' are built in.")
@click.option("--data", "data_root", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--predictions", type=click.Path(exists=True, path_type=Path), default=None, help="Submission folder/.zip/.tar.gz (default runs/NAME/submission).")
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True)
@click.option("--protocol", default=spec.DEFAULT_PROTOCOL, show_default=True, help="nerfseg-v1 | instance-nerf | panoptic-lifting")
@click.option("--prior", default="sim-m2f", show_default=True, help="Prior for --method prior2d when no run exists.")
@click.option("--out", "--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the full JSON report here (--json: the old name).")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path), default=None, help="Draw per-class bars and one overlay per test view here.")
@click.option("--views", "views", default="all", show_default=True, metavar="all|N|NAMES",
              help="Overlays for --plots: all test views, N evenly spaced per scene, or frame names (0011,0019 or scene/0011).")
@click.option("--workers", type=int, default=min(2, os.cpu_count() or 1), show_default=True)
@click.option("--per-class/--no-per-class", default=True, show_default=True)
def eval_command(
    method_name: str, data_root: Path, predictions: Path | None, split: str, protocol: str, prior: str, json_out: Path | None, plots_dir: Path | None, views: str, workers: int, per_class: bool
) -> None:
    """Evaluate METHOD's predictions on the test views of the split's scenes."""
    from nerfseg.evaluation.api import evaluate_submission
    from nerfseg.evaluation.plots import check_views, parse_views, plot_overlays, plot_per_class
    from nerfseg.evaluation.report import per_class_table, per_scene_table, summary_table
    from nerfseg.io import write_json_atomic

    try:
        view_choice = parse_views(views)
        if plots_dir:
            check_views(data_root, split, view_choice)  # a misspelt frame name fails before the evaluation
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--views") from None
    with tempfile.TemporaryDirectory(prefix="nerfseg-eval-") as tmp:
        path = predictions or _default_predictions(method_name, data_root, split, prior, Path(tmp))
        from nerfseg.progress import Progress

        scenes = spec.scenes_in_split(data_root, split)
        with Progress(len(scenes), f"eval {method_name}", "scene") as bar:
            report = evaluate_submission(data_root, path, split=split, protocol=protocol, workers=workers,
                                         progress=lambda sid: bar.advance(info=f"last {sid}"))
        click.echo(f"\n{method_name} on {data_root} ({split} split, protocol {report['protocol']} v{report['protocol_version']}, "
                   f"{report['counts']['num_scenes']} scenes, {report['counts']['num_frames']} views; benchmark "
                   f"{report['benchmark']['name']}, GT {report['benchmark']['fingerprint'][:12]}):\n")
        click.echo(summary_table(report, method_name))
        if per_class:
            click.echo("\n" + per_class_table(report))
            click.echo("\n" + per_scene_table(report))
        if json_out:
            write_json_atomic(json_out, report)
            click.echo(f"\nreport written to {json_out}")
        if plots_dir:
            plot_per_class(report, Path(plots_dir) / "per_class.png")
            overlays = plot_overlays(data_root, path, Path(plots_dir), split=split, views=view_choice)
            click.echo(f"plots written to {plots_dir} ({1 + len(overlays)} files)")


def _default_predictions(method_name: str, data_root: Path, split: str, prior: str, tmp: Path) -> Path:
    """runs/NAME/submission, or the built-in reference submissions (gt; prior2d without a run)."""
    from nerfseg.evaluation.reference import write_gt_submission, write_prior_submission

    if method_name == "gt":
        return write_gt_submission(data_root, tmp / "gt", split)
    run = Path("runs") / method_name / "submission"
    if run.exists():
        return run
    if method_name == "prior2d":
        return write_prior_submission(data_root, prior, tmp / "prior2d", split)
    raise click.UsageError(f"no predictions at {run}; run `nerfseg train --method {method_name} --data {data_root}` or pass --predictions")
