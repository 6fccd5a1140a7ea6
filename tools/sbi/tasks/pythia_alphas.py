r"""``pythia_alphas``: the final-state shower coupling α_s(m_Z) of Pythia8 from hadronic Z decays at LEP.

θ = α_s, Pythia's ``TimeShower:alphaSvalue`` (the final-state shower's α_s(m_Z); Monash tune 0.1365), prior
U(0.10, 0.16) (``alpha_s_range``). One simulation is one Pythia8 run of ``events_per_simulation`` (500) events
e+e− → γ*/Z → qq̄ (q = d, u, s, c, b) at √s = 91.2 GeV, without initial-state photon radiation
(``PDF:lepton = off``, as in Pythia's LEP examples), seeded per simulation. x is five means over the events,
computed from the visible final state (neutrinos dropped); all grow or shrink with α_s as more gluons are
radiated:

- ``n_charged``: charged-particle multiplicity (grows);
- ``one_minus_thrust``: 1 − T, T = max_n Σ|p·n| / Σ|p| (grows; the axis from iterating n → Σ sign(p·n) p from
  the eight sign combinations of the four hardest momenta, Brandt et al. 1964's thrust);
- ``neg_ln_y23``: −ln y₂₃, the Durham resolution at which the event turns from three jets into two (shrinks);
- ``n_jets_durham``: exclusive Durham jets at y_cut = 0.005 (grows);
- ``jet_mass_gev``: mass of the two jets of the exclusive two-jet Durham clustering, in GeV (grows).

Durham (e+e− k_t) with FastJet: y_ij = 2 min(E_i², E_j²)(1 − cos θ_ij)/E_vis². Simulations run in worker
processes (``PHYSAGENT_WORKERS``), or as Dask tasks when a cluster is configured (``PHYSAGENT_CLUSTER``); a
run that fails gives a NaN row, as does an α_s outside Pythia's allowed 0.06–0.25. There is no tractable
likelihood: no reference posterior and no likelihood interval.

References: C. Bierlich et al., SciPost Phys. Codebases 8 (2022), arXiv:2203.11601 (Pythia 8.3); P. Skands,
S. Carrazza, J. Rojo, Eur. Phys. J. C 74 (2014) 3024, arXiv:1404.5630 (Monash tune); S. Catani et al., Phys.
Lett. B 269 (1991) 432 (Durham algorithm); M. Cacciari, G. Salam, G. Soyez, arXiv:1111.6097 (FastJet).
"""

from __future__ import annotations

import logging
import math
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import as_completed
from typing import Any

import numpy as np

from physagent.tools._cluster import cluster_client
from physagent.tools._errors import ToolInputError
from physagent.tools._pdg import is_invisible
from physagent.tools._stdio import capture_fd_stdout
from physagent.tools._workers import worker_count, worker_pool
from physagent.tools.sbi._task import (
    N_OBSERVATIONS,
    Observation,
    Parameter,
    observation_seed,
    register_task,
    with_defaults,
)
from physagent.tools.simulate import _pythia

__all__ = ["DEFAULT_OPTIONS", "OBSERVABLES", "PythiaAlphasTask", "event_statistics", "pythia_alphas_task"]

NAME = "pythia_alphas"
DEFAULT_OPTIONS: dict[str, Any] = {"events_per_simulation": 500, "alpha_s_range": (0.10, 0.16)}
OBSERVABLES = ("n_charged", "one_minus_thrust", "neg_ln_y23", "n_jets_durham", "jet_mass_gev")
MONASH_ALPHA_S = 0.1365
PYTHIA_ALPHA_S_RANGE = (0.06, 0.25)  # TimeShower:alphaSvalue's allowed range; Pythia clamps values outside it
MAX_EVENTS = 100_000
Y_CUT = 0.005
LEP_SETTINGS = (
    "Beams:idA = 11", "Beams:idB = -11", "Beams:eCM = 91.2", "PDF:lepton = off",
    "WeakSingleBoson:ffbar2gmZ = on", "23:onMode = off", "23:onIfAny = 1 2 3 4 5",
)
# Measured (CPU seconds, one worker, 2 shared cores): Pythia's construction and init cost ≈ 0.4 s per simulation,
# then ≈ 0.4 ms per event (generation, thrust and Durham clustering): 0.48 s at 200 events,
# 0.60 s at 500. The default of 500 events costs ~25 % more than 200 for 1.6 × less noise: one statistic then
# resolves α_s to ≈ 0.003, against ≈ 0.0045 at 200 (prior width 0.06).
_SECONDS_INIT, _SECONDS_PER_EVENT = 0.4, 0.0004
_THRUST_CHUNK = 1000  # events per vectorised thrust block (memory ∝ chunk × 8 axes × particles)
_THRUST_SIGNS = np.array([[1, a, b, c] for a in (1, -1) for b in (1, -1) for c in (1, -1)], dtype=float)
_log = logging.getLogger(__name__)


@register_task(NAME)
def pythia_alphas_task(**options: Any) -> PythiaAlphasTask:
    """The ``pythia_alphas`` task with ``options`` (see :data:`DEFAULT_OPTIONS`) in place of the defaults.

    Raises:
        ToolInputError: an unknown option, or a value outside what it allows.
    """
    return PythiaAlphasTask(with_defaults(NAME, options, DEFAULT_OPTIONS))


class PythiaAlphasTask:
    """Pythia8's final-state shower α_s from event shapes and jets of e+e− → Z → hadrons (see the module doc)."""

    name = NAME
    parameters = (Parameter("alpha_s", "", "final-state shower coupling alpha_s(m_Z), "
                            "Pythia's TimeShower:alphaSvalue (Monash 0.1365)"),)
    observables = OBSERVABLES

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = _checked_options(options)
        n_events = self.options["events_per_simulation"]
        lo, hi = self.options["alpha_s_range"]
        self.seconds_per_simulation = _SECONDS_INIT + _SECONDS_PER_EVENT * n_events
        self.description = (
            f"Pythia8 e+e- -> Z -> hadrons at sqrt(s) = 91.2 GeV, {n_events} events per simulation: infer the "
            f"final-state shower coupling alpha_s (TimeShower:alphaSvalue, prior U({lo:g}, {hi:g}), Monash "
            f"{MONASH_ALPHA_S}) from event means of the charged multiplicity, 1 - thrust, -ln y23 and the "
            "number of Durham jets at y_cut = 0.005, and the mass of the two Durham jets (Bierlich et al., "
            "arXiv:2203.11601). No tractable likelihood: no reference posterior.")
        self._observations: dict[int, Observation] = {}

    def prior(self) -> Any:
        """U(alpha_s_range) as an ``sbi`` ``BoxUniform`` (float32)."""
        import torch
        from sbi.utils import BoxUniform

        lo, hi = self.options["alpha_s_range"]
        return BoxUniform(low=torch.tensor([lo], dtype=torch.float32), high=torch.tensor([hi], dtype=torch.float32))

    def simulate(self, theta: np.ndarray, seed: int, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """The five statistics for each α_s row of θ (n, 1), one Pythia run per row in worker processes.

        Row i is seeded from (seed, i), so it does not depend on the other rows or the worker count.
        ``progress`` gets the number of rows finished so far. Failed runs and α_s outside Pythia's allowed
        range give NaN rows.
        """
        theta = np.asarray(theta, dtype=float)
        if theta.ndim != 2 or theta.shape[1] != 1:
            raise ValueError(f"{NAME}.simulate: theta must have shape (n, 1) for alpha_s, got {theta.shape}")
        x = np.full((len(theta), len(OBSERVABLES)), np.nan)
        alpha_s = theta[:, 0]
        runnable = np.isfinite(alpha_s) & (alpha_s >= PYTHIA_ALPHA_S_RANGE[0]) & (alpha_s <= PYTHIA_ALPHA_S_RANGE[1])
        seeds = [_row_seed(seed, i) for i in range(len(theta))]
        jobs = [(int(i), float(alpha_s[i]), seeds[i]) for i in np.flatnonzero(runnable)]
        done = len(theta) - len(jobs)
        if done and progress is not None:
            progress(done)
        for row, statistics in _run(jobs, self.options["events_per_simulation"], worker_count()):
            x[row] = statistics
            done += 1
            if progress is not None:
                progress(done)
        return x

    def observation(self, number: int) -> Observation:
        """Stored observation ``number``: α_s_true ~ prior with its fixed seed, x_o ~ simulator with that seed + 1."""
        if not 1 <= number <= N_OBSERVATIONS:
            raise ValueError(f"{NAME}: observation number {number!r} must be 1 … {N_OBSERVATIONS}")
        if number not in self._observations:
            seed = observation_seed(NAME, number)
            lo, hi = self.options["alpha_s_range"]
            theta = np.random.default_rng(seed).uniform(lo, hi, size=1)
            self._observations[number] = Observation(number, theta, self.simulate(theta[None], seed + 1)[0])
        return self._observations[number]

    def reference_posterior(self, x_o: np.ndarray, n_samples: int, seed: int) -> np.ndarray | None:
        """None: the likelihood of the event means is intractable."""
        return None

    def likelihood_intervals(self, x_o: np.ndarray, cl: float) -> dict[str, tuple[float, float]] | None:
        """None: no likelihood to profile."""
        return None


# --- simulations ----------------------------------------------------------------------------------

def _row_seed(seed: int, row: int) -> int:
    """Pythia's seed (1 … 9e8) for row ``row`` of a batch simulated with ``seed``."""
    word = np.random.SeedSequence([seed, row]).generate_state(1, dtype=np.uint32)[0]
    return int(word) % _pythia.PYTHIA_MAX_SEED + 1


def _run(jobs: list[tuple[int, float, int]], n_events: int, workers: int) -> Iterator[tuple[int, np.ndarray]]:
    """(row, statistics) for each (row, α_s, Pythia seed) job, as they finish."""
    client = cluster_client()
    if client is not None and jobs:
        yield from _run_on_cluster(client, jobs, n_events)
        return
    if workers <= 1 or len(jobs) <= 1:
        for row, alpha_s, seed in jobs:
            with _pythia._IN_PROCESS:  # Pythia instances of one process take turns (see _pythia)
                statistics = simulate_statistics(alpha_s, n_events, seed)
            yield row, statistics
        return
    with worker_pool(min(workers, len(jobs))) as pool:
        rows = {pool.submit(simulate_statistics, alpha_s, n_events, seed): row for row, alpha_s, seed in jobs}
        for future in as_completed(rows):
            try:
                statistics = future.result()
            except Exception as error:  # a worker that died: its row is NaN, the tools count it
                _log.warning("%s: a simulation worker failed: %s", NAME, error)
                statistics = np.full(len(OBSERVABLES), np.nan)
            yield rows[future], statistics


def _run_on_cluster(client: Any, jobs: list[tuple[int, float, int]], n_events: int
                    ) -> Iterator[tuple[int, np.ndarray]]:
    """Each simulation as a Dask task (run once more if it fails or its worker dies); one that fails again is a
    NaN row, as with a dead fork-pool worker. Leaving early (Ctrl-C, an error) cancels the rest."""
    from distributed import as_completed

    run = uuid.uuid4().hex[:12]
    rows = {client.submit(simulate_statistics, alpha_s, n_events, seed, key=f"physagent-{NAME}-{row}-{run}",
                          retries=1, pure=False): row for row, alpha_s, seed in jobs}
    try:
        for future in as_completed(list(rows)):
            try:
                statistics = future.result()
            except Exception as error:  # KilledWorker, or an error outside Pythia: the row is NaN, the tools count it
                _log.warning("%s: a simulation failed twice on the Dask cluster: %s", NAME, error)
                statistics = np.full(len(OBSERVABLES), np.nan)
            yield rows[future], statistics
    finally:
        client.cancel(list(rows))


def simulate_statistics(alpha_s: float, n_events: int, seed: int) -> np.ndarray:
    """One simulation: ``n_events`` Pythia events at ``alpha_s`` with Pythia seed ``seed`` → the five means
    (NaN when Pythia fails)."""
    settings = [*LEP_SETTINGS, f"TimeShower:alphaSvalue = {alpha_s:.10g}"]
    try:
        shard = _pythia.generate_shard(settings, n_events, seed, 0, _ignore, reduce=event_statistics)
    except Exception as error:  # a failed run is a NaN row, not a failed batch
        _log.warning("%s: Pythia failed at alpha_s=%g, seed %d: %s", NAME, alpha_s, seed, error)
        return np.full(len(OBSERVABLES), np.nan)
    return np.asarray(shard.events, dtype=float)


def _ignore(_: int) -> None:
    """Progress is reported per simulation, not per event."""


# --- statistics -----------------------------------------------------------------------------------

def event_statistics(events: Any) -> np.ndarray:
    """The means over ``events`` (records of :mod:`tools.simulate._pythia`) of the statistics in
    :data:`OBSERVABLES`, in that order."""
    import awkward as ak

    particles = events.particles
    visible = particles[~is_invisible(particles.pid)]
    n_charged = np.asarray(ak.sum(particles.charge != 0, axis=1), dtype=float)
    momenta = _padded_momenta(visible)
    thrust = np.concatenate([_thrust(momenta[i:i + _THRUST_CHUNK])
                             for i in range(0, len(momenta), _THRUST_CHUNK)])
    y23, n_jets, jet_mass = _durham(visible)
    neg_ln_y23 = -np.log(np.maximum(y23, 1e-12))
    return np.array([n_charged.mean(), np.mean(1 - thrust), neg_ln_y23.mean(), n_jets.mean(), jet_mass.mean()])


def _padded_momenta(particles: Any) -> np.ndarray:
    """(events, most particles, 3) three-momenta in GeV, zero-padded."""
    import awkward as ak

    longest = int(ak.max(ak.num(particles)))
    return np.stack([ak.to_numpy(ak.fill_none(ak.pad_none(particles[c], longest), 0.0)).astype(float)
                     for c in ("px", "py", "pz")], axis=2)


def _thrust(p: np.ndarray, max_iterations: int = 50) -> np.ndarray:
    """Thrust T of each event of zero-padded momenta p (events, particles, 3).

    From each start axis, n → Σ sign(p·n) p increases Σ|p·n| until the signs stop changing (a local maximum);
    the starts are the sign combinations of the four hardest momenta, whose best local maximum is the global one
    in practice (checked against a dense scan of random axes)."""
    magnitude = np.linalg.norm(p, axis=2)
    order = np.argsort(-magnitude, axis=1)[:, :4, None]
    hardest = np.take_along_axis(p, order, axis=1)
    if hardest.shape[1] < 4:
        hardest = np.pad(hardest, ((0, 0), (0, 4 - hardest.shape[1]), (0, 0)))
    axes, transposed = _THRUST_SIGNS @ hardest, p.transpose(0, 2, 1)
    sides = np.sign(axes @ transposed)
    for _ in range(max_iterations):
        axes = sides @ p
        new_sides = np.sign(axes @ transposed)
        if np.array_equal(new_sides, sides):
            break
        sides = new_sides
    length = np.maximum(np.linalg.norm(axes, axis=2), 1e-12)
    projected = np.abs(axes @ transposed).sum(axis=2) / length
    return projected.max(axis=1) / np.maximum(magnitude.sum(axis=1), 1e-12)


def _durham(particles: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per event y₂₃ and the number of Durham jets at :data:`Y_CUT`; per jet the masses (GeV) of the exclusive
    two-jet clustering."""
    import awkward as ak
    import fastjet

    vectors = ak.zip({name: ak.values_astype(particles[src], np.float64)
                      for name, src in (("px", "px"), ("py", "py"), ("pz", "pz"), ("E", "e"))})
    # fastjet's Python JetDefinition insists on an R, which the Durham definition refuses: use the SWIG one
    definition = fastjet.JetDefinitionNoCast(fastjet.ee_kt_algorithm)
    with capture_fd_stdout(), warnings.catch_warnings():  # FastJet prints its banner on first use
        # its "interpret with care" warning for exclusive jets does not recognise Durham, for which they are
        # the standard definition
        warnings.filterwarnings("ignore", message="dcut and exclusive jets", category=UserWarning)
        sequence = fastjet.ClusterSequence(vectors, definition)
        y23 = np.asarray(sequence.exclusive_ymerge_max(2), dtype=float)
        n_jets = np.asarray(ak.num(sequence.exclusive_jets_ycut(Y_CUT)), dtype=float)
        jets = ak.flatten(sequence.exclusive_jets(n_jets=2, dcut=-1))
    e, px, py, pz = (np.asarray(jets[c], dtype=float) for c in ("E", "px", "py", "pz"))
    return y23, n_jets, np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0.0))


# --- options --------------------------------------------------------------------------------------

def _option_error(option: str, value: Any, problem: str) -> ToolInputError:
    return ToolInputError(f"SBI task {NAME}: option {option}={value!r} {problem}", param=option, value=value)


def _checked_options(options: dict[str, Any]) -> dict[str, Any]:
    n_events, bounds = options["events_per_simulation"], options["alpha_s_range"]
    whole = isinstance(n_events, int | float | np.integer | np.floating) and not isinstance(n_events, bool) \
        and math.isfinite(n_events) and n_events == int(n_events)  # 500.0 from a JSON client is 500
    if not whole or not 1 <= n_events <= MAX_EVENTS:
        default = DEFAULT_OPTIONS["events_per_simulation"]
        raise _option_error("events_per_simulation", n_events, f"must be a whole number from 1 to {MAX_EVENTS:,} "
                            f"(default {default}: about {_SECONDS_INIT + default * _SECONDS_PER_EVENT:.1f} s per "
                            "simulation).")
    low, high = PYTHIA_ALPHA_S_RANGE
    numbers = isinstance(bounds, list | tuple) and len(bounds) == 2 and all(
        isinstance(b, int | float | np.integer | np.floating) and not isinstance(b, bool) and math.isfinite(b)
        for b in bounds)
    if not numbers or not low <= bounds[0] < bounds[1] <= high:
        raise _option_error("alpha_s_range", bounds, f"must be a pair (low, high) with {low} <= low < high <= "
                            f"{high}, Pythia's allowed range of TimeShower:alphaSvalue; e.g. (0.10, 0.16).")
    return {"events_per_simulation": int(n_events), "alpha_s_range": (float(bounds[0]), float(bounds[1]))}
