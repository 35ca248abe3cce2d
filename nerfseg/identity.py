"""Benchmark identity: which ground truth a number was measured against.

Why: two benchmarks built with other seeds, presets or source data share a name ("nerfseg-demo") and a
layout, but their scores are not comparable. A result, a stored submission and a trained run folder must
therefore say *which* ground truth they belong to. The identity is

- ``fingerprint``: sha256 over the evaluation ground truth of the val and test scenes (the scene split
  itself, each scene's ``transforms.json`` (which views are test views), ``panoptic.json``, ``gt3d.h5`` and
  every GT map under ``panoptic/``, ``semantic/`` and ``instance/``), each file by its sha256. Images, depth
  and the 2D priors are inputs of the methods, not ground truth, and do not take part: regenerating a prior
  with ``nerfseg priors`` keeps the benchmark's identity.
- ``name``: a human label shown on the leaderboard page, e.g. ``nerfseg-demo (6 scenes, mini, seed 0)``.

``nerfseg build-dataset`` stores both in ``benchmark.json`` under ``"identity"``. A benchmark built before
that has none: :func:`benchmark_identity` then computes it from the files (and says so), and
``nerfseg benchmark-id --data ROOT --write`` stores it once.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from nerfseg import spec
from nerfseg.errors import InputError
from nerfseg.io import sha256_file, write_json_atomic

IDENTITY_KEY = "identity"
#: the scene splits a submission can be evaluated on (their GT is what a score is measured against)
EVALUATED_SPLITS: tuple[str, ...] = ("val", "test")
GT_FILES: tuple[str, ...] = (spec.TRANSFORMS_JSON, spec.PANOPTIC_JSON, spec.GT3D_H5)
GT_DIRS: tuple[str, ...] = (spec.PANOPTIC_DIR, spec.SEMANTIC_DIR, spec.INSTANCE_DIR)
#: bump when the recipe above changes, so old and new fingerprints can never be confused
FINGERPRINT_RECIPE = "nerfseg-gt-v1"
SHORT = 12  # hex digits shown to people

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchmarkIdentity:
    """A benchmark's name and GT fingerprint; ``stored`` tells whether benchmark.json held it."""

    name: str
    fingerprint: str
    stored: bool = True

    @property
    def short(self) -> str:
        return self.fingerprint[:SHORT]

    @property
    def label(self) -> str:
        """What a page shows: the name and enough of the fingerprint to tell two builds apart."""
        return f"{self.name} [GT {self.short}]"

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "fingerprint": self.fingerprint}


def _gt_paths(scene: Path) -> list[Path]:
    """The GT files of one scene, in a fixed order; a missing required file is an error naming it."""
    paths = []
    for name in GT_FILES:
        p = scene / name
        if not p.is_file():
            raise InputError(p, "ground-truth file missing: the benchmark is incomplete (rebuild the scene)")
        paths.append(p)
    for folder in GT_DIRS:
        d = scene / folder
        if not d.is_dir():
            raise InputError(d, "ground-truth folder missing: the benchmark is incomplete (rebuild the scene)")
        paths += sorted(p for p in d.rglob("*") if p.is_file())
    return paths


def gt_fingerprint(root: str | Path, bench: dict[str, Any] | None = None) -> tuple[str, int]:
    """sha256 (hex) of the evaluated splits' ground truth of the benchmark at ``root``, and the file count.

    Hashes the files on disk (not the checksums benchmark.json lists), so a GT file edited after the
    build changes the fingerprint.
    """
    root = Path(root)
    bench = bench if bench is not None else spec.load_benchmark(root)
    splits = bench.get("splits", {})
    h = hashlib.sha256(FINGERPRINT_RECIPE.encode() + b"\n")
    count = 0
    for split in EVALUATED_SPLITS:
        ids = sorted(str(s) for s in splits.get(split, []) or [])
        h.update(f"split {split} {len(ids)}\n".encode())
        for sid in ids:
            scene = spec.scene_dir(root, sid)
            for p in _gt_paths(scene):
                rel = p.relative_to(scene).as_posix()
                h.update(f"{split}\t{sid}\t{rel}\t{sha256_file(p)}\n".encode("utf-8", "surrogateescape"))
                count += 1
    logger.debug("GT fingerprint of %s: %d files of the %s splits", root, count, "/".join(EVALUATED_SPLITS))
    return h.hexdigest(), count


def default_name(bench: dict[str, Any]) -> str:
    """A readable name from benchmark.json: its name, scene count, build preset and seed."""
    settings = bench.get("build_settings") or {}
    n = sum(len(v or []) for v in (bench.get("splits") or {}).values())
    parts = [f"{n} scenes"]
    if settings.get("preset"):
        parts.append(str(settings["preset"]))
    if settings.get("seed") is not None:
        parts.append(f"seed {settings['seed']}")
    return f"{bench.get('name') or 'nerfseg'} ({', '.join(parts)})"


def identity_record(root: str | Path, bench: dict[str, Any] | None = None, name: str | None = None) -> dict[str, Any]:
    """The ``"identity"`` entry of benchmark.json for the files now at ``root``.

    ``nerfseg build-dataset`` calls it after the scenes are written (``bench`` is the benchmark.json about
    to be written: its splits are the ones fingerprinted).
    """
    root = Path(root)
    bench = bench if bench is not None else spec.load_benchmark(root)
    digest, count = gt_fingerprint(root, bench)
    return {
        "name": name or default_name(bench),
        "gt_fingerprint": digest,
        "recipe": FINGERPRINT_RECIPE,
        "splits": list(EVALUATED_SPLITS),
        "num_gt_files": count,
    }


def benchmark_identity(root: str | Path, verify: bool = False) -> BenchmarkIdentity:
    """The identity of the benchmark at ``root``: stored in benchmark.json, else computed from the files.

    ``verify`` recomputes the fingerprint and raises :class:`InputError` when the stored one no longer
    matches the files (the GT was edited or partly rebuilt after the build).
    """
    root = Path(root)
    bench = spec.load_benchmark(root)
    rec = bench.get(IDENTITY_KEY)
    if isinstance(rec, dict) and isinstance(rec.get("gt_fingerprint"), str) and rec.get("recipe") == FINGERPRINT_RECIPE:
        ident = BenchmarkIdentity(str(rec.get("name") or default_name(bench)), rec["gt_fingerprint"], stored=True)
        if verify:
            actual, _ = gt_fingerprint(root, bench)
            if actual != ident.fingerprint:
                raise InputError(
                    root / spec.BENCHMARK_JSON,
                    f"stored GT fingerprint {ident.short} does not match the files ({actual[:SHORT]}): the ground truth "
                    "changed after the build; rebuild, or run `nerfseg benchmark-id --write` if the change is intended",
                    key=IDENTITY_KEY,
                )
        return ident
    digest, _ = gt_fingerprint(root, bench)
    return BenchmarkIdentity(default_name(bench), digest, stored=False)


def write_identity(root: str | Path, name: str | None = None) -> BenchmarkIdentity:
    """Compute the identity of an existing benchmark and store it in its benchmark.json (atomically)."""
    root = Path(root)
    bench = spec.load_benchmark(root)
    old = bench.get(IDENTITY_KEY) if isinstance(bench.get(IDENTITY_KEY), dict) else {}
    bench[IDENTITY_KEY] = identity_record(root, bench, name or old.get("name"))
    write_json_atomic(root / spec.BENCHMARK_JSON, bench)
    rec = bench[IDENTITY_KEY]
    return BenchmarkIdentity(rec["name"], rec["gt_fingerprint"], stored=True)


@click.command("benchmark-id")
@click.option("--data", "data_root", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Built benchmark root.")
@click.option("--write", is_flag=True, help="Store the identity in benchmark.json (for a benchmark built without it).")
@click.option("--check", is_flag=True, help="Recompute the fingerprint and fail if the stored one differs.")
@click.option("--name", default=None, help="Human name to store with --write (default: from benchmark.json).")
def benchmark_id(data_root: Path, write: bool, check: bool, name: str | None) -> None:
    """Print the benchmark's name and GT fingerprint (what every result on it is labelled with)."""
    if write:
        ident = write_identity(data_root, name)
        click.echo(f"stored in {data_root / spec.BENCHMARK_JSON}")
    else:
        ident = benchmark_identity(data_root, verify=check)
        if not ident.stored:
            logger.warning("%s has no stored identity (computed from the files); store it with --write",
                           data_root / spec.BENCHMARK_JSON)
    click.echo(f"name: {ident.name}")
    click.echo(f"gt_fingerprint: {ident.fingerprint}")
