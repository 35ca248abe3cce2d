"""What every accumulator shares: the reset/update/compute/merge/state contract and small helpers.

Accumulators follow torchmetrics' ``Metric`` and detectron2's ``DatasetEvaluator``: state is declared in
``reset``, ``update`` adds one frame (or scene), ``compute`` turns the state into a plain dict of floats,
and ``merge`` adds another accumulator's state so frames can be split over processes or machines.
``state_dict`` / ``from_state`` give a picklable snapshot of plain numpy/python objects.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import numpy as np
from typing_extensions import Self

T = TypeVar("T", bound="Accumulator")


class Accumulator:
    """Base class; subclasses define ``reset``, ``update``, ``compute``, ``merge``, ``state_dict``, ``_load``."""

    def reset(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def merge(self, other: Self) -> Self:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _load(self, state: Mapping[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

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
