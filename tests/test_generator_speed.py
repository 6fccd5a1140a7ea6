"""What makes calofast sampling fast, checked by behaviour (no timings): one pass per network and batch, an
exact coupling flow, and the one-voxel fallback of a layer without hits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from physagent.tools.generate._architectures import ARCHITECTURES
from physagent.tools.generate._calofast import FastCalo
from physagent.tools.generate._coupling import CouplingFlow

GRID = (4, 6, 6)


def _model(seed: int = 0) -> FastCalo:
    """A tiny calofast model with random weights and transforms fitted on random showers."""
    torch.manual_seed(seed)
    model = FastCalo(GRID, ARCHITECTURES["calofast"]["tiny"])
    rng = np.random.default_rng(seed)
    cells = (rng.exponential(1.0, (200, int(np.prod(GRID)))) * (rng.uniform(size=(200, int(np.prod(GRID)))) < 0.2))
    model.fit_transforms(cells.astype(np.float32), rng.uniform(10, 100, 200), seed)
    return model.eval()


def _noise(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    energies = torch.from_numpy(rng.uniform(10, 100, n)).float()
    z = torch.from_numpy(rng.standard_normal((n, GRID[0]))).float()
    return energies, z, torch.from_numpy(rng.integers(-(2**31), 2**31, (n, int(np.prod(GRID))), dtype=np.int32))


@pytest.mark.parametrize("batch", [1, 1000])
def test_calofast_runs_every_linear_layer_once_per_sampled_batch(batch: int) -> None:
    """Sampling a batch calls each linear layer of both stages once on the whole batch, whatever its size; the hit
    layer's weights are used halved (for 2³¹ tanh(logit / 2)) and the share output layer's for the hits alone."""
    model = _model()
    calls: dict[str, int] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            module.register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls.get(name, 0) + 1))
    with torch.inference_mode():
        cells = model.sample(*_noise(batch, seed=2))
    assert cells.shape == (batch, *GRID)
    linear = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]
    assert sorted(calls) == sorted(set(linear) - {"voxels.hit", "voxels.share.1"}) and set(calls.values()) == {1}


@pytest.mark.parametrize("features", [1, 2, 3, 6])
def test_the_coupling_flow_inverts_exactly_and_its_log_det_is_the_jacobians(features: int) -> None:
    """float64: f⁻¹(f(x)) = x to 1e-9 and Σ log|det| equals log|det ∂f/∂x| by autograd, for random weights."""
    torch.manual_seed(features)
    flow = CouplingFlow(features, 2, 4, [16, 16]).double()
    for parameter in flow.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    x, c = torch.randn(50, features, dtype=torch.float64), torch.randn(50, 2, dtype=torch.float64)

    def forward(rows: torch.Tensor, given: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total = torch.zeros(len(rows), dtype=torch.float64)
        for layer in flow.layers:
            rows, log_det = layer(rows, given)
            total = total + log_det
        return rows, total

    z, log_det = forward(x, c)
    np.testing.assert_allclose(flow.sample(z, c).detach(), x, atol=1e-9)
    jacobian = torch.autograd.functional.jacobian(lambda row: forward(row[None], c[:1])[0][0], x[0])
    assert float(log_det[0].detach()) == pytest.approx(float(torch.linalg.slogdet(jacobian)[1]), abs=1e-9)


@pytest.mark.parametrize("features", [1, 3, 6, 30])
def test_sampling_without_gradients_inverts_the_spline_in_the_compiled_loop_to_the_same_values(features: int) -> None:
    """Without autograd the spline inverse runs compiled (knots built on the fly): in float64 it gives the tensor
    path's values to 1e-8 and inverts the flow, in float32 one layer agrees with the tensor path to float32
    rounding; values outside [−B, B] pass unchanged."""
    torch.manual_seed(features)
    flow = CouplingFlow(features, 2, 4, [16, 16]).double()
    for parameter in flow.parameters():
        torch.nn.init.normal_(parameter, std=0.3 if features < 30 else 0.1)
    x, c = torch.randn(500, features, dtype=torch.float64) * 2, torch.randn(500, 2, dtype=torch.float64)
    x[0] = 7.0  # outside the splines' range
    z = x
    for layer in flow.layers:
        z = layer(z, c)[0]
    z = z.detach()
    tensor_path = flow.sample(z, c).detach()  # autograd on: the differentiable path
    with torch.inference_mode():
        compiled = flow.sample(z, c)
    np.testing.assert_allclose(compiled, tensor_path, atol=1e-8)
    np.testing.assert_allclose(compiled, x, atol=1e-8)
    assert torch.all(compiled[0] == 7.0) or features > 1  # a 1-feature flow's spline leaves 7 alone
    layer = flow.layers[0].float()  # float32, one layer (a random 4-layer flow amplifies rounding chaotically)
    with torch.no_grad():
        fast = layer.inverse(z.float(), c.float())
    np.testing.assert_allclose(fast, layer.inverse(z.float(), c.float()).detach(), rtol=2e-5, atol=1e-5)


def test_a_layer_whose_voxels_all_miss_puts_its_energy_into_its_most_probable_voxel() -> None:
    """With every hit probability ~e^-30, each layer with E_l ≥ ε is one cell holding E_l, at the largest logit."""
    model = _model(seed=3)
    with torch.no_grad():
        model.voxels.hit.weight.zero_()
        model.voxels.hit.bias.fill_(-30.0)
        model.voxels.hit.bias[5] = -29.0  # layer 0's most probable voxel
    energies, z, bits = _noise(64, seed=4)
    with torch.inference_mode():
        cells = model.sample(energies, z, bits).view(64, GRID[0], -1)
        layer_e = torch.exp(model._from_x(model.energy_flow.sample(z, model.c_norm(torch.log(energies)[:, None]))))
    full = layer_e >= model.noise_mev
    assert torch.all((cells > 0).sum(-1) == full.long())
    torch.testing.assert_close(cells.sum(-1), torch.where(full, layer_e, 0.0))
    assert torch.all(cells[:, 0, 5][full[:, 0]] > 0)
