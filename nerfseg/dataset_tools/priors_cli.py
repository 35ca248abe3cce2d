"""``nerfseg priors``: (re)generate one 2D prior for every scene of a built benchmark and print its quality.

Thin: parses options, loops over scenes with a progress bar, calls :func:`nerfseg.dataset_tools.priors.write_priors`,
records the prior's settings in benchmark.json and prints :func:`nerfseg.dataset_tools.prior_quality.evaluate_prior_quality`
and the consistency report of :mod:`nerfseg.dataset_tools.prior_stats` (all user-facing output of the command lives here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from nerfseg.dataset_tools.prior_params import PRIOR_NAMES


def _scene_ids(root: Path, split: str) -> list[str]:
    from nerfseg import spec

    if split == "all":
        bench = spec.load_benchmark(root)
        ids = [sid for part in spec.SPLITS for sid in bench["splits"].get(part, [])]
        return list(dict.fromkeys(ids))
    return spec.scenes_in_split(root, split)


def _record(root: Path, prior: str, scene_ids: list[str], record: dict[str, Any]) -> None:
    """Keep benchmark.json truthful: the prior's settings and the checksums of its regenerated files."""
    from nerfseg import spec
    from nerfseg.io import sha256_file, write_json_atomic

    path = root / spec.BENCHMARK_JSON
    bench = spec.read_json(path)
    bench.setdefault("prior_params", {})[prior] = record
    files = bench.get("files")
    if isinstance(files, dict):
        for sid in scene_ids:
            prefix = f"{spec.SCENES_DIR}/{sid}/{spec.PRIORS_DIR}/{prior}/"
            for key in [k for k in files if k.startswith(prefix)]:
                del files[key]
            folder = spec.scene_dir(root, sid) / spec.PRIORS_DIR / prior
            for f in sorted(folder.rglob("*")):
                if f.is_file():
                    files[f"{spec.SCENES_DIR}/{sid}/{f.relative_to(spec.scene_dir(root, sid)).as_posix()}"] = sha256_file(f)
    write_json_atomic(path, bench)


def print_quality(report: dict[str, Any]) -> None:
    """The prior's quality vs GT as a rich table (overall row, then one row per scene)."""
    from rich.console import Console
    from rich.table import Table

    def pct(v: Any) -> str:
        return "-" if v is None else f"{100 * v:.1f}"

    table = Table(title=f"prior '{report['prior']}' vs GT on {report['split']} views ({report['protocol']}, %)")
    table.add_column("scope", no_wrap=True)
    for col in ("views", "PQ_th", "SQ_th", "RQ_th", "PQ_all", "PQ_st", "mIoU"):
        table.add_column(col, justify="right")
    o = report["overall"]
    table.add_row(f"all ({report['num_scenes']} scenes)", str(report["num_frames"]), pct(o["pq_things"]), pct(o["sq_things"]), pct(o["rq_things"]), pct(o["pq_all"]), pct(o["pq_stuff"]), pct(o["miou"]))
    for sid, s in report["per_scene"].items():
        table.add_row(sid, str(s["num_frames"]), pct(s.get("pq_things")), "", "", pct(s.get("pq_all")), pct(s.get("pq_stuff")), pct(s.get("miou")))
    Console().print(table)
    click.echo("PQ_th/SQ_th/RQ_th: things (the paper's PQ column); PQ_st: the background stuff segment; mIoU: 11 classes, mean over scenes")


def print_stats(report: dict[str, Any]) -> None:
    """The report as a rich table (one row per angle bin, then all pairs)."""
    from rich.console import Console
    from rich.table import Table

    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}"

    t = Table(title=f"cross-view consistency of prior '{report['prior']}' ({len(report['scenes'])} scenes, {report['num_objects']} objects)")
    for col in ("view angle", "pairs", "both found", "P(same class)", "chance", "kappa", "P(same found/missed)"):
        t.add_column(col, justify="right")
    for b in [*report["bins"], {**report["overall"], "all": True}]:
        name = "all" if b.get("all") else f"{b['angle_lo_deg']:.0f}-{b['angle_hi_deg']:.0f} deg"
        t.add_row(name, str(b["pairs"]), str(b["pairs_both_detected"]), f(b["p_same_class"]), f(b["chance"]), f(b["kappa"]), f(b["p_same_detection"]))
    Console().print(t)
    click.echo("P(same class): both views give the object the same class, given both found it; chance: the same if every view")
    click.echo("drew its label independently from the prior's label distribution of the true class; kappa = (P - chance) / (1 - chance).")


@click.command("priors")
@click.option("--data", "data_root", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path), help="A built benchmark (folder with benchmark.json).")
@click.option("--prior", type=click.Choice(PRIOR_NAMES), default="sim-m2f", show_default=True)
@click.option("--weights", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None, help="Local Hugging Face Mask2Former folder (mask2former prior).")
@click.option("--seed", type=int, default=None, help="Seed of the prior (default: the benchmark's build seed).")
@click.option("--split", type=click.Choice(["all", "train", "val", "test"]), default="all", show_default=True, help="Scene split to (re)generate.")
@click.option("--params", "params_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None, help="JSON file of sim-m2f parameter overrides.")
@click.option("--quality/--no-quality", default=True, show_default=True, help="Print the prior's PQ / mIoU vs GT on the test views.")
@click.option("--write/--no-write", default=True, show_default=True, help="(Re)generate the prior; --no-write only reports on the prior already on disk.")
@click.option("--stats", is_flag=True, help="Cross-view consistency report (docs/priors.md): P(same class) of two views of an object by view-angle difference.")
@click.option("--fusion", is_flag=True, help="With --stats: also the multi-view vote's mIoU gain over the prior on the test views (docs/priors.md).")
@click.option("--stats-out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Where --stats writes its JSON (default: <data>/prior_stats/<prior>.json).")
def priors(
    data_root: Path, prior: str, weights: Path | None, seed: int | None, split: str, params_file: Path | None, quality: bool, write: bool, stats: bool, fusion: bool, stats_out: Path | None
) -> None:
    """Write 2D panoptic priors (sim-m2f, sim-m2f-indep, gt or mask2former) for all views of every scene, then report
    their quality (and with --stats their cross-view consistency)."""
    from nerfseg.dataset_tools.prior_params import SIM_PRIORS, SimM2FParams, default_params
    from nerfseg.dataset_tools.prior_quality import evaluate_prior_quality
    from nerfseg import spec

    if write and prior == "mask2former" and weights is None:
        raise click.UsageError("--prior mask2former needs --weights PATH (a local Mask2Former checkpoint folder)")
    bench = spec.load_benchmark(data_root)
    if seed is None:
        seed = int(bench.get("build_settings", {}).get("seed", 0))
    params = None
    if params_file is not None:
        overrides = spec.read_json(params_file)
        if not isinstance(overrides, dict):
            raise click.UsageError(f"{params_file}: expected a JSON object of sim-m2f parameters")
        if prior not in SIM_PRIORS:
            raise click.UsageError(f"--params applies to the simulated priors {list(SIM_PRIORS)}, not {prior!r}")
        params = SimM2FParams.from_dict({**default_params(prior).to_dict(), **overrides}, params_file)
    scene_ids = _scene_ids(data_root, split)
    if not scene_ids:
        raise click.UsageError(f"no scenes in split {split!r} of {data_root}")
    if write:
        _write_all(data_root, prior, scene_ids, params, seed, weights)
    if quality:
        # the prior's own quality: held-out views of every scene it was written for (the prior does not
        # depend on the scene split; `nerfseg eval` gives the test-scene-only baseline row)
        report = evaluate_prior_quality([spec.scene_dir(data_root, s) for s in scene_ids], prior, split="test", verbose=False)
        print_quality(report)
    if stats:
        from nerfseg.dataset_tools.prior_stats import consistency_stats, fusion_gain, prior_labels
        from nerfseg.io import write_json_atomic

        dirs = [spec.scene_dir(data_root, s) for s in scene_ids]
        rep = consistency_stats(dirs, prior)
        print_stats(rep)
        if fusion:
            rep["fusion"] = fusion_gain(dirs, prior_labels(prior))
            m = rep["fusion"]["mean"]
            if m["gain"] is not None:
                click.echo(f"multi-view vote on the test views: prior mIoU {100 * m['prior_miou']:.1f} -> fused {100 * m['fused_miou']:.1f} (gain {100 * m['gain']:+.1f}, mean over {len(dirs)} scenes)")
        out = stats_out or data_root / "prior_stats" / f"{prior}.json"
        write_json_atomic(out, rep)
        click.echo(f"consistency report written to {out}")


def _write_all(data_root: Path, prior: str, scene_ids: list[str], params: Any, seed: int, weights: Path | None) -> None:
    from nerfseg.dataset_tools.prior_params import prior_parameters
    from nerfseg.dataset_tools.priors import write_priors
    from nerfseg import spec
    from nerfseg.progress import Progress

    total_frames = total_segments = 0
    with Progress(len(scene_ids), f"prior {prior}", "scene") as bar:
        for sid in scene_ids:
            rep = write_priors(spec.scene_dir(data_root, sid), prior, params=params, seed=seed, mask2former_path=weights)
            total_frames += rep.frames
            total_segments += rep.segments
            bar.advance(info=f"last {sid}")
    record = prior_parameters(prior, params, seed)
    if prior == "mask2former":
        record["params"]["weights"] = str(weights)
    _record(data_root, prior, scene_ids, record)
    click.echo(f"{data_root}: prior {prior} (seed {seed}) written for {len(scene_ids)} scenes, {total_frames} views, {total_segments} segments")
