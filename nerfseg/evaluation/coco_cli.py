"""``nerfseg export-coco``: the GT of a scene split as a COCO instances JSON (RLE masks) for 2D tooling."""

from __future__ import annotations

from pathlib import Path

import click

from nerfseg import spec


@click.command("export-coco")
@click.option("--data", "data_root", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True, help="Built benchmark root.")
@click.option("--split", type=click.Choice(list(spec.SPLITS)), required=True, help="Scene split to export.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Output JSON (default ./coco_instances_SPLIT.json; the benchmark folder is left untouched).")
@click.option(
    "--views",
    type=click.Choice(["auto", "train", "test", "all"]),
    default="auto",
    show_default=True,
    help="auto: every view of train scenes, the test views (the evaluated ones) of val/test scenes.",
)
def export_coco_command(data_root: Path, split: str, out: Path | None, views: str) -> None:
    """Write the GT instances of SPLIT's views as COCO instances JSON (images, 10 thing categories, RLE masks)."""
    from nerfseg.evaluation.coco_instances import export_coco

    out = out or Path(f"coco_instances_{split}.json")
    data = export_coco(data_root, split, out, views=views)
    click.echo(
        f"{out}: {len(data['images'])} images, {len(data['annotations'])} instances, {len(data['categories'])} categories "
        f"({split} scenes, {'+'.join(data['info']['views'])} views; image file names are relative to {data_root})"
    )
