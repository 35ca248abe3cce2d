"""Grid encodings interpolate exactly and continuously; SH is orthonormal; TV behaves."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nerfseg.radiance.encodings import HASH_PRIMES, GridEncoding, dense_grid, hash_grid, sh_encoding_dim, spherical_harmonics

CUBE = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])


def _randomise(enc: GridEncoding, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in enc.tables:
            t.copy_(torch.randn(t.shape, generator=g))


def _vertex_value(enc: GridEncoding, level: int, ijk: tuple[int, int, int]) -> torch.Tensor:
    """Table row of a vertex, computed independently of the encoder's index code."""
    res = [int(v) for v in enc.level_res[level]]
    table = enc.tables[level]
    if enc.hashed[level]:
        h = (ijk[0] * HASH_PRIMES[0]) ^ (ijk[1] * HASH_PRIMES[1]) ^ (ijk[2] * HASH_PRIMES[2])
        return table[h % table.shape[0]]
    return table[ijk[0] + (res[0] + 1) * (ijk[1] + (res[1] + 1) * ijk[2])]


@pytest.mark.parametrize("log2_table", [20, 6])  # all levels dense / fine levels hashed
def test_hash_grid_exact_at_vertices(log2_table: int) -> None:
    enc = hash_grid(CUBE, num_levels=3, features_per_level=2, log2_table_size=log2_table, base_resolution=4, max_resolution=16)
    _randomise(enc)
    assert any(enc.hashed) == (log2_table == 6)
    g = torch.Generator().manual_seed(1)
    for level in range(enc.num_levels):
        res = int(enc.level_res[level][0])
        ijk = torch.randint(0, res + 1, (20, 3), generator=g)
        x = ijk.float() / res * 2 - 1  # vertex positions in [-1, 1]
        out = enc(x)[:, level * 2 : level * 2 + 2]
        expect = torch.stack([_vertex_value(enc, level, tuple(int(v) for v in row)) for row in ijk])
        torch.testing.assert_close(out, expect, atol=1e-5, rtol=1e-5)


def test_dense_grid_reproduces_linear_functions_and_is_continuous() -> None:
    aabb = torch.tensor([[-1.0, -0.5, -0.25], [1.0, 0.5, 0.25]])
    enc = dense_grid(aabb, resolution=8, features=1)
    res = [int(v) for v in enc.level_res[0]]
    assert res == [8, 4, 2]  # aspect kept
    coef = torch.tensor([0.7, -1.3, 2.1])
    with torch.no_grad():
        k, j, i = torch.meshgrid(*(torch.arange(r + 1) for r in reversed(res)), indexing="ij")
        verts = torch.stack([i, j, k], -1).reshape(-1, 3).float() / torch.tensor(res) * (aabb[1] - aabb[0]) + aabb[0]
        enc.tables[0].copy_((verts @ coef)[:, None] + 0.3)
    g = torch.Generator().manual_seed(2)
    x = aabb[0] + torch.rand(500, 3, generator=g) * (aabb[1] - aabb[0])
    torch.testing.assert_close(enc(x)[:, 0], x @ coef + 0.3, atol=1e-5, rtol=1e-5)
    # continuity across a cell face, for an arbitrary (non-linear) table
    _randomise(enc, 3)
    face = torch.tensor([[0.0, 0.1, 0.05]])  # x = 0 is a vertex plane of the 8-cell axis
    eps = torch.tensor([[1e-5, 0.0, 0.0]])
    torch.testing.assert_close(enc(face - eps), enc(face + eps), atol=1e-3, rtol=0)


def test_hash_grid_continuous_everywhere() -> None:
    enc = hash_grid(CUBE, num_levels=4, features_per_level=2, log2_table_size=8, base_resolution=4, max_resolution=32)
    _randomise(enc)
    g = torch.Generator().manual_seed(4)
    x = torch.rand(2000, 3, generator=g) * 2 - 1
    d = F.normalize(torch.randn(2000, 3, generator=g), dim=-1) * 1e-5
    # a step of 1e-5 moves at most (1e-5 / cell) of the way between values of size ~3
    assert (enc(x + d) - enc(x)).abs().max() < 1e-2


def test_gather_gradient_matches_reference() -> None:
    enc = hash_grid(CUBE, num_levels=2, features_per_level=3, log2_table_size=7, base_resolution=3, max_resolution=9)
    _randomise(enc)
    x = torch.rand(300, 3, generator=torch.Generator().manual_seed(5)) * 2 - 1
    w = torch.randn(300, enc.output_dim, generator=torch.Generator().manual_seed(6))
    (enc(x) * w).sum().backward()
    for level in range(enc.num_levels):
        idx, wt = enc._level_indices(enc.normalise(x), level)
        table = enc.tables[level].detach().clone().requires_grad_(True)
        ref = F.embedding_bag(idx, table, per_sample_weights=wt, mode="sum")
        (ref * w[:, level * 3 : level * 3 + 3]).sum().backward()
        torch.testing.assert_close(enc.tables[level].grad, table.grad, atol=1e-5, rtol=1e-5)


def test_points_outside_the_box_are_clamped() -> None:
    enc = dense_grid(CUBE, resolution=4, features=2)
    _randomise(enc)
    torch.testing.assert_close(enc(torch.tensor([[1.5, 0.2, -0.3]])), enc(torch.tensor([[1.0, 0.2, -0.3]])))


@pytest.mark.parametrize("degree", [1, 2, 3, 4, 5])
def test_spherical_harmonics_orthonormal(degree: int) -> None:
    g = torch.Generator().manual_seed(7)
    d = torch.randn(200_000, 3, generator=g, dtype=torch.float64)
    y = spherical_harmonics(d * 3.0, degree).double()  # unnormalised input is normalised inside
    assert y.shape[1] == sh_encoding_dim(degree) == degree * degree
    gram = 4 * math.pi * (y.T @ y) / d.shape[0]
    torch.testing.assert_close(gram, torch.eye(y.shape[1], dtype=torch.float64), atol=0.03, rtol=0)


def test_tv_loss() -> None:
    enc = dense_grid(CUBE, resolution=32, features=2, levels=2)
    with torch.no_grad():
        for t in enc.tables:
            t.fill_(0.5)
        assert float(enc.tv_loss()) == 0.0
        assert float(enc.tv_loss(num_samples=100)) == 0.0
        _randomise(enc)
        full = float(enc.tv_loss())
        est = float(enc.tv_loss(num_samples=200_000, generator=torch.Generator().manual_seed(8)))
    assert full > 0 and abs(est - full) / full < 0.05
    enc.tv_loss(num_samples=64).backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in enc.tables)


@pytest.mark.parametrize("kind", ["hash", "dense"])
def test_compiled_cpu_levels_equal_the_torch_path(kind, monkeypatch):
    """The numba kernels (CPU default) against the torch ops they replace: same features to float32
    rounding, the same table gradients, a no-grad pass equal to the recorded one, and bit-identical
    results whatever the number of threads the points (forward) and levels (backward) are split over."""
    from nerfseg.radiance import _grid_kernel

    if not _grid_kernel.enabled():
        pytest.skip("numba is not installed")
    torch.manual_seed(0)
    box = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 2.0, 1.0]])
    enc = hash_grid(box, 6, 2, 12, 4, 256) if kind == "hash" else dense_grid(box, 24, 4, 2)
    assert any(enc.hashed) == (kind == "hash")
    for t in enc.tables:
        t.data.uniform_(-1.0, 1.0)
    x = torch.rand(3000, 3) * 3.4 - 1.2  # some points outside the box: clamped onto its faces
    x[:5] = box[1]  # the upper faces
    weights = torch.arange(enc.output_dim, dtype=torch.float32)
    monkeypatch.setattr(_grid_kernel, "MIN_POINTS_PER_THREAD", 500)  # 3000 points: up to 6 threads
    threads_before = torch.get_num_threads()
    results = {}
    try:
        for mode, threads in (("torch", 1), ("numba", 1), ("numba", 3)):
            monkeypatch.setenv("NERFSEG_RADIANCE_KERNEL", mode)
            torch.set_num_threads(threads)
            assert enc._use_kernel(enc.normalise(x)) == (mode == "numba")
            out = enc(x)
            grads = torch.autograd.grad((out * weights).sum(), list(enc.tables))
            with torch.no_grad():
                nograd = enc(x)
            results[mode, threads] = (out.detach(), grads, nograd)
    finally:
        torch.set_num_threads(threads_before)
    (a, ga, na), (b, gb, nb), (c, gc, nc) = results["torch", 1], results["numba", 1], results["numba", 3]
    torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(nb, b, rtol=0, atol=0)
    torch.testing.assert_close(na, a, rtol=0, atol=0)
    for p, q in zip(ga, gb):
        torch.testing.assert_close(q, p, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(c, b, rtol=0, atol=0)
    torch.testing.assert_close(nc, nb, rtol=0, atol=0)
    for q, r in zip(gb, gc):
        torch.testing.assert_close(r, q, rtol=0, atol=0)


def test_compiled_backward_skips_frozen_levels(monkeypatch):
    """A level whose table is frozen gets no gradient, and the others get the same ones as with all trainable."""
    from nerfseg.radiance import _grid_kernel

    if not _grid_kernel.enabled():
        pytest.skip("numba is not installed")
    monkeypatch.delenv("NERFSEG_RADIANCE_KERNEL", raising=False)
    torch.manual_seed(1)
    enc = hash_grid(torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]), 4, 2, 10, 4, 64)
    for t in enc.tables:
        t.data.uniform_(-1.0, 1.0)
    x = torch.rand(2000, 3)
    weights = torch.randn(enc.output_dim)
    full = torch.autograd.grad((enc(x) * weights).sum(), list(enc.tables))
    enc.tables[1].requires_grad_(False)
    out = enc(x)
    assert out.requires_grad
    partial = torch.autograd.grad((out * weights).sum(), [enc.tables[0], enc.tables[2], enc.tables[3]])
    for got, want in zip(partial, (full[0], full[2], full[3])):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
