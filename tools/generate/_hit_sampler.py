r"""The compiled sampling loop of ``calohits``: Poisson hits from template mixtures, then their energy shares.

For one shower and layer l with template intensities a_j (j = 1 … J) and templates T_jk (Σ_k T_jk = 1), the
hits are those of a Poisson process with intensity λ_k = Σ_j a_j T_jk, repeats on a voxel merged, and a hit's
template is that of its last draw — j with probability a_j T_jk / λ_k, as the training likelihood assumes:

1. a core voxel (one the training showers hit in most showers, so λ_k of several and many repeats) is tested
   once: hit with probability 1 − e^{−λ_k}, then its template drawn;
2. elsewhere template j gets N_j ~ Poisson(a_j Σ_{k ∉ core} T_jk) draws (inversion, in chunks of at most 500 so
   that e^{−a} stays a normal float), each a voxel by Walker's alias method (one bucket, one acceptance test);
3. a hit of template j gets the weight w = exp(μ_jk) D^{s_jk}, D = −log(1 − q) ~ Exp(1) for q uniform
   (tabulated: :func:`weight_tables`); the layer's energy E_l is split in proportion to the weights, and cells
   below ε are left at 0. A layer with E_l ≥ ε and no hit puts E_l into the peak voxel of its template
   with the largest a_j max_k T_jk (the peak of λ when the templates peak together); a layer with E_l < ε
   stays empty.

Why compiled (numba): a full-grid shower has ≈ 650 hits, so each hit may cost only a few tens of ns; numpy
needs ≈ 15 passes over per-draw arrays (≈ 100 ns per draw, measured), one loop does the whole shower while its
layer stays in cache (≈ 20 µs per full-grid shower on one core of our VM). Where a branch would depend on a
coin flip (a core voxel hit or not, its template, a repeated voxel, the alias test) the loop computes both
sides: mispredicted branches made the core tests 2.5× slower. Random numbers come from SplitMix64 (Steele et al.,
OOPSLA 2014) seeded by one 64-bit key per shower, so a shower depends on its key alone, not on the batch.
Alias tables: Vose, "A linear algorithm for generating random numbers with a given distribution" (1991).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["alias_tables", "hit_tables", "sample_hits", "weight_tables"]

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_LOW_32 = np.uint64(0xFFFFFFFF)
_LOW_31 = np.uint64(0x7FFFFFFF)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2⁻⁵³
_POISSON_CHUNK = 500.0
_MAX_COUNT = 4096  # per chunk of mean ≤ 500: P(N > 4096) is far below 2⁻⁵³
_INVERSE = 1.0 / np.maximum(np.arange(_MAX_COUNT + 1), 1.0)  # 1/k: a multiplication, not a division, per step


@njit(cache=True, inline="always")
def _next(state: np.uint64) -> tuple[np.uint64, np.uint64]:
    """SplitMix64: the next state and its 64-bit output."""
    state = state + _GAMMA
    z = state
    z = (z ^ (z >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    return state, z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def _uniform(state: np.uint64) -> tuple[np.uint64, float]:
    """The next state and u ∈ (0, 1) from the top 53 bits (+ ½, never 0 or 1)."""
    state, word = _next(state)
    return state, ((word >> np.uint64(11)) + 0.5) * _TO_UNIT


@njit(cache=True)
def _poisson(state: np.uint64, mean: float) -> tuple[np.uint64, int]:
    """N ~ Poisson(mean) by inversion, summed over chunks of at most 500 (O(mean) steps)."""
    count = 0
    while mean > 0.0:
        part = min(mean, _POISSON_CHUNK)
        mean -= part
        state, u = _uniform(state)
        p = math.exp(-part)
        cumulative, k = p, 0
        while u > cumulative and k < _MAX_COUNT:
            k += 1
            p *= part * _INVERSE[k]
            cumulative += p
        count += k
    return state, count


@njit(cache=True)
def alias_tables(templates: np.ndarray) -> np.ndarray:
    """Walker alias tables of probability rows (…, K), one uint64 word per bucket: the acceptance threshold in
    units of 2⁻³¹ (high 32 bits) and the alias (low 32 bits), so that bucket b ~ U{0 … K−1} and v ~ U{0 … 2³¹ − 1}
    give b if v < threshold_b else alias_b. One word: one memory read per draw."""
    rows = templates.reshape(-1, templates.shape[-1])
    n_rows, k = rows.shape
    accept = np.empty((n_rows, k), np.uint64)
    alias = np.empty((n_rows, k), np.uint64)
    for r in range(n_rows):
        scaled = rows[r] * (k / rows[r].sum())
        small = [i for i in range(k) if scaled[i] < 1.0]
        large = [i for i in range(k) if scaled[i] >= 1.0]
        alias[r] = np.arange(k).astype(np.uint64)
        while small and large:
            s, g = small.pop(), large.pop()
            accept[r, s] = np.uint64(scaled[s] * 2147483648.0)
            alias[r, s] = g
            scaled[g] -= 1.0 - scaled[s]
            if scaled[g] < 1.0:
                small.append(g)
            else:
                large.append(g)
        for i in small + large:  # what rounding left over: accept always
            accept[r, i] = np.uint64(2147483648)
    return ((accept << np.uint64(32)) | alias).reshape(templates.shape)


def hit_tables(templates: np.ndarray, core: np.ndarray, location: np.ndarray, log_scale: np.ndarray
               ) -> tuple[np.ndarray, ...]:
    """The tables :func:`sample_hits` reads, from templates T (L, J, K) (rows summing to 1), the core voxels
    (L, K) bool, and the log-share locations and log scales (L, J, K).

    Core voxels (those the data hits in most showers) are tested one by one, Bernoulli(1 − e^{−λ_k}): as
    Poisson draws they would be drawn again and again (λ_k of several), and every repeat costs a draw."""
    halo = templates * ~core[:, None, :]
    mass = halo.sum(-1)
    rows = np.where(mass[..., None] > 0, halo / np.maximum(mass, 1e-300)[..., None], 1.0 / templates.shape[-1])
    alias = alias_tables(rows)
    counts = core.sum(-1)
    index = np.zeros((len(core), max(int(counts.max()), 1)), np.int64)
    for layer, voxels in enumerate(core):
        index[layer, :counts[layer]] = np.flatnonzero(voxels)
    core_templates = np.take_along_axis(templates, index[:, None, :], -1).transpose(0, 2, 1).copy()  # (L, C, J)
    return (index, counts.astype(np.int64), core_templates, mass, alias, templates.max(-1), templates.argmax(-1),
            *weight_tables(location, log_scale))


@njit(cache=True, nogil=True)
def sample_hits(intensity: np.ndarray, layer_e: np.ndarray, keys: np.ndarray, tables: tuple[np.ndarray, ...],
                noise_mev: float, cells: np.ndarray) -> None:
    """Fill ``cells`` (B, L, K) float32, zero on entry, with the sampled showers.

    Args:
        intensity: a_j per shower and layer (B, L, J), expected draws of each template.
        layer_e: the stage-1 layer energies (B, L) [MeV].
        keys: one 64-bit seed per shower (B,) uint64.
        tables: from :func:`hit_tables`: core voxels (L, C), their counts (L,) and templates (L, C, J), the
            templates' mass outside the core (L, J) with its alias words (L, J, K), each template's largest
            value and its voxel (L, J), exp(μ) (L, J, K), scale
            levels (L, J, K), exp(s Q_m) (levels, M) for the quantiles Q_m = log(−log(1 − (m + ½) / M)) of log D.
        noise_mev: ε; cells below it stay 0.
    """
    n_showers, n_layers, _ = intensity.shape
    n_cells = cells.shape[2]
    stamp = np.full(n_cells, -1, np.int64)  # the (shower, layer) that last hit a voxel: merges repeated draws
    chosen = np.empty(n_cells, np.int64)  # the template of each voxel's last draw
    hit = np.empty(n_cells + 1, np.int64)  # one spare: a repeat is written before it is counted out
    weight = np.empty(n_cells, np.float64)
    for i in range(n_showers):
        state = keys[i]
        for layer in range(n_layers):
            if layer_e[i, layer] >= noise_mev:
                state = _layer(intensity[i, layer], layer_e[i, layer], state, (i * n_layers + layer, layer), tables,
                               noise_mev, (stamp, chosen, hit, weight), cells[i, layer])


@njit(cache=True, inline="always")  # inlined: no per-layer call passing a dozen arrays with their reference counts
def _layer(a: np.ndarray, energy: float, state: np.uint64, tag: tuple[int, int], tables: tuple[np.ndarray, ...],
           noise_mev: float, scratch: tuple[np.ndarray, ...], out: np.ndarray) -> np.uint64:
    """One layer: core voxels, then draws per template elsewhere, merged hits, their weights, and the energies
    written to ``out`` (K,)."""
    core, core_count, core_templates, mass, alias, peak_value, peak, exp_location, level, spread = tables
    stamp, chosen, hit, weight = scratch
    shower_layer, layer = tag
    n_cells, n_templates, n_quantiles = out.shape[0], a.shape[0], spread.shape[1]
    n_hits = 0
    for c in range(core_count[layer]):  # hit when Poisson(λ_k) ≥ 1; its template that of the last draw
        k = core[layer, c]
        lam = 0.0
        for j in range(n_templates):
            lam += a[j] * core_templates[layer, c, j]
        # branch-free (the hit and the template are coin flips a branch predictor gets wrong): 2.5× faster
        state, u = _uniform(state)
        state, v = _uniform(state)
        target, cumulative, j = v * lam, 0.0, 0
        for below in range(n_templates - 1):
            cumulative += a[below] * core_templates[layer, c, below]
            j += int(target > cumulative)
        hit[n_hits], chosen[k] = k, j
        n_hits += int(1.0 - u > math.exp(-lam))
    for j in range(n_templates):  # a Poisson process per template: no per-draw choice of template (a branch)
        state, n_draws = _poisson(state, a[j] * mass[layer, j])
        for _ in range(n_draws):
            state, word = _next(state)
            bucket = np.int64(((word >> np.uint64(32)) * np.uint64(n_cells)) >> np.uint64(32))
            entry = alias[layer, j, bucket]
            keep = np.int64((word & _LOW_31) < (entry >> np.uint64(32)))
            k = keep * bucket + (1 - keep) * np.int64(entry & _LOW_32)  # branch-free: the test is a coin flip
            hit[n_hits] = k  # kept only if k is new to this layer (branch-free: repeats happen)
            n_hits += int(stamp[k] != shower_layer)
            stamp[k] = shower_layer
            chosen[k] = j
    if n_hits == 0:  # the peak of the template with the largest a_j max_k T_jk (λ's peak when they share it)
        best = 0
        for j in range(1, n_templates):
            best = j if a[j] * peak_value[layer, j] > a[best] * peak_value[layer, best] else best
        out[peak[layer, best]] = energy
        return state
    total_weight = 0.0
    for h in range(n_hits):
        k = hit[h]
        j = chosen[k]
        state, word = _next(state)
        m = np.int64(((word >> np.uint64(32)) * np.uint64(n_quantiles)) >> np.uint64(32))
        weight[h] = exp_location[layer, j, k] * spread[level[layer, j, k], m]
        total_weight += weight[h]
    scale = energy / total_weight
    for h in range(n_hits):
        e = weight[h] * scale
        out[hit[h]] = e * (e >= noise_mev)
    return state


def weight_tables(location: np.ndarray, log_scale: np.ndarray, n_levels: int = 64, n_quantiles: int = 1024
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tabulated hit weights exp(μ + s Q): (exp(μ), the level of each log s on a grid of ``n_levels`` between
    their extremes, exp(s_level Q_m) (levels, M)) for M = ``n_quantiles`` quantiles Q_m of log D, D ~ Exp(1).

    Why tables: a log and an exp per hit cost as much as all the rest of a hit; the grid of log s is at most
    (max − min) / 63 off (a few per cent of s), and M = 1024 quantiles reach D from 5·10⁻⁴ to 7.6 (the float32
    table, 256 kB, stays in the L2 cache)."""
    low, high = float(log_scale.min()), float(log_scale.max())
    step = max(high - low, 1e-6) / (n_levels - 1)
    level = np.rint((log_scale - low) / step).astype(np.int64)
    scales = np.exp(low + step * np.arange(n_levels))
    u = (np.arange(n_quantiles) + 0.5) / n_quantiles
    spread = np.exp(np.minimum(scales[:, None] * np.log(-np.log1p(-u))[None, :], 30.0)).astype(np.float32)
    return np.exp(np.minimum(location, 30.0)).astype(np.float32), level.astype(np.int32), spread
