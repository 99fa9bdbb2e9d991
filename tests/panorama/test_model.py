"""The model's sparse context attention, its frame slots, attention compute, patchify and the training loss."""

from __future__ import annotations

import torch
from panorama_tiny import TINY, tiny_pipeline

from genmotion.panorama.config import SampleConfig
from genmotion.panorama.context import ContextPool
from genmotion.panorama.data import PanoDataConfig, toy_clip
from genmotion.panorama.model import attention_flops, patchify, unpatchify
from genmotion.panorama.sampler import call_inputs
from genmotion.panorama.train import PanoBatches, panorama_loss


def test_patchify_round_trip() -> None:
    x = torch.randn(2, 3, 3, 24, 24)
    t = patchify(x, 4)
    assert t.shape == (2, 3, 36, 48)
    assert torch.equal(unpatchify(t, 4, 6), x)


def _call() -> tuple:
    clip = toy_clip(torch.Generator().manual_seed(1), PanoDataConfig(frames=6, input_size=(12, 16)), TINY.face_size)
    pool = ContextPool(clip.cond, clip.mask, TINY, SampleConfig())
    pool.add_window(0, clip.gt[0:2])
    return call_inputs(pool, 0, 2, 4, {1: clip.gt[2:4, 1]}, SampleConfig()), clip


def test_context_tokens_attend_only_within_their_frame() -> None:
    model = tiny_pipeline().model
    inp, _ = _call()
    slot = 6 * TINY.cells**2
    state = model.encode_context(inp.ctx_feats, inp.ctx_role, inp.ctx_pos, inp.ctx_valid)
    changed = inp.ctx_feats.clone()
    changed[:, :slot] += 1.0  # the first frame slot only
    state2 = model.encode_context(changed, inp.ctx_role, inp.ctx_pos, inp.ctx_valid)
    last_k, last_k2 = state.keys[-1], state2.keys[-1]
    assert torch.equal(last_k[:, :, slot:], last_k2[:, :, slot:])  # other frames never see it
    assert not torch.allclose(last_k[:, :, :slot], last_k2[:, :, :slot])
    x = torch.randn(1, inp.gen_cond.shape[1], TINY.token_channels)
    gen = torch.cat([x, inp.gen_cond], -1)
    t = torch.tensor([0.3])
    v1, v2 = model.velocity(gen, t, inp.gen_pos, state), model.velocity(gen, t, inp.gen_pos, state2)
    assert not torch.allclose(v1, v2)  # generated tokens attend to everything


def test_invalid_slots_change_nothing() -> None:
    model = tiny_pipeline().model
    inp, _ = _call()
    slot = 6 * TINY.cells**2
    pad = lambda x: torch.cat([x, torch.randn_like(x[:, :slot].float()).to(x.dtype)], 1)
    valid = torch.cat([inp.ctx_valid, torch.zeros(1, slot, dtype=torch.bool)], 1)
    role = torch.cat([inp.ctx_role, torch.zeros(1, slot, dtype=torch.long)], 1)
    s1 = model.encode_context(inp.ctx_feats, inp.ctx_role, inp.ctx_pos, inp.ctx_valid)
    s2 = model.encode_context(pad(inp.ctx_feats), role, pad(inp.ctx_pos), valid)
    gen = torch.cat([torch.randn(1, inp.gen_cond.shape[1], TINY.token_channels), inp.gen_cond], -1)
    t = torch.tensor([0.5])
    torch.testing.assert_close(model.velocity(gen, t, inp.gen_pos, s1), model.velocity(gen, t, inp.gen_pos, s2))


def test_context_pool_holds_history_current_and_future() -> None:
    inp, clip = _call()
    roles = set(inp.ctx_role[inp.ctx_valid].tolist())
    assert {0, 1, 2} <= roles  # past window, a made face, warped input
    times = inp.ctx_pos[0, inp.ctx_valid[0], 0]
    assert float(times.min()) == -2.0  # two frames of history before the window start
    sparse = attention_flops(inp.gen_cond.shape[1], inp.ctx_valid[0], 6 * TINY.cells**2, True)
    full = attention_flops(inp.gen_cond.shape[1], inp.ctx_valid[0], 6 * TINY.cells**2, False)
    assert full > 1.5 * sparse


def test_training_loss_backpropagates() -> None:
    model = tiny_pipeline().model.train()
    data = PanoDataConfig(frames=6, input_size=(12, 16), pool_clips=2)
    batch = next(iter(PanoBatches(data, TINY, 3, seed=0)))
    loss, logs = panorama_loss(model, batch)
    loss.backward()
    assert torch.isfinite(loss) and logs["ctx_tokens"] > 0
    assert model.out.weight.grad is not None and model.out.weight.grad.abs().sum() > 0


def test_training_on_a_folder_of_equirect_videos(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from genmotion.io import open_video_writer

    with open_video_writer(tmp_path / "clips" / "a.mp4", 8, preset="ultrafast") as w:
        w.write(np.random.default_rng(0).integers(0, 256, (6, 32, 64, 3), dtype=np.uint8))
    data = PanoDataConfig(source=str(tmp_path / "clips"), frames=4, input_size=(12, 16), pool_clips=1)
    batch = next(iter(PanoBatches(data, TINY, 2, seed=0)))
    assert batch["target"].shape[0] == 2 and bool(batch["ctx_valid"].any())
