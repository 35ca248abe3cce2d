"""The ``--set KEY=VALUE`` and ``--list-settings`` options, shared by every command that has settings.

``--set`` values stay text here: :mod:`nerfseg.config` converts them by each field's declared type.
``--list-settings`` prints the command's settings (key, type, value of the chosen preset, help) and exits; it
is eager, so it works without the command's required options, but it reads the options given before or after
it (``--method``, ``--preset``) to show the right settings.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import click

from nerfseg.config import format_settings, parse_assignments

SET_HELP = "Setting KEY=VALUE (repeatable), converted by the setting's type; --list-settings shows the keys."


def set_option(help: str = SET_HELP) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--set KEY=VALUE`` (repeatable), handed to the command as ``overrides``: a dict of text values."""

    def callback(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, str]:
        return parse_assignments(value or (), "--set")

    return click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", callback=callback, help=help)


class _RawOptsFlag(click.Option):
    """An eager flag that keeps the command line's raw option values, so its callback can read ``--method``."""

    def handle_parse_result(self, ctx: click.Context, opts: Mapping[str, Any], args: list[str]) -> Any:
        ctx.meta["nerfseg.raw_opts"] = dict(opts)
        return super().handle_parse_result(ctx, opts, args)


def list_settings_option(build: Callable[[Mapping[str, Any]], tuple[Any, str]]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--list-settings``: print the settings ``build(raw_options)`` returns as ``(config, title)`` and exit.

    ``raw_options`` maps option names (``method_name``, ``preset``) to what was typed, or is missing them.
    """

    def callback(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if not value or ctx.resilient_parsing:
            return
        config, title = build(ctx.meta.get("nerfseg.raw_opts", {}))
        if dataclasses.is_dataclass(config):
            click.echo(format_settings(config, title=title))
        else:  # a plug-in's settings need not be a dataclass: show them as they are, without types or help
            click.echo(f"{title}\n  {config!r}\n(not a dataclass: keys and types are up to the method's make_config)")
        ctx.exit(0)

    return click.option("--list-settings", is_flag=True, expose_value=False, is_eager=True, cls=_RawOptsFlag,
                        callback=callback, help="Print every --set key (type, this preset's value, help) and exit.")
