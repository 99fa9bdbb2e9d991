"""VideoAR transformer invariances: the cached frame loop equals the masked training pass; sink clamping;
the change-weighted loss."""

import math

import pytest
import torch

from genmotion.video.videoar.layout import ScaleLayout, clip_attention, context_frames
from genmotion.video.videoar.loss import (
    TrainingSettings,
    _clip_logits,
    change_weighted_loss,
    previous_codes,
    requantize_with_errors,
)


def _teacher_forced(model, video, text):
    """Logits of every scale token of a clip, by the training pass (the loss's own) and by the cached loop."""
    tr, q = model.transformer, model.tokenizer.quantize
    layout = tr.layout
    B, T = video.shape[:2]
    f = model.tokenizer.latents(video).flatten(0, 1)
    gt = q.f_to_indices(f)
    inputs = q.idxBl_to_var_input(gt).view(B, T, layout.scale_tokens - 1, -1)
    fhat, scale_codes = requantize_with_errors(q, f, torch.zeros(B * T), torch.Generator())
    codes = torch.cat(scale_codes, dim=1).view(B, T, -1)
    clean_in = fhat.flatten(2).transpose(1, 2).reshape(B, T, layout.clean_tokens, -1)
    cond = tr.condition(text)
    full = _clip_logits(tr, cond, inputs, fhat, scale_codes, None).view(B, T, layout.scale_tokens, -1)

    cache = tr.new_cache(B, dtype=torch.float32)
    steps = []
    for t in range(T):
        cache.scales.reset()
        outs = []
        prev_t = tr.previous_tokens([codes[:, t - 1]] if t else None, B, text.device)
        for si in range(layout.num_scales):
            sl = layout.scale_slice(si)
            if si == 0:
                xs = tr.embed_scales(cond, inputs.new_zeros(B, 0, inputs.shape[-1]), prev_t[:, :1])
            else:
                xs = tr.embed_scales(cond, inputs[:, t, sl.start - 1 : sl.stop - 1], prev_t[:, sl], first_scale=si)
            outs.append(tr.logits(tr.step(xs, cond, layout.scale_positions(t, si), cache, clean=False), cond))
        tr.step(tr.embed_clean(clean_in[:, t]), cond, layout.clean_positions(t), cache, clean=True)
        steps.append(torch.cat(outs, dim=1))
    return full, torch.stack(steps, dim=1), cache


def test_cached_loop_equals_training_pass(model):
    g = torch.Generator().manual_seed(0)
    video = torch.rand(2, 6, 3, 16, 16, generator=g) * 2 - 1
    text = torch.randn(2, 384, generator=g)
    with torch.no_grad():
        full, cached, cache = _teacher_forced(model, video, text)
    assert full.shape == cached.shape == (2, 6, 5, 32)
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)
    # the ring holds sink + window frames once it has wrapped
    assert cache.frames.length == (1 + 2) * 4


def test_context_frames_rule():
    assert context_frames(0, sink=1, window=2) == []
    assert context_frames(2, sink=1, window=2) == [0, 1]
    assert context_frames(5, sink=1, window=2) == [0, 3, 4]


def test_frame_masking_hides_context():
    layout = ScaleLayout((1, 2))
    keep = torch.ones(1, 4, 4, dtype=torch.bool)
    keep[0, 3, 2] = False
    clip = clip_attention(layout, 4, sink=1, window=2, keep_frames=keep)
    # frame 3's context slots: frame 0 (sink), frames 1 and 2 (window); frame 2 is masked out
    ctx = clip.mask[0, 3, 0, : 3 * 4].view(3, 4).all(dim=1)
    assert ctx.tolist() == [True, True, False]


def test_previous_codes_shift_by_one_frame_and_hide_masked_frames(model):
    tr = model.transformer
    codes = torch.arange(2 * 3 * 5).view(2, 3, 5)
    keep = torch.ones(2, 3, 3, dtype=torch.bool)
    keep[1, 2, 1] = False  # clip 1: frame 2 may not see frame 1
    prev = previous_codes(tr, codes, keep)
    assert (prev[:, 0] == tr.no_previous).all()
    assert torch.equal(prev[0, 1:], codes[0, :-1]) and torch.equal(prev[1, 1], codes[1, 0])
    assert (prev[1, 2] == tr.no_previous).all()


def test_change_weighted_loss_matches_a_loop_over_tokens():
    g = torch.Generator().manual_seed(0)
    B, T, N, V = 2, 3, 5, 7
    target = torch.randint(V, (B, T, N), generator=g)
    target[:, 1, :2] = target[:, 0, :2]  # some tokens keep their code
    logits = torch.randn(B, T * N, V, generator=g)
    loss, changed = change_weighted_loss(logits, target, 4.0)
    total = weights = 0.0
    for b in range(B):
        for t in range(T):
            for n in range(N):
                w = 4.0 if t > 0 and target[b, t, n] != target[b, t - 1, n] else 1.0
                ce = -torch.log_softmax(logits[b, t * N + n], -1)[target[b, t, n]].item()
                total, weights = total + w * ce, weights + w
                assert bool(changed[b, t, n]) == (w == 4.0)
    assert math.isclose(loss.item(), total / weights, rel_tol=1e-5)
    plain, _ = change_weighted_loss(logits, target, 1.0)
    assert torch.allclose(plain, torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten()))


def test_first_frame_weight_matches_a_loop_over_tokens():
    g = torch.Generator().manual_seed(2)
    B, T, N, V = 2, 3, 4, 6
    target = torch.randint(V, (B, T, N), generator=g)
    target[:, 2] = target[:, 1]  # frame 2 keeps every code of frame 1
    logits = torch.randn(B, T * N, V, generator=g)
    loss, _ = change_weighted_loss(logits, target, 2.0, first_frame_weight=5.0)
    total = weights = 0.0
    for b in range(B):
        for t in range(T):
            for n in range(N):
                w = 5.0 if t == 0 else (2.0 if target[b, t, n] != target[b, t - 1, n] else 1.0)
                ce = -torch.log_softmax(logits[b, t * N + n], -1)[target[b, t, n]].item()
                total, weights = total + w * ce, weights + w
    assert math.isclose(loss.item(), total / weights, rel_tol=1e-5)
    with pytest.raises(ValueError, match="first_frame_weight"):
        TrainingSettings(first_frame_weight=0.0)


def test_change_weight_has_no_effect_on_a_clip_that_never_changes():
    g = torch.Generator().manual_seed(1)
    target = torch.randint(7, (2, 1, 5), generator=g).expand(2, 4, 5)
    logits = torch.randn(2, 20, 7, generator=g)
    heavy, changed = change_weighted_loss(logits, target, 9.0)
    assert not changed.any() and torch.allclose(heavy, change_weighted_loss(logits, target, 1.0)[0])


def test_change_weight_below_one_is_refused():
    with pytest.raises(ValueError, match="change_weight"):
        TrainingSettings(change_weight=0.5)


def test_self_context_replaces_the_chosen_clips_context_by_the_models_own_draws(model, monkeypatch):
    """With logits peaked on code (token index mod V), the drawn codes are that pattern, the context is their
    f_hat, and clips not chosen keep their clean coding."""
    from genmotion.video.videoar.loss import _own_context

    tr, q = model.transformer, model.tokenizer.quantize
    B, T, V = 2, 3, q.vocab_size
    g = torch.Generator().manual_seed(3)
    video = torch.rand(B, T, 3, 16, 16, generator=g) * 2 - 1
    f = model.tokenizer.latents(video).flatten(0, 1)
    gt = q.f_to_indices(f)
    inputs = q.idxBl_to_var_input(gt).view(B, T, tr.layout.scale_tokens - 1, -1)
    context, codes = requantize_with_errors(q, f, torch.zeros(B * T), g)
    pattern = torch.arange(T * tr.layout.scale_tokens) % V  # (T * N_s,)
    monkeypatch.setattr(
        tr, "logits", lambda h, cond: 100.0 * torch.nn.functional.one_hot(pattern, V).float().expand(h.shape[0], -1, -1)
    )
    cond = tr.condition(torch.randn(B, 384, generator=g))
    own = torch.tensor([False, True])
    new_context, new_codes = _own_context(
        model.transformer, model.tokenizer.quantize, cond, inputs, context, codes, None, own, g
    )
    drawn = torch.cat([c.view(B, T, -1) for c in new_codes], dim=2)  # (B, T, N_s) in scale order per frame
    expected = pattern.view(T, -1)
    assert torch.equal(drawn[1], expected)
    assert torch.equal(drawn[0], torch.cat([c.view(B, T, -1) for c in codes], dim=2)[0])
    fhat = q.indices_to_fhat([c.view(B, T, -1)[1] for c in new_codes])  # clip 1's T frames
    torch.testing.assert_close(new_context.view(B, T, *f.shape[1:])[1], fhat)
    torch.testing.assert_close(new_context.view(B, T, *f.shape[1:])[0], context.view(B, T, *f.shape[1:])[0])


def test_self_context_changes_the_loss_and_its_rate_is_checked(model):
    from genmotion.video.videoar.loss import videoar_loss

    g = torch.Generator().manual_seed(4)
    video = torch.rand(2, 4, 3, 16, 16, generator=g) * 2 - 1
    text = torch.randn(2, 384, generator=g)
    plain, _ = videoar_loss(model, video, text, TrainingSettings(), torch.Generator().manual_seed(5))
    own, _ = videoar_loss(model, video, text, TrainingSettings(self_context_rate=1.0), torch.Generator().manual_seed(5))
    assert torch.isfinite(own) and not torch.isclose(own, plain)
    own.backward()
    assert model.transformer.clean_embed.weight.grad is not None
    with pytest.raises(ValueError, match="self_context_rate"):
        TrainingSettings(self_context_rate=1.5)


def test_self_context_copy_targets_the_own_previous_code_only_where_the_world_is_unchanged():
    from genmotion.video.videoar.loss import _copy_unchanged, changed_codes

    clean = torch.tensor([[[1, 2, 3], [1, 5, 3], [1, 5, 6]], [[1, 2, 3], [1, 5, 3], [1, 5, 6]]])  # (B=2, T=3, N=3)
    own = torch.tensor([[[7, 2, 9], [8, 5, 4], [0, 0, 0]], [[7, 2, 9], [8, 5, 4], [0, 0, 0]]])
    changed = changed_codes(clean)
    assert changed[0].tolist() == [[False] * 3, [False, True, False], [False, False, True]]
    out = _copy_unchanged(clean, changed, own, torch.tensor([True, False]))
    # clip 0 (own context): frame 0 keeps its clean codes; an unchanged token copies frame t-1's own code,
    # a changed one keeps the clean target; clip 1 (clean context) is untouched
    assert out[0].tolist() == [[1, 2, 3], [7, 5, 9], [8, 5, 6]]
    assert torch.equal(out[1], clean[1])


def test_self_context_copy_changes_the_self_context_loss(model):
    from genmotion.video.videoar.loss import videoar_loss

    g = torch.Generator().manual_seed(4)
    video = (torch.rand(2, 1, 3, 16, 16, generator=g) * 2 - 1).repeat(1, 4, 1, 1, 1)  # a still world
    video[:, 2:, :, :4, :4] = 1.0  # that changes in one corner
    text = torch.randn(2, 384, generator=g)
    own = TrainingSettings(self_context_rate=1.0)
    copy = TrainingSettings(self_context_rate=1.0, self_context_copy=True)
    a, _ = videoar_loss(model, video, text, own, torch.Generator().manual_seed(5))
    b, _ = videoar_loss(model, video, text, copy, torch.Generator().manual_seed(5))
    assert torch.isfinite(b) and not torch.isclose(a, b)
    plain = TrainingSettings(self_context_copy=True)  # inert without self context
    c, _ = videoar_loss(model, video, text, plain, torch.Generator().manual_seed(5))
    d, _ = videoar_loss(model, video, text, TrainingSettings(), torch.Generator().manual_seed(5))
    assert torch.equal(c, d)


def test_self_context_rounds_draw_each_round_given_the_last(model, monkeypatch):
    """`self_context_rounds` r: the own context is drawn r times, each draw reading the previous round's context,
    so the last round's frames inherit r frames of the model's own errors; r = 1 is the single draw."""
    import genmotion.video.videoar.loss as L

    seen, real = [], L._own_context

    def spy(tr, q, cond, inputs, context, codes, keep, own, generator):
        seen.append(context.clone())
        out = real(tr, q, cond, inputs, context, codes, keep, own, generator)
        seen.append(out[0].clone())
        return out

    monkeypatch.setattr(L, "_own_context", spy)
    g = torch.Generator().manual_seed(4)
    video = torch.rand(2, 4, 3, 16, 16, generator=g) * 2 - 1
    text = torch.randn(2, 384, generator=g)
    one_round = TrainingSettings(self_context_rate=1.0)
    two_rounds = TrainingSettings(self_context_rate=1.0, self_context_rounds=2)
    one, _ = L.videoar_loss(model, video, text, one_round, torch.Generator().manual_seed(5))
    assert len(seen) == 2
    seen.clear()
    two, _ = L.videoar_loss(model, video, text, two_rounds, torch.Generator().manual_seed(5))
    assert len(seen) == 4 and torch.equal(seen[2], seen[1])  # round 2 reads round 1's draw
    assert torch.isfinite(two) and not torch.isclose(one, two)
    with pytest.raises(ValueError, match="self_context_rounds"):
        TrainingSettings(self_context_rounds=0)
