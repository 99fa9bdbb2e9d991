"""VFMF modules: golden slices of the tiny encoder, VAE and forecaster; the flow-matching loss on a
hand-computed case; KV rollout == recompute; the DINOv2-layout encoder on the meta device."""

from __future__ import annotations

import pytest
import torch
from world_tiny import tiny_model

from genmotion.errors import InputError, UsageError
from genmotion.world.config import DINOV2_VITB14_REG
from genmotion.world.encoder import PatchEncoder, load_dinov2, maskfeat_targets
from genmotion.world.forecaster import forecast_loss
from genmotion.world.latent import PCALatent, fit_pca
from genmotion.world.sampler import WindowKV, WindowRecompute, forecast_stream, parse_policy


def _images(seed: int = 0, batch: int = 2, size: int = 16) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _round(x: torch.Tensor) -> list[float]:
    return [round(float(v), 4) for v in x.detach().flatten()[:6]]


GOLDEN = {
    "encoder": [-0.7452, 1.1758, 0.2963, -0.4596, -0.6436, -0.9665],
    "vae": [0.1835, 0.6709, 0.2546, 0.2166, 0.6602, 1.0934],
    "forecaster": [-0.6627, 0.4529, -0.4533, 0.0279, -0.5325, 0.5137],
}


def test_encoder_golden_and_shapes():
    model = tiny_model()
    feats = model.encoder(_images())
    assert feats.shape == (2, 2, 2, 32)
    assert _round(feats) == GOLDEN["encoder"]


def test_vae_golden_and_round_trip_shapes():
    model = tiny_model()
    feats = model.features(_images())
    z = model.vae.encode(feats)
    assert z.shape == (2, 2, 2, 4)
    assert model.vae.decode(z).shape == feats.shape
    assert _round(z) == GOLDEN["vae"]


def test_forecaster_golden():
    model = tiny_model()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 4, 4, generator=g)
    out = model.forecaster(x, torch.tensor([[1.0, 1.0, 0.3], [1.0, 1.0, 0.7]]), torch.arange(3))
    assert out.shape == (2, 3, 4, 4)
    assert _round(out[:, -1]) == GOLDEN["forecaster"]


class _Identity(torch.nn.Module):
    """A 'forecaster' that returns its input: the loss is then computable by hand."""

    class config:
        objective = "flow"

    def forward(self, x, t, positions):
        return x


def test_flow_loss_hand_computed_case():
    # x1 = 2, x0 = 1, t = 0.25: x_t = 0.75 * 1 + 0.25 * 2 = 1.25; target x1 - x0 = 1; (1.25 - 1)^2 = 0.0625
    latents = torch.tensor([[[[5.0]], [[2.0]]]])  # (B=1, L=2, N=1, K=1): context 5, target 2
    loss = forecast_loss(_Identity(), latents, torch.arange(2), None, t_B=torch.tensor([0.25]), x0=torch.ones(1, 1, 1))
    assert float(loss) == pytest.approx(0.0625)
    # t = 1 is the data end: x_t = x1 = 2, (2 - 1)^2 = 1
    loss = forecast_loss(_Identity(), latents, torch.arange(2), None, t_B=torch.tensor([1.0]), x0=torch.ones(1, 1, 1))
    assert float(loss) == pytest.approx(1.0)


def test_flow_loss_trains_towards_the_target():
    model = tiny_model().forecaster.train()
    z = torch.randn(4, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    loss = forecast_loss(model, z, torch.arange(3), torch.Generator().manual_seed(0))
    loss.backward()
    assert loss.item() > 0 and model.head.weight.grad is not None and model.head.weight.grad.abs().sum() > 0


def test_kv_rollout_equals_recompute_and_memory_is_flat():
    model = tiny_model().forecaster
    context = torch.randn(3, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    kv, full = parse_policy("window-kv", window=4), parse_policy(" Recompute ", window=4)
    assert isinstance(kv, WindowKV) and isinstance(full, WindowRecompute) and (kv.window, full.window) == (4, 4)
    a = torch.stack(list(forecast_stream(model, context, 12, generator=torch.Generator().manual_seed(5), policy=kv)))
    b = torch.stack(list(forecast_stream(model, context, 12, generator=torch.Generator().manual_seed(5), policy=full)))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert kv.stats.tokens_processed < full.stats.tokens_processed
    assert len(kv.frames) == 4 and full.bytes_held() == 3 * 4 * 4 * 4 * 4  # B W N K float32


def test_parse_policy_refuses_unknown_names_and_parameters():
    with pytest.raises(UsageError, match="unknown cache policy 'kv'") as err:
        parse_policy("kv", window=4)
    assert err.value.exit_code == 2 and err.value.fix == "use one of window-kv | recompute"
    with pytest.raises(UsageError, match="cache policy 'window-kv' takes no parameter 'budget'") as err:
        parse_policy("window-kv", window=4, budget=8)
    assert err.value.fix == "use one of ['window']"
    with pytest.raises(UsageError, match="need window"):
        parse_policy("recompute")
    with pytest.raises(UsageError, match=">= 1 frame"):
        parse_policy("window-kv", window=0)


def test_samples_differ_and_seed_repeats():
    model = tiny_model().forecaster
    context = torch.randn(1, 2, 4, 4).expand(2, 2, 4, 4)
    first = next(forecast_stream(model, context, 1, generator=torch.Generator().manual_seed(0)))
    again = next(forecast_stream(model, context, 1, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(first, again) and not torch.allclose(first[0], first[1])


def _dinov2_state(width: int = 768, depth: int = 12, registers: int = 4, grid: int = 37) -> dict[str, torch.Tensor]:
    """The parameter names and shapes of DINOv2's `dinov2_vitb14_reg4_pretrain.pth`, as meta tensors."""
    m = lambda *shape: torch.empty(*shape, device="meta")
    state = {
        "cls_token": m(1, 1, width), "pos_embed": m(1, 1 + grid * grid, width),
        "register_tokens": m(1, registers, width), "mask_token": m(1, width),
        "patch_embed.proj.weight": m(width, 3, 14, 14), "patch_embed.proj.bias": m(width),
        "norm.weight": m(width), "norm.bias": m(width),
    }  # fmt: skip
    for i in range(depth):
        b = f"blocks.{i}."
        state.update({
            b + "norm1.weight": m(width), b + "norm1.bias": m(width),
            b + "attn.qkv.weight": m(3 * width, width), b + "attn.qkv.bias": m(3 * width),
            b + "attn.proj.weight": m(width, width), b + "attn.proj.bias": m(width), b + "ls1.gamma": m(width),
            b + "norm2.weight": m(width), b + "norm2.bias": m(width),
            b + "mlp.fc1.weight": m(4 * width, width), b + "mlp.fc1.bias": m(4 * width),
            b + "mlp.fc2.weight": m(width, 4 * width), b + "mlp.fc2.bias": m(width), b + "ls2.gamma": m(width),
        })  # fmt: skip
    return state


def test_dinov2_layout_loads_key_for_key_on_meta():
    with torch.device("meta"):
        encoder = PatchEncoder(DINOV2_VITB14_REG)
    state = _dinov2_state()
    assert len(state) == 176
    load_dinov2(encoder, state)
    assert DINOV2_VITB14_REG.feature_dim == 3072
    feats = encoder(torch.empty(1, 3, 224, 224, device="meta"))
    assert feats.shape == (1, 16, 16, 3072)


def test_dinov2_loader_names_a_mismatch():
    with torch.device("meta"):
        encoder = PatchEncoder(DINOV2_VITB14_REG)
    state = _dinov2_state()
    state["blocks.3.attn.qkv.weight"] = torch.empty(2304, 384, device="meta")
    with pytest.raises(InputError, match="blocks.3.attn.qkv.weight"):
        load_dinov2(encoder, state)
    del state["norm.bias"]
    with pytest.raises(InputError, match="norm.bias"):
        load_dinov2(encoder, state)


def test_maskfeat_targets_and_pca():
    t = maskfeat_targets(_images(size=16), 8)
    assert t.shape == (2, 4, 3 * 64 + 32)
    torch.testing.assert_close(t[..., :192].mean(-1), torch.zeros(2, 4), atol=1e-4, rtol=0)
    x = torch.randn(500, 6, generator=torch.Generator().manual_seed(0)) * torch.tensor([5.0, 3, 1, 0.1, 0.1, 0.1])
    pca = PCALatent(6, 3)
    assert fit_pca(pca, x) > 0.99
    assert (pca.decode(pca.encode(x)) - x).square().mean() < 0.02
