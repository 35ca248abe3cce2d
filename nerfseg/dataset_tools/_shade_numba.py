"""The numba-jitted loops behind ``shade_kernels.py`` (imported on first use: importing numba costs ~0.5 s).

Every loop repeats the numpy reference path of ``raycast.SceneRaycaster.shade`` operation for operation:
the same precision (float32 for the per-pixel shading, float64 where the reference computes in float64:
hit points, tangent frames, texture lookups, albedo), the same evaluation order of each sum, and no
fused multiply-adds (numba does not contract without ``fastmath``), so the images come out identical.
The loops are serial and release the GIL (``nogil``), like the other kernels of the package.
"""

from __future__ import annotations

import numba
import numpy as np

#: error_model="numpy": a division by zero gives inf/nan as in numpy instead of a Python exception, so no
#: per-division branch keeps LLVM from vectorising the loops
_jit = numba.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy")
#: per-pixel helpers, inlined so that a call does not pass (and reference-count) a dozen arrays
_inline = numba.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy", inline="always")


@_jit
def shading_frame(
    idx: np.ndarray,
    dirs: np.ndarray,
    tri: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    face_normals: np.ndarray,
    corner_normals: np.ndarray,
    glow_tri: np.ndarray,
    p32: np.ndarray,
    ng: np.ndarray,
    ns: np.ndarray,
    t1: np.ndarray,
    t2: np.ndarray,
    start: np.ndarray,
    glow: np.ndarray,
) -> None:
    """Per shaded ray ``i`` (primary ray ``idx[i]``): hit point (float32 copy of the float64 point),
    geometric and shading normals towards the viewer (3,N), AO tangents (3,N), secondary-ray start
    (N,3) and whether the surface is emissive (reference: ``_shading_frame``, ``_tangent_frame``)."""
    one = np.float32(1.0)
    zero = np.float32(0.0)
    tiny = np.float32(1e-12)
    for i in range(idx.shape[0]):
        j = idx[i]
        t = tri[j]
        uf = u[j]
        vf = v[j]
        ud = np.float64(uf)
        vd = np.float64(vf)
        wd = 1.0 - ud - vd
        a, b, c = faces[t, 0], faces[t, 1], faces[t, 2]
        px = wd * vertices[a, 0] + ud * vertices[b, 0] + vd * vertices[c, 0]
        py = wd * vertices[a, 1] + ud * vertices[b, 1] + vd * vertices[c, 1]
        pz = wd * vertices[a, 2] + ud * vertices[b, 2] + vd * vertices[c, 2]
        p32[0, i] = np.float32(px)
        p32[1, i] = np.float32(py)
        p32[2, i] = np.float32(pz)
        g0 = np.float32(face_normals[t, 0])
        g1 = np.float32(face_normals[t, 1])
        g2 = np.float32(face_normals[t, 2])
        facing = -one if g0 * dirs[j, 0] + g1 * dirs[j, 1] + g2 * dirs[j, 2] > zero else one
        g0 *= facing
        g1 *= facing
        g2 *= facing
        w = one - uf - vf
        s0 = (w * np.float32(corner_normals[t, 0, 0]) + uf * np.float32(corner_normals[t, 1, 0]) + vf * np.float32(corner_normals[t, 2, 0])) * facing
        s1 = (w * np.float32(corner_normals[t, 0, 1]) + uf * np.float32(corner_normals[t, 1, 1]) + vf * np.float32(corner_normals[t, 2, 1])) * facing
        s2 = (w * np.float32(corner_normals[t, 0, 2]) + uf * np.float32(corner_normals[t, 1, 2]) + vf * np.float32(corner_normals[t, 2, 2])) * facing
        s_len = np.sqrt(s0 * s0 + s1 * s1 + s2 * s2)
        if s_len > tiny and s0 * g0 + s1 * g1 + s2 * g2 > zero:
            s0, s1, s2 = s0 / s_len, s1 / s_len, s2 / s_len
        else:
            s0, s1, s2 = g0, g1, g2
        ng[0, i], ng[1, i], ng[2, i] = g0, g1, g2
        ns[0, i], ns[1, i], ns[2, i] = s0, s1, s2
        bias = 1e-4 * (1.0 + max(abs(px), abs(py), abs(pz)))
        start[i, 0] = np.float32(px + np.float64(g0) * bias)
        start[i, 1] = np.float32(py + np.float64(g1) * bias)
        start[i, 2] = np.float32(pz + np.float64(g2) * bias)
        _tangents(np.float64(s0), np.float64(s1), np.float64(s2), t1, t2, i)
        glow[i] = glow_tri[t]


@_inline
def _tangents(n0: float, n1: float, n2: float, t1: np.ndarray, t2: np.ndarray, i: int) -> None:
    """t1 = unit(helper x n), t2 = n x t1 in float64, stored as float32 (reference: ``_tangent_frame``)."""
    h0, h1 = (1.0, 0.0) if abs(n0) < 0.9 else (0.0, 1.0)
    h2 = 0.0
    c0 = h1 * n2 - h2 * n1
    c1 = h2 * n0 - h0 * n2
    c2 = h0 * n1 - h1 * n0
    norm = np.sqrt(c0 * c0 + c1 * c1 + c2 * c2)
    if norm > 0.0:
        c0, c1, c2 = c0 / norm, c1 / norm, c2 / norm
    else:
        c0, c1, c2 = 0.0, 0.0, 0.0
    t1[0, i], t1[1, i], t1[2, i] = np.float32(c0), np.float32(c1), np.float32(c2)
    t2[0, i] = np.float32(n1 * c2 - n2 * c1)
    t2[1, i] = np.float32(n2 * c0 - n0 * c2)
    t2[2, i] = np.float32(n0 * c1 - n1 * c0)


@_jit
def light_contributions(
    p32: np.ndarray,
    ng: np.ndarray,
    ns: np.ndarray,
    glow: np.ndarray,
    lpos: np.ndarray,
    lnorm: np.ndarray,
    lobed: np.ndarray,
    intensity: np.ndarray,
    rmin2: np.float32,
    contrib: np.ndarray,
) -> None:
    """contrib[k, i]: light k's unshadowed irradiance at point i (reference: ``_unshadowed``)."""
    zero = np.float32(0.0)
    one = np.float32(1.0)
    tiny = np.float32(1e-20)
    n = p32.shape[1]
    px, py, pz = p32[0], p32[1], p32[2]
    for k in range(lpos.shape[0]):
        l0, l1, l2 = lpos[k, 0], lpos[k, 1], lpos[k, 2]
        m0, m1, m2 = lnorm[k, 0], lnorm[k, 1], lnorm[k, 2]
        inten = intensity[k]
        has_lobe = lobed[k]
        out = contrib[k]
        for i in range(n):  # branch-free (selects), so that LLVM vectorises it
            tx = l0 - px[i]
            ty = l1 - py[i]
            tz = l2 - pz[i]
            r2 = tx * tx + ty * ty + tz * tz
            inv_r = one / np.sqrt(r2 if r2 > tiny else tiny)
            cos_p = (ns[0, i] * tx + ns[1, i] * ty + ns[2, i] * tz) * inv_r
            lobe = -(m0 * tx + m1 * ty + m2 * tz) * inv_r
            lobe = lobe if has_lobe else one
            lit = (cos_p > zero) & (lobe > zero) & (ng[0, i] * tx + ng[1, i] * ty + ng[2, i] * tz > zero) & (not glow[i])
            value = inten * lobe * cos_p / (r2 if r2 > rmin2 else rmin2)
            out[i] = value if lit else zero


@_jit
def shadow_need(contrib: np.ndarray, ambient_share: np.float32, cull: np.float32, need: np.ndarray) -> None:
    """need[k, i]: light k's shadow ray is worth casting at i (reference: the ``need`` lists of ``_shadow``;
    with ``cull`` > 0 the light's share must exceed cull x (all lights + ambient))."""
    zero = np.float32(0.0)
    n_lights, n = contrib.shape
    for i in range(n):
        floor = zero
        if cull > zero and n_lights > 0:
            total = contrib[0, i]
            for k in range(1, n_lights):
                total += contrib[k, i]
            floor = (total + ambient_share) * cull
        for k in range(n_lights):
            need[k, i] = contrib[k, i] > floor


@_jit
def probe_agreement(need: np.ndarray, blocked: np.ndarray, probes: np.ndarray, agree: np.ndarray, answer: np.ndarray) -> None:
    """agree[i]: every probe sample needed a ray at i and all of them got the same answer[i]."""
    for i in range(need.shape[1]):
        first = blocked[probes[0], i]
        ok = True
        for k in probes:
            ok = ok and need[k, i] and blocked[k, i] == first
        agree[i] = ok
        answer[i] = first


@_jit
def gather_shadow_rays(
    need_k: np.ndarray,
    agree: np.ndarray,
    answer: np.ndarray,
    start: np.ndarray,
    p32: np.ndarray,
    lpos: np.ndarray,
    k: int,
    blocked_k: np.ndarray,
    origins: np.ndarray,
    dirs: np.ndarray,
    idx: np.ndarray,
) -> int:
    """Writes the shadow rays toward light k of the points that need one and are not settled by the
    probes (those take ``answer``) into ``origins``/``dirs``/``idx``; returns their count."""
    m = 0
    l0, l1, l2 = lpos[k, 0], lpos[k, 1], lpos[k, 2]
    for i in range(need_k.shape[0]):
        if not need_k[i]:
            continue
        if agree[i]:
            blocked_k[i] = answer[i]
            continue
        _put_ray(origins, dirs, idx, m, i, start, l0 - p32[0, i], l1 - p32[1, i], l2 - p32[2, i])
        m += 1
    return m


@_inline
def _put_ray(origins: np.ndarray, dirs: np.ndarray, idx: np.ndarray, m: int, i: int, start: np.ndarray, d0: np.float32, d1: np.float32, d2: np.float32) -> None:
    """Ray m of a batch: from shaded ray i's secondary-ray start along (d0, d1, d2)."""
    origins[m, 0], origins[m, 1], origins[m, 2] = start[i, 0], start[i, 1], start[i, 2]
    dirs[m, 0], dirs[m, 1], dirs[m, 2] = d0, d1, d2
    idx[m] = i


@_jit
def scatter_blocked(hit_prim: np.ndarray, idx: np.ndarray, blocked_k: np.ndarray) -> None:
    """blocked_k[idx[j]] = the j-th occlusion query found something (embree's -1 = nothing)."""
    for j in range(hit_prim.shape[0]):
        blocked_k[idx[j]] = hit_prim[j] != -1


@_jit
def gather_ao_rays(
    a: np.float32,
    b: np.float32,
    c: np.float32,
    t1: np.ndarray,
    t2: np.ndarray,
    ns: np.ndarray,
    ng: np.ndarray,
    glow: np.ndarray,
    start: np.ndarray,
    origins: np.ndarray,
    dirs: np.ndarray,
    idx: np.ndarray,
) -> int:
    """Writes the ambient-occlusion rays along local direction (a, b, c) of the points where it leaves the
    surface on the viewer's side (reference: ``_ambient``); returns their count."""
    zero = np.float32(0.0)
    m = 0
    for i in range(ns.shape[1]):
        if glow[i]:
            continue
        r0 = a * t1[0, i] + b * t2[0, i] + c * ns[0, i]
        r1 = a * t1[1, i] + b * t2[1, i] + c * ns[1, i]
        r2 = a * t1[2, i] + b * t2[2, i] + c * ns[2, i]
        if not r0 * ng[0, i] + r1 * ng[1, i] + r2 * ng[2, i] > zero:
            continue
        _put_ray(origins, dirs, idx, m, i, start, r0, r1, r2)
        m += 1
    return m


@_jit
def count_occluded(hit_prim: np.ndarray, idx: np.ndarray, count: np.ndarray) -> None:
    """count[idx[j]] += 1 where the j-th ambient-occlusion ray was blocked."""
    for j in range(hit_prim.shape[0]):
        if hit_prim[j] != -1:
            count[idx[j]] += 1


@_inline
def _bilinear(atlas: np.ndarray, off: int, h: int, w: int, uu: float, vv: float) -> tuple[float, float, float]:
    """float64 texel value (3 channels) at uv, bilinear, wrapping (reference: ``bilinear_lookup``)."""
    x = (uu % 1.0) * w - 0.5
    y = (1.0 - (vv % 1.0)) * h - 0.5
    fx0 = np.floor(x)
    fy0 = np.floor(y)
    fx = x - fx0
    fy = y - fy0
    x0 = np.int64(fx0) % w
    y0 = np.int64(fy0) % h
    x1 = (x0 + 1) % w
    y1 = (y0 + 1) % h
    i00 = off + (y0 * w + x0) * 3
    i01 = off + (y0 * w + x1) * 3
    i10 = off + (y1 * w + x0) * 3
    i11 = off + (y1 * w + x1) * 3
    return (
        _lerp4(atlas, i00, i01, i10, i11, fx, fy),
        _lerp4(atlas, i00 + 1, i01 + 1, i10 + 1, i11 + 1, fx, fy),
        _lerp4(atlas, i00 + 2, i01 + 2, i10 + 2, i11 + 2, fx, fy),
    )


@_inline
def _lerp4(atlas: np.ndarray, i00: int, i01: int, i10: int, i11: int, fx: float, fy: float) -> float:
    """One channel of the bilinear sum, in the reference's order and float64."""
    return (
        np.float64(atlas[i00]) * (1 - fx) * (1 - fy)
        + np.float64(atlas[i01]) * fx * (1 - fy)
        + np.float64(atlas[i10]) * (1 - fx) * fy
        + np.float64(atlas[i11]) * fx * fy
    )


@_inline
def _texture_albedo(t, part, uf, vf, faces, uvs, color_lin, atlas, tex_off, tex_h, tex_w):  # noqa: ANN001, ANN202
    """float64 linear albedo (3 channels) of a textured part: colour x bilinear texel, linearised with gamma
    2.2 (raycast.GAMMA, checked by ``shade_kernels.ShadeKernels``) (reference: ``albedo``)."""
    ud = np.float64(uf)
    vd = np.float64(vf)
    wd = 1.0 - ud - vd
    a, bb, c = faces[t, 0], faces[t, 1], faces[t, 2]
    uu = wd * np.float64(uvs[a, 0]) + ud * np.float64(uvs[bb, 0]) + vd * np.float64(uvs[c, 0])
    vv = wd * np.float64(uvs[a, 1]) + ud * np.float64(uvs[bb, 1]) + vd * np.float64(uvs[c, 1])
    x0, x1, x2 = _bilinear(atlas, tex_off[part], tex_h[part], tex_w[part], uu, vv)
    r = color_lin[part, 0] * min(max(x0 / 255.0, 0.0), 1.0) ** 2.2
    g = color_lin[part, 1] * min(max(x1 / 255.0, 0.0), 1.0) ** 2.2
    b = color_lin[part, 2] * min(max(x2 / 255.0, 0.0), 1.0) ** 2.2
    return r, g, b


@_jit
def light_sum(contrib: np.ndarray, blocked: np.ndarray, occluded: np.ndarray, n_ao: int, ambient: np.float32, light_scale: np.float32, out: np.ndarray) -> None:
    """out[i] = (sum of the unblocked lights' irradiance) x scale + ambient x open AO fraction, float32 in the
    reference's order (a blocked light adds +0.0 there, which changes no sum); one pass per light so that
    LLVM vectorises it."""
    zero = np.float32(0.0)
    n = out.shape[0]
    for i in range(n):
        out[i] = zero
    for k in range(contrib.shape[0]):
        c = contrib[k]
        b = blocked[k]
        for i in range(n):
            out[i] += zero if b[i] else c[i]
    inv = np.float32(max(n_ao, 1))
    for i in range(n):
        amb = ambient * (np.float32(n_ao - np.int64(occluded[i])) / inv) if n_ao > 0 else ambient
        out[i] = out[i] * light_scale + amb


@_jit
def shaded_radiance(idx, tri, u, v, glow, light, tri_part, glow_scale, faces, uvs, color_lin, textured, atlas, tex_off, tex_h, tex_w, out):  # noqa: ANN001, ANN201
    """out (N,3) float32: linear radiance of each shaded ray i (primary ray idx[i]): emission, or albedo x
    light (reference: the end of ``shade``). The three cases are separate branches: routing the common
    untextured pixel through the texture helper's tuple made the loop ~10x slower."""
    for i in range(idx.shape[0]):
        j = idx[i]
        t = tri[j]
        part = tri_part[t]
        if glow[i]:
            s = glow_scale[part]
            out[i, 0] = np.float32(color_lin[part, 0] * s)
            out[i, 1] = np.float32(color_lin[part, 1] * s)
            out[i, 2] = np.float32(color_lin[part, 2] * s)
        elif textured[part]:
            r, g, b = _texture_albedo(t, part, u[j], v[j], faces, uvs, color_lin, atlas, tex_off, tex_h, tex_w)
            out[i, 0] = np.float32(r) * light[i]
            out[i, 1] = np.float32(g) * light[i]
            out[i, 2] = np.float32(b) * light[i]
        else:
            out[i, 0] = np.float32(color_lin[part, 0]) * light[i]
            out[i, 1] = np.float32(color_lin[part, 1]) * light[i]
            out[i, 2] = np.float32(color_lin[part, 2]) * light[i]


@_inline
def _tone(x: np.float32, exposure: np.float32, w2: np.float32, inv_gamma: np.float32) -> np.uint8:
    """Reference: ``SceneRaycaster.tone_map`` on one float32 value."""
    zero = np.float32(0.0)
    one = np.float32(1.0)
    x = max(x, zero) * exposure
    mapped = x * (one + x / w2) / (one + x)
    mapped = min(max(mapped, zero), one)
    return np.uint8(np.rint(mapped**inv_gamma * np.float32(255.0)))


@_jit
def tone_rgb(idx: np.ndarray, radiance: np.ndarray, exposure: np.float32, w2: np.float32, inv_gamma: np.float32, out: np.ndarray) -> None:
    """out[idx[i]] (uint8 RGB) = tone-mapped radiance[i] (the other rows are left as they are)."""
    for i in range(idx.shape[0]):
        j = idx[i]
        for ch in range(3):
            out[j, ch] = _tone(radiance[i, ch], exposure, w2, inv_gamma)
