"""map_scenes: a wrong --executor or a missing ray extra is an InputError when called, before any job runs."""

from __future__ import annotations

import sys

import pytest

from nerfseg.dataset_tools.ray_executor import map_scenes
from nerfseg.errors import InputError


def _square(job: int) -> dict[str, int]:
    return {"job": job, "value": job * job}


def test_unknown_executor_fails_at_the_call_naming_the_choices() -> None:
    ran: list[int] = []
    with pytest.raises(InputError, match=r"\[executor\]: unknown executor 'dask'; expected one of process, ray"):
        map_scenes(lambda job: ran.append(job) or {}, [1, 2], executor="dask")  # not iterated: the call itself fails
    assert ran == []


def test_missing_ray_extra_is_an_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees without the extra
    with pytest.raises(InputError, match=r"needs the ray extra: pip install 'nerfseg\[ray\]'"):
        map_scenes(_square, [1, 2], executor="ray")


def test_in_process_results_are_unchanged() -> None:
    assert list(map_scenes(_square, [1, 2, 3])) == [_square(1), _square(2), _square(3)]
