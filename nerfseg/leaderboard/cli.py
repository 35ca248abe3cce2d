"""``nerfseg submit`` and ``nerfseg leaderboard show | add-reported | add-team | serve | worker``.

Thin: each command parses its options and calls the store, the table renderers, the worker or the server.
The web stack (fastapi, uvicorn) is imported only by ``serve``, so the other commands work without it.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click

from nerfseg.evaluation.protocols import PROTOCOLS
from nerfseg.leaderboard.evaluate import load_evaluator, rejection_reasons, validated_meta
from nerfseg.leaderboard.files import content_hash_and_size
from nerfseg.leaderboard.store import UNRECORDED, ResultsStore, StoreError
from nerfseg.leaderboard.tables import FORMATS, benchmark_label, build_per_class_table, build_table, format_value, render
from nerfseg.spec import DEFAULT_PROTOCOL

DEFAULT_DB = "leaderboard.db"

db_option = click.option("--db", default=DEFAULT_DB, envvar="NERFSEG_DB", show_default=True,
                         help="SQLite file, or an SQLAlchemy URL (e.g. postgresql+psycopg://...). Env: NERFSEG_DB.")
protocol_option = click.option("--protocol", default=DEFAULT_PROTOCOL, show_default=True, help="Evaluation protocol.",
                                type=click.Choice(sorted(PROTOCOLS)))  # a typo must not print an empty table
evaluator_option = click.option("--evaluator", default=None, metavar="MODULE:FUNC",
                                help="Evaluator import path (module:function or file.py:function); "
                                     "default nerfseg.evaluation.api:evaluate_submission.")


def _open_store(db: str, submissions_dir: Path | None = None, must_exist: bool = False,
                read_only: bool = False) -> ResultsStore:
    """The store; ``read_only`` for commands that only read (no migration, no write lock, a read-only file is fine)."""
    if (must_exist or read_only) and "://" not in db and not Path(db).is_file():
        raise click.ClickException(f"no leaderboard database at {db} (give --db or set NERFSEG_DB)")
    try:
        return ResultsStore(db, submissions_dir, read_only=read_only)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


# ---------------------------------------------------------------------------------------------
# nerfseg submit


@click.command("submit")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--method", required=True, help="Method name shown on the leaderboard.")
@click.option("--data", "data_root", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The benchmark folder (with benchmark.json and the ground truth).")
@db_option
@click.option("--split", default="test", show_default=True, type=click.Choice(["test", "val"]))
@protocol_option
@click.option("--team", default="local", show_default=True, help="Team the submission is recorded under.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1), help="Evaluation processes.")
@evaluator_option
def submit(path: Path, method: str, data_root: Path, db: str, split: str, protocol: str, team: str, workers: int,
           evaluator: str | None) -> None:
    """Validate, evaluate and record a submission (folder, .zip or .tar.gz) in one step.

    A submission that fails validation is recorded as rejected with its reasons (and the command exits 1);
    nothing is recorded half-way. The same content submitted again is recognised, not recorded twice.
    """
    from nerfseg.identity import benchmark_identity

    bench = benchmark_identity(data_root)  # the same files against another benchmark are another result
    store = _open_store(db)
    try:
        team_rec = store.ensure_team(team)
        digest, size = content_hash_and_size(path)
        existing = store.find_duplicate(team_rec.id, split, protocol, digest, bench.fingerprint)
        if existing is not None:
            click.echo(f"already recorded: submission #{existing.id} ({existing.status}, method {existing.method}); "
                       "nothing to do")
            return
        fn = load_evaluator(evaluator)
        started = time.time()
        report = reasons = exc = None
        try:
            report = fn(data_root, path, split=split, protocol=protocol, workers=workers)
        except Exception as err:  # noqa: BLE001 - sorted into submitter problems and internal errors below
            exc = err
            reasons = rejection_reasons(err)
            if reasons is None:
                raise
        meta = validated_meta(report, exc)  # what validation read, never a second read of the archive
        sub, created = store.record_finished(
            team_id=team_rec.id, method=method, content_hash=digest, size_bytes=size, filename=path.name,
            stored_path=str(path.resolve()), split=split, protocol=protocol, report=report, reasons=reasons,
            meta=meta, started_at=started, benchmark=bench.fingerprint, benchmark_name=bench.name,
        )
    finally:
        store.close()
    if not created:
        click.echo(f"already recorded meanwhile: submission #{sub.id} ({sub.status})")
        return
    if sub.status == "rejected":
        click.echo(f"rejected: submission #{sub.id} ({len(sub.reasons)} problem(s)):", err=True)
        for r in sub.reasons:
            click.echo(f"  - {r}", err=True)
        sys.exit(1)
    summary = (report or {}).get("summary", {})
    shown = ", ".join(f"{label} {format_value(summary.get(key))}" for key, label in
                      (("miou", "mIoU"), ("pq_things", "PQ"), ("sq_things", "SQ"), ("rq_things", "RQ"),
                       ("pq_scene_things", "PQ^scene"), ("binary_acc", "binary acc."), ("binary_miou", "binary mIoU")))
    click.echo(f"evaluated: submission #{sub.id}, {method} ({protocol}, {split}, benchmark {bench.label}): {shown}")


# ---------------------------------------------------------------------------------------------
# nerfseg leaderboard ...


@click.group("leaderboard")
def leaderboard() -> None:
    """The results table: show it, add numbers from papers, register teams, serve it on the web."""


@leaderboard.command("show")
@db_option
@click.option("--format", "fmt", default="md", show_default=True, type=click.Choice(FORMATS))
@protocol_option
@click.option("--split", default="test", show_default=True)
@click.option("--per-class", is_flag=True, help="Add per-class IoU and PQ tables.")
@click.option("--out", "--output", "-o", "output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to a file (atomically) instead of stdout (--output, -o: the old names).")
@click.option("--benchmark", default=None,
              help=f"Which benchmark's results: a GT fingerprint (or a unique prefix), its name, or '{UNRECORDED}' for "
                   "results recorded before benchmark identities. Default: the most recently used one.")
@click.option("--data", "data_root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Show the results of the benchmark in this folder (instead of --benchmark).")
def show(db: str, fmt: str, protocol: str, split: str, per_class: bool, output: Path | None, benchmark: str | None,
         data_root: Path | None) -> None:
    """Print the leaderboard of one benchmark in the paper's Table 1 layout (x100, best in bold, sorted by PQ).

    Read-only: it never migrates or locks the database, and works on a file it cannot write."""
    if data_root is not None:
        from nerfseg.identity import benchmark_identity

        benchmark = benchmark_identity(data_root).fingerprint
    with _open_store(db, read_only=True) as store:
        try:
            chosen = store.resolve_benchmark(benchmark, protocol, split)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from exc
        entries = store.leaderboard(protocol, split, per_class=per_class, benchmark=chosen or UNRECORDED)
        known = store.benchmarks()
    label = None
    for b in known:
        if (b.fingerprint or UNRECORDED) == chosen:
            label = benchmark_label(b.name, b.fingerprint)
    if label is None and chosen not in (None, UNRECORDED):
        label = benchmark_label(None, chosen)
    others = [b for b in known if (b.fingerprint or UNRECORDED) != chosen]
    if others:
        click.echo("other benchmarks in this database (--benchmark): "
                   + "; ".join(f"{b.fingerprint[:12] if b.fingerprint else UNRECORDED} = {b.label}" for b in others),
                   err=True)
    models = [build_table(entries, protocol, split, label)]
    if per_class:
        models += [build_per_class_table(entries, protocol, split, m, label) for m in ("iou", "pq")]
    text = render(models, fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        from nerfseg.io import write_bytes_atomic

        write_bytes_atomic(output, text.encode("utf-8"))
        click.echo(f"wrote {output}")


def _percent(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is None:
        return None
    if not 0.0 <= value <= 100.0:
        raise click.BadParameter("a percentage in [0, 100] (as printed in the paper)")
    if 0.0 < value < 1.0:  # 0.316 is almost surely the fraction of 31.6; a sub-1% paper number is implausible
        raise click.BadParameter(f"{value} looks like a fraction; give the percentage as printed in the paper ({100 * value:.1f})")
    return value


@leaderboard.command("add-reported")
@db_option
@click.option("--method", required=True)
@click.option("--source", required=True, help='Where the numbers come from, e.g. "Instance-NeRF paper, Table 1".')
@protocol_option
@click.option("--split", default="test", show_default=True)
@click.option("--miou", type=float, callback=_percent, help="Percent, as in the paper (43.0).")
@click.option("--pq", type=float, callback=_percent, help="PQ over things, percent.")
@click.option("--sq", type=float, callback=_percent)
@click.option("--rq", type=float, callback=_percent)
@click.option("--pq-scene", type=float, callback=_percent)
@click.option("--binary-acc", type=float, callback=_percent)
@click.option("--binary-miou", type=float, callback=_percent)
@click.option("--semantic-only", is_flag=True, help="The method produces no instances (PQ columns show '-').")
@click.option("--uses-gt-masks", is_flag=True)
@click.option("--dataset", default=None, help='The dataset the source measured on, e.g. "3D-FRONT" (shown with the row).')
def add_reported(db: str, method: str, source: str, protocol: str, split: str, miou: float | None, pq: float | None,
                 sq: float | None, rq: float | None, pq_scene: float | None, binary_acc: float | None,
                 binary_miou: float | None, semantic_only: bool, uses_gt_masks: bool, dataset: str | None) -> None:
    """Add a row of numbers reported in a paper (not evaluated here): shown marked as reported, with its dataset,
    in its own section of every table, never ranked with the results measured on the benchmark."""
    given = {"miou": miou, "pq_things": pq, "sq_things": sq, "rq_things": rq, "pq_scene_things": pq_scene,
             "binary_acc": binary_acc, "binary_miou": binary_miou}
    values = {k: v / 100.0 for k, v in given.items() if v is not None}
    if not values:
        raise click.UsageError("give at least one number (--miou, --pq, ...)")
    with _open_store(db) as store:
        rid = store.add_reported(method, source, values, protocol=protocol, split=split, semantic_only=semantic_only,
                                 uses_gt_masks=uses_gt_masks, dataset=dataset)
    click.echo(f"added reported row #{rid}: {method} ({source}), protocol {protocol}, {split} split")


@leaderboard.command("migrate")
@db_option
def migrate_command(db: str) -> None:
    """Upgrade the database schema to this nerfseg (what every writing command does on its own; read-only
    commands such as 'show' never do, and ask for this instead)."""
    from nerfseg.leaderboard.store import LATEST_SCHEMA_VERSION

    with _open_store(db, must_exist=True) as store:
        version = store.schema_version()
    click.echo(f"{db}: schema version {version} (this nerfseg: {LATEST_SCHEMA_VERSION})")


@leaderboard.command("add-team")
@click.argument("name")
@db_option
@click.option("--daily-limit", type=click.IntRange(0), default=None,
              help="Submissions per 24 h for this team (default: the server's limit).")
@click.option("--rotate", is_flag=True, help="Issue a new token for an existing team (the old one stops working).")
def add_team(name: str, db: str, daily_limit: int | None, rotate: bool) -> None:
    """Register a team and print its upload token ONCE (only its hash is stored)."""
    with _open_store(db) as store:
        if rotate:
            token = store.rotate_token(name)
            if daily_limit is not None:
                store.set_daily_limit(name, daily_limit)
        else:
            _team, token = store.add_team(name, daily_limit)
    click.echo(f"team {name!r}: keep this upload token, it is not shown again:", err=True)
    click.echo(token)


@leaderboard.command("serve")
@db_option
@click.option("--data", "data_root", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The benchmark folder with the (never served) test ground truth.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--submissions-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where uploads are kept (default: 'submissions' next to an SQLite database).")
@click.option("--max-upload-mb", default=512.0, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--daily-limit", default=5, show_default=True, type=click.IntRange(0),
              help="Submissions per team per 24 h (a team's own limit overrides it).")
@click.option("--worker", "worker_mode", default="thread", show_default=True, type=click.Choice(["thread", "none"]),
              help="'thread': evaluate in this process; 'none': run 'nerfseg leaderboard worker' separately.")
@evaluator_option
@click.option("--lease", "lease_seconds", default=60.0, show_default=True, type=float,
              help="Seconds an evaluation may go without a heartbeat before it is retried.")
@click.option("--poll", "poll_seconds", default=1.0, show_default=True, type=float)
@click.option("--eval-workers", default=1, show_default=True, type=click.IntRange(1),
              help="Processes per evaluation in the worker thread.")
@click.option("--max-concurrent-uploads", default=8, show_default=True, type=click.IntRange(1),
              help="Uploads received at once, all clients together.")
@click.option("--max-uploads-per-client", default=2, show_default=True, type=click.IntRange(1),
              help="Uploads received at once from one client address (raise it behind a proxy).")
@click.option("--upload-timeout", default=30.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds an upload may send nothing before it is dropped (408).")
def serve_command(db: str, data_root: Path, host: str, port: int, submissions_dir: Path | None, max_upload_mb: float,
                  daily_limit: int, worker_mode: str, evaluator: str | None, lease_seconds: float,
                  poll_seconds: float, eval_workers: int, max_concurrent_uploads: int, max_uploads_per_client: int,
                  upload_timeout: float) -> None:
    """Serve the public leaderboard, the upload form and the team API (needs the 'server' extra)."""
    try:
        from nerfseg.leaderboard.server import ServerSettings, serve
    except ImportError as exc:
        raise click.ClickException(
            f"the web server needs the server extra (pip install 'nerfseg[server]'): {exc}") from exc
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    store = _open_store(db, submissions_dir)
    settings = ServerSettings(data_root=data_root.resolve(), max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                              daily_limit=daily_limit, worker=worker_mode, evaluator=evaluator,
                              lease_seconds=lease_seconds, poll_seconds=poll_seconds, eval_workers=eval_workers,
                              max_concurrent_uploads=max_concurrent_uploads, max_uploads_per_client=max_uploads_per_client,
                              upload_idle_timeout_s=upload_timeout)
    serve(store, settings, host=host, port=port)




@leaderboard.command("worker")
@db_option
@click.option("--data", "data_root", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--submissions-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@evaluator_option
@click.option("--lease", "lease_seconds", default=60.0, show_default=True, type=float)
@click.option("--poll", "poll_seconds", default=1.0, show_default=True, type=float)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1), help="Processes per evaluation.")
@click.option("--max-jobs", type=click.IntRange(1), default=None, help="Stop after this many submissions.")
@click.option("--exit-when-idle", type=float, default=None, help="Stop after this many seconds with an empty queue.")
def worker_command(db: str, data_root: Path, submissions_dir: Path | None, evaluator: str | None,
                   lease_seconds: float, poll_seconds: float, workers: int, max_jobs: int | None,
                   exit_when_idle: float | None) -> None:
    """Evaluate queued submissions (for 'serve --worker none', or extra workers beside a server)."""
    from nerfseg.leaderboard.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    store = _open_store(db, submissions_dir)
    worker = Worker(store, data_root, load_evaluator(evaluator), lease_seconds=lease_seconds,
                    poll_seconds=poll_seconds, eval_workers=workers)
    click.echo(f"worker {worker.worker_id} polling {store.url}", err=True)
    try:
        done = worker.run(max_jobs=max_jobs, exit_when_idle=exit_when_idle)
    except KeyboardInterrupt:
        done = worker.processed
    finally:
        store.close()
    click.echo(f"worker {worker.worker_id} done: {done} submission(s)", err=True)

