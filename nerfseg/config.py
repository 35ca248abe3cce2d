"""Settings overrides: one parser for every ``--set KEY=VALUE`` of every command, derived from config dataclasses.

A command's settings are a (possibly nested) dataclass built from a preset. :func:`apply_overrides` changes it
from ``{"a.b": value}`` pairs: the key walks nested dataclasses (``radiance.steps``, ``field.hidden``), and a
class may name sections whose keys also work bare (``FLAT_SETTINGS = ("radiance",)`` makes ``steps`` mean
``radiance.steps`` unless the class has its own ``steps``). Values given as text (the command line) are
converted by the field's declared type, and values given from Python are checked against it, so the same
setting always lands in the config as the same value (``--set steps=500`` and ``steps=500`` from Python give
the identical resolved config, hence the identical run fingerprint of :mod:`nerfseg.runs`).

Mistakes are :class:`SettingError` (an :class:`~nerfseg.errors.InputError`): one line naming the flag, the key,
the expected type and the value, with a did-you-mean for unknown keys, raised before any work starts. A field
whose metadata says ``{"path": "input"}`` is a file the run will read: it must exist when it is set.

Help for ``--list-settings`` comes from the field's ``metadata["help"]``, else the ``#:`` comment block above
the field or the ``#`` comment on its line in the class source (the convention Sphinx autodoc reads).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import difflib
import functools
import inspect
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping, Sequence, TypeVar, Union

from nerfseg.errors import InputError

T = TypeVar("T")

#: text accepted for a bool field (case-insensitive)
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")
#: text accepted for None where a field is Optional
NONE_WORDS = ("none", "null")


#: the option errors are reported under when a caller does not pass ``flag`` (see :func:`settings_flag`)
_FLAG: contextvars.ContextVar[str | None] = contextvars.ContextVar("nerfseg_settings_flag", default=None)


@contextlib.contextmanager
def settings_flag(flag: str) -> Iterator[None]:
    """Inside this block, setting errors name ``flag`` (e.g. ``--set``) even when raised deep in a factory
    such as ``Method.make_config`` that does not know which option its overrides came from."""
    token = _FLAG.set(flag)
    try:
        yield
    finally:
        _FLAG.reset(token)


class SettingError(InputError):
    """A ``--set`` key or value that the settings cannot take; the message is the whole story on one line."""

    def __init__(self, message: str, key: str | None = None):
        self.message = message
        super().__init__(None, message, key=None)
        self.key = key
        self.args = (message,)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # picklable (pool workers), with this class's own arguments
        return (type(self), (self.message, self.key))


@dataclass(frozen=True)
class SettingInfo:
    """One settable key, for ``--list-settings``: its dotted key, type, current (preset) value and help."""

    key: str
    type: str
    value: Any
    help: str


# ------------------------------------------------------------------------------------------------ parsing
def parse_assignments(items: Iterable[str], flag: str = "--set") -> dict[str, str]:
    """``["a=1", "b.c=x"]`` -> ``{"a": "1", "b.c": "x"}`` (the value stays text: the field's type converts it).

    Splits at the first ``=``, so values may contain ``=``; a later repeat of a key wins, as on most CLIs.
    """
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SettingError(f"{flag} {item!r}: expected KEY=VALUE, e.g. {flag} steps=500")
        out[key] = value
    return out


def guess_value(text: str) -> Any:
    """A value without a declared type (a plug-in whose config is not a dataclass): int, float, bool or text."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    return text


# ------------------------------------------------------------------------------------------------ types
@functools.lru_cache(maxsize=None)  # a config's __post_init__ asks on every construction
def _hints(cls: type) -> dict[str, Any]:
    """Field name -> resolved type of a dataclass (configs use ``from __future__ import annotations``)."""
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that cannot be evaluated: fall back to the raw strings (no conversion)
        return {f.name: f.type for f in dataclasses.fields(cls)}


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) is Union or isinstance(tp, types.UnionType):
        return typing.get_args(tp)
    return None


def type_name(tp: Any) -> str:
    """A short human name of a field type: ``int``, ``float | None``, ``{'rcnn', 'gt3d'}``, ``tuple[float, float]``."""
    args = _union_args(tp)
    if args is not None:
        return " | ".join("None" if a is type(None) else type_name(a) for a in args)
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "{" + ", ".join(repr(c) for c in typing.get_args(tp)) + "}"
    if origin in (tuple, list):
        inner = typing.get_args(tp)
        if origin is tuple and len(inner) == 2 and inner[1] is Ellipsis:
            return f"tuple[{type_name(inner[0])}, ...]"
        return f"{origin.__name__}[{', '.join(type_name(a) for a in inner)}]"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp)


class _Bad(Exception):
    """Internal: a value does not fit a type (turned into a :class:`SettingError` with the key and flag)."""


def _split_sequence(text: str) -> list[str]:
    body = text.strip()
    if body[:1] in "([" and body[-1:] in ")]":
        body = body[1:-1]
    return [part.strip() for part in body.split(",") if part.strip()] if body.strip() else []


def convert(value: Any, tp: Any) -> Any:
    """``value`` as type ``tp``: text is parsed, Python values are checked (an int is a valid float, a bool is no int).

    Raises ``_Bad`` when it does not fit; unknown types (e.g. a class without a parser) pass the value through.
    """
    args = _union_args(tp)
    if args is not None:
        if value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS):
            if type(None) in args:
                return None
            raise _Bad
        for option in (a for a in args if a is not type(None)):
            try:
                return convert(value, option)
            except _Bad:
                continue
        raise _Bad
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        for choice in choices:
            try:
                if convert(value, type(choice)) == choice:
                    return choice
            except _Bad:
                continue
        raise _Bad
    if origin in (tuple, list):
        inner = typing.get_args(tp)
        items = _split_sequence(value) if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise _Bad
        if origin is tuple and inner and not (len(inner) == 2 and inner[1] is Ellipsis):
            if len(items) != len(inner):
                raise _Bad
            return tuple(convert(v, t) for v, t in zip(items, inner))
        item_type = inner[0] if inner else Any
        seq = [convert(v, item_type) for v in items]
        return tuple(seq) if origin is tuple else seq
    if tp is Any or not isinstance(tp, type):
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
            return value.strip().lower() in TRUE_WORDS
        raise _Bad
    if tp is int or tp is float:
        return _number(value, tp)
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, Path):
            return str(value)
        raise _Bad
    if issubclass(tp, Path):
        if isinstance(value, (str, Path)):
            return tp(value)
        raise _Bad
    if isinstance(value, tp):
        return value
    raise _Bad


def _number(value: Any, tp: type) -> int | float:
    """``value`` as an int or float field: text is parsed; an int is a valid float, a whole float a valid int,
    and a bool is neither (``True`` for a step count is a mistake, not 1)."""
    if isinstance(value, bool):
        raise _Bad
    if isinstance(value, str):
        try:
            return tp(value.strip())
        except ValueError:
            raise _Bad from None
    if tp is float and isinstance(value, (int, float)):
        return float(value)
    if tp is int and isinstance(value, int):
        return value
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)
    raise _Bad


# ------------------------------------------------------------------------------------------------ keys
def _flat_sections(config: Any, flat: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(flat) if flat is not None else tuple(getattr(type(config), "FLAT_SETTINGS", ()))


def _section_class(config: Any, path: str) -> type | None:
    obj: Any = config
    for part in path.split("."):
        if not dataclasses.is_dataclass(obj) or not hasattr(obj, part):
            return None
        obj = getattr(obj, part)
    return type(obj) if dataclasses.is_dataclass(obj) else None


class _Leaf(typing.NamedTuple):
    field: dataclasses.Field
    type: Any
    value: Any
    owner: type  # the dataclass the field belongs to (its source holds the help comments)


def _leaves(config: Any) -> dict[str, _Leaf]:
    """Dotted key -> leaf of every setting of ``config``, in declaration order (nested values' runtime classes)."""
    out: dict[str, _Leaf] = {}

    def visit(obj: Any, prefix: str) -> None:
        hints = _hints(type(obj))
        for f in dataclasses.fields(obj):
            if not f.init:
                continue
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                visit(value, f"{prefix}{f.name}.")
            else:
                out[f"{prefix}{f.name}"] = _Leaf(f, hints.get(f.name, f.type), value, type(obj))

    visit(config, "")
    return out


def accepted_keys(config: Any, flat: Sequence[str] | None = None) -> dict[str, str]:
    """Every key ``--set`` accepts for ``config`` -> the dotted field it sets (bare shortcuts included)."""
    leaves = _leaves(config)
    keys = {k: k for k in leaves}
    for section in _flat_sections(config, flat):
        for k in leaves:
            if k.startswith(section + "."):
                bare = k[len(section) + 1:]
                keys.setdefault(bare, k)  # the class's own field of that name wins (as it always did)
    return keys


def _where(flag: str | None, key: str, value: Any) -> str:
    shown = value if isinstance(value, str) else repr(value)
    if not flag:
        return f"setting {key}={shown}"
    return f"{flag}{key}={shown}" if flag.endswith(":") else f"{flag} {key}={shown}"  # "--set dm-nerf:" prefixes


def resolve_overrides(config: Any, overrides: Mapping[str, Any], flag: str | None = None,
                      flat: Sequence[str] | None = None) -> dict[str, Any]:
    """``overrides`` keyed by full dotted field and converted to each field's type; checks input paths.

    Raises :class:`SettingError` on an unknown key (with did-you-mean), a value of the wrong type, a section
    given a value, or a declared input file that does not exist.
    """
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"settings must be a dataclass instance, got {type(config).__name__}")
    flag = flag if flag is not None else _FLAG.get()
    keys = accepted_keys(config, flat)
    leaves = _leaves(config)
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        target = keys.get(key)
        if target is None:
            if _section_class(config, key) is not None:
                raise SettingError(f"{_where(flag, key, value)}: {key!r} is a group of settings, set one of its keys ({key}.KEY)", key)
            close = difflib.get_close_matches(key, list(keys), n=3, cutoff=0.6)
            hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else "see --list-settings for the keys"
            raise SettingError(f"{_where(flag, key, value)}: unknown setting {key!r} of {type(config).__name__}; {hint}", key)
        fld, tp = leaves[target].field, leaves[target].type
        try:
            converted = convert(value, tp)
        except _Bad:
            named = key if target == key else f"{key} ({target})"
            raise SettingError(f"{_where(flag, key, value)}: {named} expects {type_name(tp)}, got {value!r}", key) from None
        if fld.metadata.get("path") == "input" and converted is not None and not Path(converted).exists():
            raise SettingError(f"{_where(flag, key, value)}: file not found: {Path(converted)}", key)
        out[target] = converted
    return out


def apply_overrides(config: T, overrides: Mapping[str, Any], flag: str | None = None,
                    flat: Sequence[str] | None = None) -> T:
    """A copy of ``config`` with ``overrides`` (``{"a.b": value}``) applied; nested dataclasses are replaced, not mutated.

    ``flag`` names the option in errors (``"--set"``); ``flat`` lists sections whose keys also work bare
    (default: the class attribute ``FLAT_SETTINGS``). Works on frozen dataclasses (``dataclasses.replace``,
    which also re-runs ``__post_init__`` validation).
    """
    resolved = resolve_overrides(config, overrides, flag, flat)
    return _replace_nested(config, resolved)


def _replace_nested(obj: Any, changes: Mapping[str, Any]) -> Any:
    if not changes:
        return obj
    own: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in changes.items():
        head, dot, rest = key.partition(".")
        if dot:
            nested.setdefault(head, {})[rest] = value
        else:
            own[head] = value
    for head, sub in nested.items():
        own[head] = _replace_nested(getattr(obj, head), sub)
    return dataclasses.replace(obj, **own)


def typed_overrides(make: Callable[..., Any], overrides: Mapping[str, Any], flag: str | None = "--set",
                    unknown: Literal["raise", "keep"] = "raise") -> dict[str, Any]:
    """``overrides`` converted to the types of the settings ``make()`` builds, keyed as given; checked up front.

    For a command that hands its overrides to a factory (``Method.make_config``, ``grid_settings``): the
    defaults say each key's type, so ``--set steps=abc`` fails here, naming the flag, before any work starts,
    and a factory that does not use :func:`apply_overrides` itself (a plug-in) still receives typed values.
    A factory whose settings are no dataclass gets int / float / bool / text guessed from the text.
    ``unknown="keep"`` hands keys the defaults lack to the factory (guessed), so a plug-in's own error about
    them is the one the user sees; the caller then calls the factory (inside :func:`settings_flag`).
    """
    base = make()
    if not dataclasses.is_dataclass(base):
        return {k: guess_value(v) if isinstance(v, str) else v for k, v in overrides.items()}
    known = accepted_keys(base)
    out = {}
    for key, value in overrides.items():
        if unknown == "keep" and key not in known and _section_class(base, key) is None:
            out[key] = guess_value(value) if isinstance(value, str) else value
            continue
        (converted,) = resolve_overrides(base, {key: value}, flag).values()
        out[key] = converted
    return out


# ------------------------------------------------------------------------------------------------ presets, checks
def preset_entry(table: Mapping[str, T], name: str, what: str, flag: str = "--preset") -> T:
    """``table[name]``; an unknown name is a :class:`SettingError` listing the names, so every command's
    ``--preset`` (and every preset lookup from Python) fails alike, before any work.

    ``what`` names the settings in the message (``"radiance"``, ``"NeRF-RCNN"``, a method's name). For a
    table of factories, :func:`from_preset` also calls the entry.
    """
    if name not in table:
        raise SettingError(f"{flag} {name}: unknown {what} preset {name!r}; expected one of {sorted(table)}", "preset")
    return table[name]


def from_preset(presets: Mapping[str, Callable[[], T]], name: str, what: str, flag: str = "--preset") -> T:
    """A fresh config from the factory ``presets[name]`` (see :func:`preset_entry` for the unknown name)."""
    return preset_entry(presets, name, what, flag)()


def setting_error(key: str, value: Any, problem: str) -> SettingError:
    """A :class:`SettingError` for a value a config's own check refuses (``__post_init__``), naming the key and,
    inside :func:`settings_flag`, the option it came from."""
    return SettingError(f"{_where(_FLAG.get(), key, value)}: {problem}", key)


def check_choices(config: Any) -> None:
    """Raise :func:`setting_error` when a ``Literal[...]`` field of ``config`` holds none of its choices.

    ``--set`` already converts by the declared type; this catches configs built from Python or from a stored
    JSON, where the annotation is not enforced, before the value reaches code that would fail deep inside.
    """
    hints = _hints(type(config))
    for f in dataclasses.fields(config):
        tp = hints.get(f.name)
        if typing.get_origin(tp) is not Literal:
            continue
        value = getattr(config, f.name)
        choices = typing.get_args(tp)
        if value not in choices:
            raise setting_error(f.name, value, f"unknown {f.name} {value!r}; expected one of {', '.join(map(repr, choices))}")


# ------------------------------------------------------------------------------------------------ help
_FIELD_LINE = re.compile(r"^(\s*)(\w+)\s*:\s*[^\s=]")


@functools.lru_cache(maxsize=None)  # parsed once per class: --list-settings asks for every field
def _comment_help(cls: type) -> dict[str, str]:
    """Field name -> help text from the ``#:`` block above it and the ``#`` comment on its line."""
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    body_indent = None
    out: dict[str, str] = {}
    block: list[str] = []
    first = next((i for i, line in enumerate(lines) if line.lstrip().startswith("class ")), 0)
    for line in lines[first + 1:]:
        stripped = line.strip()
        if not stripped:
            continue
        indent = len(line) - len(line.lstrip())
        if body_indent is None:
            body_indent = indent
        if indent != body_indent:
            continue  # inside a method or a continuation line
        if stripped.startswith("#"):  # ``#:`` doc comments, and plain comment blocks that are not section rulers
            text = stripped[2:].strip() if stripped.startswith("#:") else stripped[1:].strip()
            if text and not text.startswith("--"):
                block.append(text)
            else:
                block = []
            continue
        m = _FIELD_LINE.match(line)
        if m and m.group(2) in names and not stripped.startswith(("def ", "class ", "@")):
            _code, hash_, comment = line.partition("  # ")
            parts = block + ([comment.strip()] if hash_ and "type: ignore" not in comment else [])
            if parts:
                out.setdefault(m.group(2), " ".join(parts))
        block = []
    return out


def field_help(cls: type, name: str) -> str:
    """Help of one field: ``metadata["help"]``, else its source comment, else empty."""
    for f in dataclasses.fields(cls):
        if f.name == name and f.metadata.get("help"):
            return str(f.metadata["help"])
    for klass in cls.__mro__:  # a field declared in a base dataclass has its comment in the base's source
        text = _comment_help(klass).get(name, "") if dataclasses.is_dataclass(klass) else ""
        if text:
            return text
    return ""


def describe_settings(config: Any, flat: Sequence[str] | None = None) -> list[SettingInfo]:
    """Every settable key of ``config`` with its type, current value and help (for ``--list-settings``)."""
    sections = _flat_sections(config, flat)
    leaves = _leaves(config)
    infos = []
    for key, leaf in leaves.items():
        section, dot, bare = key.partition(".")
        shown = f"{key} (or {bare})" if dot and section in sections and bare not in leaves else key
        infos.append(SettingInfo(shown, type_name(leaf.type), leaf.value, field_help(leaf.owner, leaf.field.name)))
    return infos


def format_settings(config: Any, flat: Sequence[str] | None = None, title: str = "") -> str:
    """``--list-settings`` text: one line per key (key, type, value), help indented below."""
    lines = [title] if title else []
    for info in describe_settings(config, flat):
        shown = repr(info.value)
        shown = shown if len(shown) <= 120 else shown[:117] + "..."  # e.g. a table of rules: the key is what matters
        lines.append(f"  {info.key}: {info.type} = {shown}")
        if info.help:
            lines.append(f"      {info.help}")
    lines.append("Change one with --set KEY=VALUE (repeatable); see docs/settings.md.")
    return "\n".join(lines)


__all__ = [
    "SettingError", "SettingInfo", "accepted_keys", "apply_overrides", "check_choices", "convert",
    "describe_settings", "field_help", "format_settings", "from_preset", "preset_entry", "guess_value", "parse_assignments", "resolve_overrides", "setting_error", "settings_flag",
    "type_name", "typed_overrides",
]
