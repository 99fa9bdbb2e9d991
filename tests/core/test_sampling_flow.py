import math

import pytest
import torch

from genmotion.errors import UsageError
from genmotion.sampling import euler_step, flow_path, heun_step, integrate, timesteps, velocity_target


def test_linear_ode_accuracy_euler_first_order_heun_second():
    x0 = torch.tensor([1.0, -2.0], dtype=torch.float64)
    exact = x0 * math.exp(0.7)

    def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
        return 0.7 * x

    err = {}
    for solver in ("euler", "heun"):
        for n in (20, 40):
            err[solver, n] = (integrate(velocity, x0, timesteps(n).double(), solver) - exact).abs().max().item()
    assert err["euler", 40] < 3e-2 and err["heun", 40] < 2e-4
    assert 1.8 < err["euler", 20] / err["euler", 40] < 2.2  # order 1
    assert 3.6 < err["heun", 20] / err["heun", 40] < 4.4  # order 2


def test_flow_matching_velocity_transports_noise_to_data_exactly():
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    assert torch.allclose(flow_path(x0, x1, 0.25), 0.75 * x0 + 0.25 * x1)
    v = velocity_target(x0, x1)
    for solver in ("euler", "heun"):
        out = integrate(lambda x, t: v, x0, timesteps(3, "shifted"), solver)
        assert torch.allclose(out, x1, atol=1e-5)
    assert torch.allclose(euler_step(lambda x, t: v, x0, 0.0, 1.0), heun_step(lambda x, t: v, x0, 0.0, 1.0))


def test_timestep_schedules():
    u = timesteps(4)
    assert torch.allclose(u, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    s = timesteps(4, "shifted", shift=3.0)
    assert s[0] == 0.0 and s[-1] == 1.0 and (s[1:] > s[:-1]).all()
    assert (s[1:-1] < u[1:-1]).all()  # more steps spent near noise
    with pytest.raises(UsageError):
        timesteps(4, "cosine")  # type: ignore[arg-type]
