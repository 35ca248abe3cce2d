"""The ``nerfseg`` command line: a thin front door that parses and calls one function per verb.

Each verb lives next to the code it drives (``nerfseg/dataset_tools/cli.py``, ``nerfseg/evaluation/cli.py``, ...) and is
imported lazily, so ``nerfseg eval`` works on a machine without torch and ``nerfseg --help`` is fast.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Callable

import click

from nerfseg import __version__
from nerfseg.errors import NerfsegError

#: every command (and sub-command) takes ``-h`` as well as ``--help``
HELP_OPTION_NAMES = ["-h", "--help"]

#: the ``--device`` choices of every command that has one; "auto" (the default everywhere) is CUDA when
#: torch sees a GPU, else the CPU. Output files and folders are ``--out`` everywhere (older names stay aliases).
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")

#: verb -> "module:attribute" of a click command
COMMANDS: dict[str, str] = {
    "build-dataset": "nerfseg.dataset_tools.cli:build_dataset",
    "show": "nerfseg.dataset_tools.cli:show",
    "verify-front3d": "nerfseg.dataset_tools.cli:verify_front3d_command",
    "priors": "nerfseg.dataset_tools.priors_cli:priors",
    "eval": "nerfseg.evaluation.cli:eval_command",
    "pq-compute": "nerfseg.evaluation.pq_cli:pq_compute_command",
    "export-coco": "nerfseg.evaluation.coco_cli:export_coco_command",
    "train": "nerfseg.baselines.cli:train",
    "grids": "nerfseg.instance_nerf.cli:grids",
    "train-rcnn": "nerfseg.instance_nerf.rcnn.cli:train_rcnn",
    "reproduce": "nerfseg.baselines.reproduce:reproduce",
    "submit": "nerfseg.leaderboard.cli:submit",
    "leaderboard": "nerfseg.leaderboard.cli:leaderboard",
    "benchmark-id": "nerfseg.identity:benchmark_id",
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
            command = getattr(module, attr)
            # set on the command itself, not only inherited from this group: click caches a command's help
            # option the first time it is used, so a command first run on its own would lose ``-h`` for good
            command.context_settings.setdefault("help_option_names", HELP_OPTION_NAMES)
            cached = getattr(command, "_help_option", None)  # click >= 8.1.8 caches it
            if cached is not None and "-h" not in cached.opts:
                command._help_option = None
            return command
        except (ImportError, AttributeError) as exc:
            missing = getattr(exc, "name", None) or str(exc)
            reason = str(exc)  # ``exc`` is unbound once the except block ends; the command below runs later

            @click.command(cmd_name, help=f"(unavailable: {missing})")
            def unavailable() -> None:
                raise click.ClickException(
                    f"'nerfseg {cmd_name}' is unavailable here: {reason}. Install the extra it needs (see README)."
                )

            return unavailable


class _StderrHandler(logging.StreamHandler):
    """Writes each record to ``sys.stderr`` as it is at that moment: click's test runner, pytest and rich's live
    bar swap it, and a handler holding the stream it was built with would write past them."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201 - a text stream
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:  # StreamHandler.__init__ assigns one; always follow sys.stderr
        pass


class _ShortFormatter(logging.Formatter):
    """INFO lines as the message alone (progress, notes), others prefixed like the CLI's ``error:`` lines."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno == logging.INFO:
            return text
        if record.levelno == logging.DEBUG:
            return f"debug [{record.name}]: {text}"
        prefix = f"{record.levelname.lower()}: "
        return text if text.startswith(prefix) else prefix + text  # messages that are also report lines carry it already


def configure_logging(level: int) -> Callable[[], None]:
    """Send the ``nerfseg`` loggers' records of ``level`` and up to stderr, once; returns the undo.

    Modules only ever call ``logging.getLogger(__name__)``; this is the one place that adds a handler, so a
    Python caller that imports nerfseg keeps its own logging setup. The undo (run when the command ends)
    restores the previous state, so commands run in one process (tests) do not inherit each other's level.
    """
    root = logging.getLogger("nerfseg")
    saved_level, saved_propagate = root.level, root.propagate
    handler = _StderrHandler()
    handler.setFormatter(_ShortFormatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False  # an application's root handler would print every line twice

    def undo() -> None:
        root.removeHandler(handler)
        root.setLevel(saved_level)
        root.propagate = saved_propagate

    return undo


@click.group(cls=LazyGroup, context_settings={"help_option_names": HELP_OPTION_NAMES})  # sub-commands inherit -h
@click.option("-v", "--verbose", is_flag=True, help="Also show debug lines (which settings, paths and forms were chosen).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors: no info lines, no progress lines or bars.")
@click.version_option(__version__, prog_name="nerfseg")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """nerfseg: the benchmark for 3D instance segmentation in NeRFs."""
    if verbose and quiet:
        raise click.UsageError("-v/--verbose and -q/--quiet contradict each other; give one")
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    ctx.call_on_close(configure_logging(level))


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one clear line and exit code 2, not a traceback."""
    try:
        cli.main(args=argv, prog_name="nerfseg", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except NerfsegError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
