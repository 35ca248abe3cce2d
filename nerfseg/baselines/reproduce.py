"""``nerfseg reproduce --table 1|2 --data DIR``: run every row of a results table, evaluate, print it.

Table 1 compares the methods: the 2D prior, Semantic-NeRF, DM-NeRF, Instance-NeRF with its own NeRF-RCNN,
Instance-NeRF keeping unmatched prior segments (``keep_unmatched_segments``), and the oracle row (GT
detections, marked: it uses GT). Table 2 is the paper's ablation of Instance-NeRF with its own detector: no
regularization, no refinement, full. Every row is an ordinary ``nerfseg train`` run folder
(``<out>/<row>``), so everything resumes. A re-run skips the scenes a row has finished, and the row's time
adds up over the runs (``<out>/reproduce.json``).

What is shared: ``nerfseg grids`` trains one radiance field per scene first, and every Instance-NeRF row
reuses that field and its grid (``<data>/radiance/<scene>``), as does DM-NeRF (``shared_field``: its object
codes read detached geometry, so only its head is trained, on the frozen field). The ``full`` row of Table 2
is the ``instance-nerf`` row of Table 1 (same folder). Semantic-NeRF's semantic loss shapes its geometry
(its paper's recipe), so it trains its own field.

Numbers: per scene from the evaluator (nerfseg-v1), then mean, standard deviation, min and max over the
scenes. One test room moves a row by several points, so the spread is part of the result.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nerfseg import spec
from nerfseg.errors import InputError
from nerfseg.io import write_json_atomic

logger = logging.getLogger(__name__)

STATE = "reproduce.json"
METRICS = (("miou", "mIoU"), ("pq_things", "PQ"), ("pq_scene_things", "PQ^scene"))


@dataclass(frozen=True)
class Row:
    """One table row: a method run with fixed settings in ``<out>/<folder>``."""

    name: str  # printed
    folder: str  # run folder under --out (rows with equal folders are one run)
    method: str
    settings: dict[str, Any] = field(default_factory=dict)  # what makes the row (wins over --set)
    uses_gt: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)  # the row's recipe, which --set may change


TABLES: dict[int, tuple[Row, ...]] = {
    1: (
        Row("prior2d", "prior2d", "prior2d"),
        Row("semantic-nerf", "semantic-nerf", "semantic-nerf"),
        # DM-NeRF's object codes read detached geometry, so it learns them on the shared field, frozen, with
        # Instance-NeRF's head budget (600 + 300 steps); `--set dm-nerf:shared_field=false` trains its own
        Row("dm-nerf", "dm-nerf", "dm-nerf", defaults={"shared_field": True, "steps": 900}),
        Row("instance-nerf", "instance-nerf", "instance-nerf"),
        Row("instance-nerf, unmatched segments kept", "instance-nerf-unmatched", "instance-nerf", {"keep_unmatched_segments": True}),
        Row("instance-nerf, prior background under detections unlabelled", "instance-nerf-bgunlabel", "instance-nerf",
            {"unlabel_background_under_instances": True}),
        Row("instance-nerf, oracle 3D detections (uses GT)", "instance-nerf-oracle", "instance-nerf", {"detector": "gt3d"}, uses_gt=True),
    ),
    2: (
        Row("w/o regularization", "instance-nerf-noreg", "instance-nerf", {"regularization": False}),
        Row("w/o refinement", "instance-nerf-norefine", "instance-nerf", {"refinement": False}),
        Row("full", "instance-nerf", "instance-nerf"),
    ),
}


def row_stats(report: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Mean / std / min / max over the report's scenes of each headline metric (x100), None when absent."""
    per_scene = report.get("per_scene", {})
    out: dict[str, dict[str, float | None]] = {}
    for key, _ in METRICS:
        vals = [float(s[key]) * 100 for s in per_scene.values() if s.get(key) is not None and np.isfinite(float(s[key]))]
        if vals:
            a = np.asarray(vals)
            out[key] = {"mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()), "max": float(a.max()), "scenes": len(vals)}
        else:
            out[key] = {"mean": None, "std": None, "min": None, "max": None, "scenes": 0}
    return out


def format_table(table: int, rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: mean ± std (min-max) per metric over the scenes, and the row's time."""
    head = "| Row | " + " | ".join(t for _, t in METRICS) + " | time |"
    lines = [head, "|---|" + "---:|" * (len(METRICS) + 1)]
    for r in rows:
        cells = []
        for key, _ in METRICS:
            s = r["stats"].get(key, {})
            cells.append("-" if s.get("mean") is None else f"{s['mean']:.1f} ± {s['std']:.1f} ({s['min']:.1f}-{s['max']:.1f})")
        lines.append(f"| {r['name']} | " + " | ".join(cells) + f" | {r['seconds'] / 60:.1f} min |")
    return f"Table {table}\n\n" + "\n".join(lines)


def _read_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"rows": {}}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"unreadable reproduce state ({exc}); delete it to start the timing over") from None


def reproduce_table(
    table: int,
    data_root: str | Path,
    out_dir: str | Path,
    split: str = "test",
    preset: str = "mini",
    prior: str = "sim-m2f",
    rows: Sequence[str] | None = None,
    method_overrides: dict[str, dict[str, Any]] | None = None,
    grid_overrides: dict[str, Any] | None = None,
    workers: int = 1,
    resume: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) every row of ``table`` on ``split``, evaluate each, write ``<out>/table<N>.md`` and
    ``<out>/table<N>.json``; returns the result. ``rows`` picks rows by folder name; ``method_overrides``:
    method name -> settings applied to all its rows (over a row's defaults; the settings that make a row win); ``grid_overrides``: the
    shared grids' settings (as ``nerfseg grids --set``); ``workers``: scenes fitted at once, by the grids and
    by every row (``log`` must then be picklable, e.g. ``click.echo``). ``log`` gets the progress lines and the table (the
    CLI echoes them; default: this module's logger)."""
    log = log or logger.info
    from nerfseg.evaluation.api import evaluate_submission
    from nerfseg.methods import run_method

    if table not in TABLES:
        raise InputError(None, f"unknown table {table}; expected one of {sorted(TABLES)}")
    data_root, out_dir = Path(data_root), Path(out_dir)
    chosen = [r for r in TABLES[table] if rows is None or r.folder in rows]
    if rows is not None:
        unknown = sorted(set(rows) - {r.folder for r in TABLES[table]})
        if unknown:
            raise InputError(None, f"unknown rows {unknown} for table {table}; rows: {[r.folder for r in TABLES[table]]}")
    scenes = spec.scenes_in_split(data_root, split)
    if not scenes:
        raise InputError(data_root / spec.BENCHMARK_JSON, f"split {split!r} has no scenes")
    from nerfseg.methods import get_method

    def settings_of(row: Row) -> dict[str, Any]:
        return {**row.defaults, **(method_overrides or {}).get(row.method, {}), **row.settings}

    for row in chosen:  # every row's settings resolve (keys, types, input files) before the first row trains
        get_method(row.method).make_config(preset, **settings_of(row))
    needs_grids = any(r.method == "instance-nerf" or settings_of(r).get("shared_field") for r in chosen)
    if needs_grids:
        from nerfseg.instance_nerf.grids import grid_settings

        grid_settings(preset, **(grid_overrides or {}))
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / STATE
    state = _read_state(state_path)

    if needs_grids:
        from nerfseg.instance_nerf.grids import build_grids, grid_settings

        settings = grid_settings(preset, **(grid_overrides or {}))
        t0 = time.perf_counter()
        records = build_grids(data_root, settings, scenes=scenes, workers=workers, resume=resume, log=log)
        state["grids_seconds"] = float(state.get("grids_seconds", 0.0)) + time.perf_counter() - t0
        # what the fields cost whoever built them (an earlier `nerfseg grids` run, or this one), from grid.json
        state["grids_recorded_seconds"] = float(sum(float(r.get("wall_train_seconds") or 0.0) + float(r.get("export_seconds") or 0.0) for r in records))
        write_json_atomic(state_path, state)

    results = []
    for row in chosen:
        settings_ = settings_of(row)
        rec = state["rows"].setdefault(row.folder, {"seconds": 0.0})
        log(f"== {row.name} ({row.method}, {settings_ or 'preset settings'}) -> {out_dir / row.folder}")
        t0 = time.perf_counter()
        submission = run_method(row.method, data_root, out_dir / row.folder, split=split, prior=prior, preset=preset, resume=resume, overrides=settings_,
                                log=log, workers=workers)
        rec["seconds"] = float(rec["seconds"]) + time.perf_counter() - t0
        rec.update(method=row.method, settings=settings_, finished=True)
        write_json_atomic(state_path, state)
        report = evaluate_submission(data_root, submission, split=split)
        results.append({"name": row.name, "folder": row.folder, "method": row.method, "settings": settings_, "uses_gt": row.uses_gt,
                        "seconds": rec["seconds"], "stats": row_stats(report),
                        "per_scene": {sid: {k: s.get(k) for k, _ in METRICS} for sid, s in report.get("per_scene", {}).items()}})
    out = {"table": table, "data": str(data_root), "split": split, "scenes": scenes, "preset": preset, "prior": prior,
           "grids_seconds": state.get("grids_seconds"), "grids_recorded_seconds": state.get("grids_recorded_seconds"), "rows": results}
    text = format_table(table, results)
    if state.get("grids_seconds") is not None:
        recorded = state.get("grids_recorded_seconds", state["grids_seconds"])
        text += (f"\n\nShared radiance fields and grids (`nerfseg grids`, reused by Instance-NeRF and DM-NeRF): {recorded / 60:.1f} min"
                 f" as their grid.json records ({state['grids_seconds'] / 60:.1f} min of it in these reproduce runs).")
    (out_dir / f"table{table}.md").write_text(text + "\n")
    write_json_atomic(out_dir / f"table{table}.json", out)
    log("\n" + text)
    return out


# ------------------------------------------------------------------------------------------------ command
def _command():
    import click

    @click.command("reproduce")
    @click.option("--table", type=click.Choice(["1", "2"]), required=True, help="1: methods; 2: Instance-NeRF ablation.")
    @click.option("--data", "data_root", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True, help="Built benchmark root.")
    @click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/reproduce"), show_default=True,
                  help="Run folders of the rows (one per row) and the table files.")
    @click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True)
    @click.option("--preset", type=click.Choice(["mini", "paper"]), default="mini", show_default=True)
    @click.option("--prior", default="sim-m2f", show_default=True)
    @click.option("--row", "rows", multiple=True, help="Only these rows (their folder names; repeatable).")
    @click.option("--rcnn-checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                  help="NeRF-RCNN checkpoint of the Instance-NeRF rows (default: the method's own default).")
    @click.option("--set", "sets", multiple=True, help="METHOD:KEY=VALUE for every row of METHOD (repeatable), e.g. dm-nerf:steps=500.")
    @click.option("--grid-set", "grid_sets", multiple=True, help="KEY=VALUE of the shared grids (as `nerfseg grids --set`).")
    @click.option("--workers", type=int, default=1, show_default=True, help="Scenes fitted in parallel (process pool): the shared grids and every row.")
    @click.option("--no-resume", is_flag=True, help="Start every row over.")
    def reproduce(table: str, data_root: Path, out_dir: Path, split: str, preset: str, prior: str, rows: tuple[str, ...], rcnn_checkpoint: Path | None,
                  sets: tuple[str, ...], grid_sets: tuple[str, ...], workers: int, no_resume: bool) -> None:
        """Run every row of a results table (resumable, each row timed), evaluate, print mean ± std over the scenes."""
        from nerfseg.instance_nerf.grids import grid_settings
        from nerfseg.config import parse_assignments, typed_overrides
        from nerfseg.methods import get_method

        overrides: dict[str, dict[str, Any]] = {}
        for key, value in parse_assignments(sets, "--set").items():
            method, sep, name = key.partition(":")
            if not sep or not name:
                raise click.BadParameter(f"expected METHOD:KEY=VALUE, got {key!r}", param_hint="--set")
            overrides.setdefault(method, {})[name] = value
        for method, values in overrides.items():  # typed and checked per method before any row runs
            cls = get_method(method)
            overrides[method] = typed_overrides(lambda cls=cls, **kw: cls.make_config(preset, **kw), values, flag=f"--set {method}:")
        if rcnn_checkpoint is not None:
            overrides.setdefault("instance-nerf", {})["rcnn_checkpoint"] = str(rcnn_checkpoint)
        grid_overrides = typed_overrides(lambda **kw: grid_settings(preset, **kw), parse_assignments(grid_sets, "--grid-set"), flag="--grid-set")
        reproduce_table(int(table), data_root, out_dir, split=split, preset=preset, prior=prior, rows=list(rows) or None,
                        method_overrides=overrides, grid_overrides=grid_overrides, workers=workers,
                        resume=not no_resume, log=click.echo)

    return reproduce


reproduce = _command()
