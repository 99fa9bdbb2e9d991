"""FlowAR: scale pyramid, cached sampling == the block-causal forward, the flow head's Euler sampler on known
velocity fields, guidance ramp and interval, save/load round trip, golden slice, config checks."""

from __future__ import annotations

import pytest
import torch
from flowar_tiny import TINY, TINY_FLOWAR, TINY_KL, TINY_SCALE, tiny_model

from genmotion.image_core.flowar_config import (
    FlowARConfig,
    FlowARImageConfig,
    FlowARSamplingConfig,
    KLAutoencoderConfig,
)
from genmotion.image_core.flowar_model import (
    load_flowar_model,
    next_scale_input,
    save_flowar_model,
    scale_targets,
    teacher_inputs,
)
from genmotion.image_core.flowar_sampler import guidance_ramp, sample_head, stream_flowar_scales


def test_scale_targets_are_area_downsampled_and_inputs_bicubic_upsampled():
    latent = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    scales = scale_targets(latent, (1, 2, 4))
    assert [tuple(s.shape) for s in scales] == [(2, 3, 1, 1), (2, 3, 2, 2), (2, 3, 4, 4)]
    torch.testing.assert_close(scales[0].flatten(1), latent.mean(dim=(2, 3)))  # not a residual: the whole latent
    assert torch.equal(scales[-1], latent)
    x = teacher_inputs(scales, (1, 2, 4))
    assert x.shape == (2, 2 * 2 + 4 * 4, 3)
    # a constant map stays constant through bicubic up + area down
    torch.testing.assert_close(x[:, :4], scales[0].flatten(2).transpose(1, 2).expand(2, 4, 3))
    up = torch.nn.functional.interpolate(scales[1], size=(4, 4), mode="bicubic", align_corners=False)
    torch.testing.assert_close(next_scale_input(scales[1], 4, 4), up)


@pytest.mark.parametrize("config", [TINY, TINY_SCALE], ids=["token", "scale"])
@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_cached_sampling_equals_block_causal_forward(guidance, config):
    model = tiny_model(config=config)
    labels = torch.tensor([0, 3, 4])
    settings = FlowARSamplingConfig(guidance_scale=guidance, guidance_interval=0.9, num_steps=3)
    steps = list(stream_flowar_scales(model, labels, generator=torch.Generator().manual_seed(2), settings=settings))
    assert [tuple(s.latent.shape) for s in steps] == [(3, 3, 1, 1), (3, 3, 2, 2), (3, 3, 4, 4)]
    with torch.no_grad():  # teacher forcing on the sampled scales: the same transformer outputs z, all at once
        z_full = model.var(labels, teacher_inputs([s.latent for s in steps], TINY_FLOWAR.patch_nums))
    for step, (begin, end) in zip(steps, model.var.config.scale_slices, strict=True):
        torch.testing.assert_close(step.z, z_full[:, begin:end], rtol=1e-4, atol=1e-5)


def _latents(model, labels, seed, settings):
    steps = stream_flowar_scales(model, labels, generator=torch.Generator().manual_seed(seed), settings=settings)
    return [s.latent for s in steps]


def test_sampling_repeats_with_a_seed_and_leaves_the_global_rng_alone():
    model, labels = tiny_model(), torch.tensor([1, 2])
    settings = FlowARSamplingConfig(num_steps=2)
    state = torch.get_rng_state()
    runs = [_latents(model, labels, 5, settings) for _ in range(2)]
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))


class _ConstantHead(torch.nn.Module):
    """Velocity c_cond where z is +1, c_uncond where z is -1 (ignores x and t)."""

    def __init__(self, c_cond: torch.Tensor, c_uncond: torch.Tensor) -> None:
        super().__init__()
        self.c_cond, self.c_uncond = c_cond, c_uncond

    def forward(self, x, t, z):
        return torch.where(z[..., :1] > 0, self.c_cond, self.c_uncond).expand_as(x)


def test_euler_reaches_the_data_point_of_the_exact_velocity_field():
    # For one data point x*, the velocity of x_t = (1 - t) x* + t eps is (x_t - x*) / t, and Euler steps on it
    # are exact: any step count lands on x*.
    target = torch.tensor([[0.5, -1.0, 2.0]])

    class Exact(torch.nn.Module):
        def forward(self, x, t, z):
            return (x - target) / t[:, None, None]

    noise = torch.randn(1, 1, 3, generator=torch.Generator().manual_seed(0))
    for steps in (1, 3, 10):
        out = sample_head(Exact(), torch.zeros(1, 1, 4), noise, num_steps=steps)  # type: ignore[arg-type]
        torch.testing.assert_close(out.view(1, 3), target)


def test_guidance_combines_velocities_only_inside_the_interval():
    c_cond, c_uncond = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    head = _ConstantHead(c_cond, c_uncond)
    z = torch.cat([torch.ones(1, 1, 4), -torch.ones(1, 1, 4)])  # row 0 conditional, row 1 unconditional
    noise = torch.zeros(1, 1, 2)
    g = 3.0
    guided = c_uncond + g * (c_cond - c_uncond)
    out = sample_head(head, z, noise, num_steps=4, guidance_scale=g, guidance_interval=1.0)  # type: ignore[arg-type]
    torch.testing.assert_close(out.view(2), -guided)  # x_0 = x_1 - integral of v over t in [0, 1]
    # steps start at t = 1, 0.75, 0.5, 0.25: guided at t <= 0.5 (two steps of 0.25), conditional only before
    out = sample_head(head, z, noise, num_steps=4, guidance_scale=g, guidance_interval=0.5)  # type: ignore[arg-type]
    torch.testing.assert_close(out.view(2), -(0.5 * c_cond + 0.5 * guided))
    assert [guidance_ramp(4.0, s, 4) for s in range(4)] == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("config", [TINY, TINY_SCALE], ids=["token", "scale"])
def test_save_load_round_trip(tmp_path, config):
    model = tiny_model(config=config)
    save_flowar_model(model, tmp_path / "fp32", dtype=None, class_names=("a", "b", "c", "d", "e"))
    back = load_flowar_model(tmp_path / "fp32")
    assert back.config == model.config
    for (k, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    save_flowar_model(model, tmp_path / "bf16")
    half = load_flowar_model(tmp_path / "bf16")
    settings = FlowARSamplingConfig(num_steps=2)
    lat = [_latents(m, torch.tensor([1]), 0, settings)[-1] for m in (model, back, half)]
    assert torch.equal(lat[0], lat[1])
    assert (lat[0] - lat[2]).abs().max() < 0.2 * lat[0].abs().max() + 0.05  # bf16 storage: close, not equal


def test_golden_slice():
    model = tiny_model()
    g = torch.Generator().manual_seed(1)
    latent = torch.randn(2, 3, 4, 4, generator=g)
    with torch.no_grad():
        z, x = model.teacher_forced(torch.tensor([1, 4]), latent)
        t = torch.linspace(0.1, 0.9, x.shape[1]).repeat(2)
        v = model.head(x, t.view(2, -1), z)
    assert z.shape == (2, 21, 16) and v.shape == (2, 21, 3)
    torch.testing.assert_close(z.flatten()[-6:], torch.tensor(GOLDEN_Z), rtol=1e-4, atol=2e-6)
    torch.testing.assert_close(v.flatten()[-6:], torch.tensor(GOLDEN_V), rtol=1e-4, atol=2e-6)


GOLDEN_Z = [-0.607979, 0.235035, -0.222852, -0.053119, -0.018618, 0.674473]  # the last token's z
GOLDEN_V = [1.383793, 1.434927, 0.542755, 1.607505, 2.940684, 0.947808]  # its velocity


def test_scale_head_golden_slice_and_tokens_denoised_together():
    model = tiny_model(config=TINY_SCALE)
    g = torch.Generator().manual_seed(1)
    latent = torch.randn(2, 3, 4, 4, generator=g)
    with torch.no_grad():
        z, x = model.teacher_forced(torch.tensor([1, 4]), latent)
        z4, x4 = z[:, 5:], x[:, 5:]  # the 4x4 scale
        t = torch.tensor([0.3, 0.7])
        v = model.head(x4, t, z4)
        other = x4.clone()
        other[:, 0] += 1.0  # move the first token only
        v_other = model.head(other, t, z4)
        token_head = tiny_model()
        w, w_other = token_head.head(x4, t, z[:, 5:]), token_head.head(other, t, z[:, 5:])
    assert v.shape == (2, 16, 3)
    # the scale head reads the whole scale: the other tokens' velocities change; the token head's do not
    assert (v_other[:, 1:] - v[:, 1:]).abs().max() > 1e-3
    assert torch.equal(w_other[:, 1:], w[:, 1:])
    torch.testing.assert_close(v.flatten()[-6:], torch.tensor(GOLDEN_SCALE_V), rtol=1e-4, atol=2e-6)


GOLDEN_SCALE_V = [0.248807, 0.306368, -0.618672, -0.140687, 0.613332, 0.305919]  # the last token of the 4x4 scale


def test_scale_head_loss_draws_one_flow_time_per_image_and_scale():
    # With repeats images, the loss must equal the head run scale by scale at the times it drew.
    model = tiny_model(config=TINY_SCALE)
    latent = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([0, 2])
    with torch.no_grad():
        loss, per_scale = model.velocity_loss(labels, latent, torch.Generator().manual_seed(4), repeats=2)
        g = torch.Generator().manual_seed(4)
        z, x = model.teacher_forced(labels, latent)
        z, x = z.repeat(2, 1, 1), x.repeat(2, 1, 1)
        t = torch.rand(4, 3, generator=g)
        eps = torch.randn(x.shape, generator=g)
        errors = []
        for s, (b, e) in enumerate(model.var.config.scale_slices):
            x_t = (1 - t[:, s, None, None]) * x[:, b:e] + t[:, s, None, None] * eps[:, b:e]
            errors.append((model.head(x_t, t[:, s], z[:, b:e]) - (eps[:, b:e] - x[:, b:e])).square().mean(-1))
        expected = torch.cat(errors, dim=1)
    torch.testing.assert_close(loss, expected.mean())
    assert per_scale == pytest.approx([float(e.mean()) for e in errors], rel=1e-5)


def test_configs_refuse_what_flowar_cannot_take():
    with pytest.raises(ValueError, match="double"):
        FlowARConfig(patch_nums=(1, 2, 3, 4))
    with pytest.raises(ValueError, match="latent size"):
        FlowARImageConfig(vae=KLAutoencoderConfig(latent_channels=3, latent_size=8), flowar=TINY_FLOWAR)
    with pytest.raises(ValueError, match="latent channels"):
        FlowARImageConfig(vae=TINY_KL, flowar=FlowARConfig(latent_channels=4, patch_nums=(1, 2, 4)))
    with pytest.raises(ValueError, match="num_steps"):
        FlowARSamplingConfig(num_steps=0)
    with pytest.raises(ValueError, match="flow_head"):
        FlowARConfig(flow_head="pixel")
    with pytest.raises(ValueError, match="multiple of 64"):
        FlowARConfig(flow_head="scale", flow_width=96)
    assert TINY.var.patch_nums == (1, 2, 4) and TINY.vae.image_size == 8
