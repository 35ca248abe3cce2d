"""What every accumulator shares: the reset/update/compute/merge/state contract and small helpers.

Accumulators follow torchmetrics' ``Metric`` and detectron2's ``DatasetEvaluator``: each piece of state is
declared once in ``__init__`` with :meth:`Accumulator.add_state` (a default factory and a reduction), and
``reset``, ``merge``, ``state_dict`` and ``from_state`` are derived from those declarations, so a new metric
cannot forget a field in one of them. ``update`` adds one frame (or scene), ``compute`` turns the state into a
plain dict of floats, and ``merge`` adds another accumulator's state so frames can be split over processes or
machines. ``state_dict`` / ``from_state`` give a picklable snapshot of plain numpy/python objects.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from typing_extensions import Self

T = TypeVar("T", bound="Accumulator")
V = TypeVar("V")

#: the built-in reductions of :meth:`Accumulator.add_state`
REDUCTIONS = ("sum", "max", "cat", "cat_disjoint", "dict_sum", "union", "merge")


def _like(template: Any, value: Any) -> Any:
    """``value`` as a fresh object of ``template``'s type (and dtype): how loaded state gets its types back."""
    if isinstance(template, np.ndarray):
        return np.asarray(value, dtype=template.dtype).copy()
    if isinstance(template, Accumulator):
        return type(template).from_state(value)
    return type(template)(value)


def _copy(value: Any) -> Any:
    """A copy that shares no mutable array/accumulator with ``value`` (merged state must not alias the source)."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, Accumulator):
        return type(value).from_state(value.state_dict())
    return value


def _dump(value: Any) -> Any:
    """The snapshot of one state value in plain numpy/python objects."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, Accumulator):
        return value.state_dict()
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


@dataclass(frozen=True)
class StateSpec:
    """One declared piece of accumulator state.

    ``reduce(mine, theirs)`` returns the merged value (it may update ``mine`` in place, never keeps a reference
    into ``theirs``); ``check(mine, theirs)`` raises before any state is touched when the two cannot merge
    (e.g. the same scene in both); ``dump`` / ``load`` convert to and from the plain snapshot.
    """

    name: str
    default: Callable[[], Any]
    reduce: Callable[[Any, Any], Any]
    dump: Callable[[Any], Any]
    load: Callable[[Any], Any]
    check: Callable[[Any, Any], None] | None = None


class Accumulator:
    """Base class: subclasses declare their state with :meth:`add_state` and define ``update`` / ``compute``.

    ``reset``, ``merge``, ``state_dict`` and ``_load`` come from the declarations; a subclass whose state does
    not fit them may still override those methods.
    """

    _states: dict[str, StateSpec]

    def add_state(
        self,
        name: str,
        default: Callable[[], Any],
        reduce: str | Callable[[Any, Any], Any] = "sum",
        *,
        item: Callable[[], Any] | None = None,
        dump: Callable[[Any], Any] | None = None,
        load: Callable[[Any], Any] | None = None,
        what: str | None = None,
    ) -> None:
        """Declare the state ``name`` (set now to ``default()``) and how two accumulators combine it.

        ``reduce``: ``"sum"`` (arrays in place, numbers), ``"max"``, ``"cat"`` (lists concatenated),
        ``"cat_disjoint"`` (lists of keys that must not repeat across the merged halves), ``"dict_sum"``
        (dicts of summed values; ``item()`` is a zero value), ``"union"`` (dicts whose keys must not repeat),
        ``"merge"`` (a nested accumulator), or a callable ``(mine, theirs) -> merged`` (then give ``dump`` and
        ``load`` unless the value is an array/number). ``item()`` is the template of a list's or dict's
        elements used to restore their types on load; ``what`` names the keys in the "in both" error.
        """
        states = self.__dict__.setdefault("_states", {})
        if name in states:
            raise ValueError(f"{type(self).__name__}: state {name!r} declared twice")
        label = what or name
        owner = type(self).__name__
        template = default()
        check: Callable[[Any, Any], None] | None = None
        elem = item if item is not None else (lambda: None)

        def load_elem(v: Any) -> Any:
            return v if item is None else _like(item(), v)

        if callable(reduce):
            fn, dflt_dump, dflt_load = reduce, _dump, (lambda v: _like(default(), v))
        elif reduce == "sum":
            fn = _sum
            dflt_dump, dflt_load = _dump, (lambda v: _like(default(), v))
        elif reduce == "max":
            fn = _max
            dflt_dump, dflt_load = _dump, (lambda v: _like(default(), v))
        elif reduce in ("cat", "cat_disjoint"):
            if not isinstance(template, list):
                raise TypeError(f"{owner}: state {name!r} with reduce={reduce!r} needs a list default")
            fn = lambda mine, theirs: mine + [_copy(v) for v in theirs]  # noqa: E731
            dflt_dump, dflt_load = _dump, (lambda v: [load_elem(x) for x in v])
            if reduce == "cat_disjoint":
                check = _disjoint_check(label, owner)
        elif reduce == "dict_sum":
            if item is None:
                raise TypeError(f"{owner}: state {name!r} with reduce='dict_sum' needs item= (the zero value)")

            def fn(mine: dict, theirs: dict) -> dict:
                for k, v in theirs.items():
                    mine[k] = _sum(mine[k] if k in mine else elem(), v)
                return mine

            dflt_dump, dflt_load = _dump, (lambda v: {str(k): load_elem(x) for k, x in v.items()})
        elif reduce == "union":

            def fn(mine: dict, theirs: dict) -> dict:
                mine.update((k, _copy(v)) for k, v in theirs.items())
                return mine

            check = _disjoint_check(label, owner)
            dflt_dump, dflt_load = _dump, (lambda v: {k: load_elem(x) for k, x in v.items()})
        elif reduce == "merge":
            if not isinstance(template, Accumulator):
                raise TypeError(f"{owner}: state {name!r} with reduce='merge' needs an Accumulator default")
            fn = lambda mine, theirs: mine.merge(theirs)  # noqa: E731
            dflt_dump, dflt_load = _dump, (lambda v: type(template).from_state(v))
        else:
            raise ValueError(f"{owner}: unknown reduce {reduce!r} for state {name!r}; use one of {REDUCTIONS} or a callable")
        states[name] = StateSpec(name, default, fn, dump or dflt_dump, load or dflt_load, check)
        setattr(self, name, template)

    def reset(self) -> None:
        """Every declared state back to its default."""
        for s in self.__dict__.get("_states", {}).values():
            setattr(self, s.name, s.default())

    def compute(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_mergeable(self, other: Self) -> None:
        """Raise before anything changes when ``other`` cannot be merged in (override for extra rules)."""
        for s in self._states.values():
            if s.check is not None:
                s.check(getattr(self, s.name), getattr(other, s.name))

    def merge(self, other: Self) -> Self:
        """Add ``other``'s state into this one (same type and settings); ``other`` is left unchanged."""
        self._check_same(other)
        self._check_mergeable(other)
        for s in self._states.values():
            setattr(self, s.name, s.reduce(getattr(self, s.name), getattr(other, s.name)))
        return self

    def state_dict(self) -> dict[str, Any]:
        """``{"config": constructor arguments, <state>: snapshot, ...}`` in plain numpy/python objects."""
        out: dict[str, Any] = {"config": self._config()}
        for s in self._states.values():
            out[s.name] = s.dump(getattr(self, s.name))
        return out

    def _load(self, state: Mapping[str, Any]) -> None:
        missing = [s.name for s in self._states.values() if s.name not in state]
        if missing:
            raise ValueError(f"{type(self).__name__} state lacks {missing}")
        for s in self._states.values():
            setattr(self, s.name, s.load(state[s.name]))

    def _config(self) -> dict[str, Any]:
        """Constructor arguments, stored in the state so ``from_state`` can rebuild the object."""
        return {}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        obj = cls(**state.get("config", {}))
        obj._load(state)
        return obj

    def _check_same(self, other: Any) -> None:
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        if other._config() != self._config():
            raise ValueError(f"cannot merge {type(self).__name__} accumulators with different settings")


def _sum(mine: Any, theirs: Any) -> Any:
    if isinstance(mine, np.ndarray):
        mine += theirs  # in place: keeps mine's dtype
        return mine
    return mine + theirs


def _max(mine: Any, theirs: Any) -> Any:
    if isinstance(mine, np.ndarray):
        np.maximum(mine, theirs, out=mine)
        return mine
    return max(mine, theirs)


def _disjoint_check(label: str, owner: str) -> Callable[[Any, Any], None]:
    def check(mine: Any, theirs: Any) -> None:
        dup = set(mine) & set(theirs)
        if dup:
            raise ValueError(f"{label} {sorted(dup)[:5]} are in both {owner} accumulators")

    return check


def merge_by_key(mine: dict[str, V], theirs: Mapping[str, V], copy: Callable[[V], V]) -> dict[str, V]:
    """A reduction for dicts of mergeable parts (e.g. one per scene): a key in both is merged in place,
    one only in ``theirs`` is added as ``copy(value)`` so the merged state never aliases ``theirs``."""
    for key, value in theirs.items():
        if key in mine:
            mine[key].merge(value)  # type: ignore[attr-defined]
        else:
            mine[key] = copy(value)
    return mine


def fnum(value: Any) -> float | None:
    """A float for a report, ``None`` for NaN/None (JSON null: "not defined", never a fake 0)."""
    if value is None:
        return None
    v = float(value)
    return None if math.isnan(v) else v


def nanmean(values: Iterable[float | None]) -> float | None:
    """Mean over the defined values; ``None`` when none is defined."""
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return sum(vals) / len(vals) if vals else None


def safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Elementwise num/den with NaN where den == 0 (an undefined ratio, skipped by nanmean)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out
