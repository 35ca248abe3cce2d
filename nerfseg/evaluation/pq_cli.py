"""``nerfseg pq-compute``: panopticapi's pq_compute on the command line (fast, panopticapi semantics)."""

from __future__ import annotations

import click


@click.command("pq-compute")
@click.option("--gt-json", required=True, type=click.Path(exists=True, dir_okay=False), help="COCO panoptic GT JSON.")
@click.option("--pred-json", required=True, type=click.Path(exists=True, dir_okay=False), help="COCO panoptic prediction JSON.")
@click.option("--gt-folder", type=click.Path(file_okay=False), default=None, help="GT PNGs (default: GT JSON path without .json).")
@click.option(
    "--pred-folder", type=click.Path(file_okay=False), default=None, help="Prediction PNGs (default: prediction JSON path without .json)."
)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Processes (default: all cores).")
@click.option("--out", "--output", "output", type=click.Path(dir_okay=False), default=None, help="Also write the results dict as JSON here (--output: the old name).")
def pq_compute_command(
    gt_json: str, pred_json: str, gt_folder: str | None, pred_folder: str | None, workers: int | None, output: str | None
) -> None:
    """Panoptic quality of a COCO panoptic prediction, exactly as panopticapi computes it."""
    from nerfseg.evaluation.pq_compute import format_table, pq_compute
    from nerfseg.io import write_json_atomic

    results = pq_compute(gt_json, pred_json, gt_folder=gt_folder, pred_folder=pred_folder, workers=workers)
    click.echo(format_table(results))
    if output:
        write_json_atomic(output, {**results, "per_class": {str(k): v for k, v in results["per_class"].items()}})
