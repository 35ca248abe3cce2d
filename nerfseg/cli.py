"""The ``nerfseg`` command line: a thin front door that parses and calls one function per verb.

Each verb lives next to the code it drives (``nerfseg/dataset_tools/cli.py``, ``nerfseg/evaluation/cli.py``, ...) and is
imported lazily, so ``nerfseg eval`` works on a machine without torch and ``nerfseg --help`` is fast.
"""

from __future__ import annotations

import importlib
import sys

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


@click.group(cls=LazyGroup, context_settings={"help_option_names": HELP_OPTION_NAMES})  # sub-commands inherit -h
@click.version_option(__version__, prog_name="nerfseg")
def cli() -> None:
    """nerfseg: the benchmark for 3D instance segmentation in NeRFs."""


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
