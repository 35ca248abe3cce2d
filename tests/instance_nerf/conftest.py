"""Shared fixtures for the Instance-NeRF tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Torch on one thread: the tiny models here are faster so, and results do not depend on the core count."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
