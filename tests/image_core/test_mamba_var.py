"""M-VAR transformer and sampler: teacher-forced forward == scale-by-scale decoding with the scan state carried,
carried sampling == re-running the whole sequence, golden slice, save/load round trip, config errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from image_core_tiny import PATCH_NUMS, TINY_VAE, TINY_VAR, seeded

from genmotion.errors import UsageError
from genmotion.image_core.mamba_var import MambaVAR, MambaVARConfig, MambaVARImageConfig, MambaVARImageModel
from genmotion.image_core.mamba_var_io import load_mvar_model, save_mvar_model
from genmotion.image_core.mamba_var_sampler import sample_mvar_indices, stream_mvar_scales
from genmotion.nn.vqvae import VQVAE
from genmotion.sampling.guidance import guide

TINY_MVAR = MambaVARConfig(**dataclasses.asdict(TINY_VAR), d_state=4, ssm_head_dim=8, scan_chunk=5)
TINY = MambaVARImageConfig(vae=TINY_VAE, var=TINY_MVAR)
K = len(PATCH_NUMS)


def _inputs(seed: int = 1, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, TINY_MVAR.num_tokens - 1, 4, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_training_forward_equals_scale_by_scale_decoding() -> None:
    model = seeded(MambaVAR, TINY_MVAR)
    labels, x = torch.tensor([1, 5]), _inputs()  # 5 = the null class
    full = model(labels, x)  # B, L, V
    conditions, cache = model.class_conditions(labels), model.new_cache(2)
    outs = [model.forward_scale(model.start_tokens(conditions.cond_BD), conditions, cache)]
    for si in range(1, K):
        begin, end = TINY_MVAR.scale_slices[si]
        outs.append(model.forward_scale(model.scale_tokens(si, x[:, begin - 1 : end - 1]), conditions, cache))
    torch.testing.assert_close(torch.cat(outs, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == TINY_MVAR.num_tokens
    assert full.std() > 0.1


@torch.no_grad()
def test_later_scales_do_not_change_earlier_logits() -> None:
    model = seeded(MambaVAR, TINY_MVAR)
    labels, x = torch.tensor([0, 3]), _inputs()
    begin, _ = TINY_MVAR.scale_slices[2]
    changed = x.clone()
    changed[:, begin - 1 :] += 1.0  # every input of scale 2 and later
    a, b = model(labels, x), model(labels, changed)
    torch.testing.assert_close(a[:, :begin], b[:, :begin])
    assert not torch.allclose(a[:, begin:], b[:, begin:])


def _rerun_greedy(model: MambaVAR, vae: VQVAE, label: torch.Tensor, scale: float) -> list[torch.Tensor]:
    """Greedy guided sampling the slow way: at every scale the whole training forward over all scales so far
    (later inputs zero: they cannot matter), no state carried."""
    B, q = label.shape[0], vae.quantize
    labels = torch.cat((label, torch.full_like(label, model.num_classes)))
    x = torch.zeros(2 * B, model.L - model.first_l, model.Cvae)
    f_hat, out = torch.zeros(B, model.Cvae, PATCH_NUMS[-1], PATCH_NUMS[-1]), []
    for si, pn in enumerate(PATCH_NUMS):
        begin, end = TINY_MVAR.scale_slices[si]
        logits = model(labels, x)[:, begin:end]
        tokens = guide(logits[:B], logits[B:], 1 + (scale - 1) * si / (K - 1)).argmax(-1)
        out.append(tokens)
        h = q.embedding(tokens).transpose(1, 2).reshape(B, model.Cvae, pn, pn)
        f_hat, next_map = q.next_autoregressive_input(si, f_hat, h)
        if si + 1 < K:
            b2, e2 = TINY_MVAR.scale_slices[si + 1]
            x[:, b2 - 1 : e2 - 1] = next_map.view(B, model.Cvae, -1).transpose(1, 2).repeat(2, 1, 1)
    return out


@torch.no_grad()
def test_carried_state_sampling_equals_rerunning_the_whole_sequence() -> None:
    model, vae = seeded(MambaVAR, TINY_MVAR), seeded(VQVAE, TINY_VAE)
    labels = torch.tensor([2, 4])
    carried = sample_mvar_indices(
        model, vae.quantize, labels, generator=torch.Generator().manual_seed(0), guidance_scale=3.0, temperature=0
    )
    for a, b in zip(carried, _rerun_greedy(model, vae, labels, 3.0), strict=True):
        assert torch.equal(a, b)


@torch.no_grad()
def test_sampling_is_seeded_and_streams_every_scale() -> None:
    model, vae = seeded(MambaVAR, TINY_MVAR), seeded(VQVAE, TINY_VAE)
    labels = torch.tensor([0, 1, 2])
    runs = [
        sample_mvar_indices(model, vae.quantize, labels, generator=torch.Generator().manual_seed(s)) for s in (7, 7, 8)
    ]
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(runs[0], runs[2], strict=True))
    steps = list(stream_mvar_scales(model, vae.quantize, labels, generator=torch.Generator().manual_seed(0)))
    assert [s.indices.shape for s in steps] == [(3, p * p) for p in PATCH_NUMS]
    with pytest.raises(UsageError, match="class labels"):
        next(stream_mvar_scales(model, vae.quantize, torch.tensor([9]), generator=torch.Generator()))


def test_golden_slice() -> None:
    model = seeded(MambaVAR, TINY_MVAR)
    with torch.no_grad():
        logits = model(torch.tensor([1, 4]), _inputs())
    assert logits.shape == (2, TINY_MVAR.num_tokens, TINY_MVAR.vocab_size)
    torch.testing.assert_close(logits.flatten()[:8], torch.tensor(GOLDEN_FIRST), rtol=1e-4, atol=2e-6)
    torch.testing.assert_close(logits.flatten()[-8:], torch.tensor(GOLDEN_LAST), rtol=1e-4, atol=2e-6)


def test_save_load_round_trip(tmp_path) -> None:
    model = seeded(MambaVARImageModel, TINY)
    save_mvar_model(model, tmp_path / "m", class_names=tuple("abcde"), dtype=None)
    again = load_mvar_model(tmp_path / "m")
    assert again.config == model.config
    for (k, a), (k2, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b), k
    x = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(again.var(torch.tensor([0, 1]), x), model.var(torch.tensor([0, 1]), x))
    save_mvar_model(model, tmp_path / "bf16")  # the shipped form: bf16, read back as fp32
    assert load_mvar_model(tmp_path / "bf16").var.head.weight.dtype == torch.float32


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="shared-AdaLN"):
        dataclasses.replace(TINY_MVAR, shared_aln=True)
    with pytest.raises(ValueError, match="ssm_head_dim"):
        dataclasses.replace(TINY_MVAR, ssm_head_dim=7)
    with pytest.raises(ValueError, match="disagree"):
        MambaVARImageConfig(vae=TINY_VAE, var=dataclasses.replace(TINY_MVAR, vocab_size=64))


GOLDEN_FIRST = [-0.2966, 0.645268, -0.030557, -1.452947, 0.730723, 0.254352, -0.241075, -0.115318]
GOLDEN_LAST = [0.96008, 0.617302, -0.200475, -0.02257, -0.59903, 0.761006, 1.472548, -0.853899]
