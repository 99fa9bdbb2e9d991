import torch

from genmotion.engine import TokenLoopConfig, generate_tokens, token_stream
from genmotion.nn import TinyTokenModel, TinyTransformerConfig, block_causal_mask, ids_from_lengths
from genmotion.sampling import Sampler, guide

V = 13


def _model() -> TinyTokenModel:
    torch.manual_seed(0)
    return TinyTokenModel(V, TinyTransformerConfig(dim=16, depth=2, heads=2)).eval()


def _reference_greedy(model, prompt, steps, scale=1.0):
    """No cache: rerun the whole sequence every step."""
    seq = prompt
    with torch.no_grad():
        for _ in range(steps):
            logits = model(seq, torch.arange(seq.shape[1]))[:, -1:]
            if scale != 1.0:
                cond, uncond = logits.chunk(2)
                logits = guide(cond, uncond, scale)
                nxt = logits.argmax(-1)
                nxt = torch.cat([nxt, nxt])
            else:
                nxt = logits.argmax(-1)
            seq = torch.cat([seq, nxt], dim=1)
    return seq[: seq.shape[0] // (2 if scale != 1.0 else 1), prompt.shape[1] :]


def test_next_token_with_cache_equals_recompute():
    model, prompt = _model(), torch.tensor([[1, 2, 3], [4, 5, 6]])
    config = TokenLoopConfig(block_sizes=(1,) * 6)
    out = generate_tokens(
        model, prompt, config, cache=model.new_cache(2, 9), sampler=Sampler(temperature=0.0), generator=None
    )
    assert torch.equal(out, _reference_greedy(model, prompt, 6))


def test_guided_next_token_equals_recompute():
    model, prompt = _model(), torch.tensor([[1, 2], [7, 7]])  # conditional row, unconditional row
    config = TokenLoopConfig(block_sizes=(1,) * 4, guidance_scale=2.0)
    out = generate_tokens(
        model, prompt, config, cache=model.new_cache(2, 6), sampler=Sampler(temperature=0.0), generator=None
    )
    assert out.shape == (1, 4) and torch.equal(out, _reference_greedy(model, prompt, 4, scale=2.0))


def test_stream_equals_generate_and_seed_reproduces():
    model, prompt = _model(), torch.tensor([[1, 2, 3]])
    config = TokenLoopConfig(block_sizes=(1,) * 5)

    def run(seed: int):
        gen = torch.Generator().manual_seed(seed)
        return token_stream(model, prompt, config, cache=model.new_cache(1, 8), sampler=Sampler(), generator=gen)

    streamed = torch.cat([chunk.tokens for chunk in run(3)], dim=1)
    collected = generate_tokens(
        model,
        prompt,
        config,
        cache=model.new_cache(1, 8),
        sampler=Sampler(),
        generator=torch.Generator().manual_seed(3),
    )
    assert torch.equal(streamed, collected)
    assert [c.index for c in run(3)] == list(range(5))


def test_next_scale_blocks_equal_block_causal_recompute():
    model, sizes = _model(), (1, 2, 3)
    sos = torch.tensor([[0], [5]])

    def embed_next(tokens: torch.Tensor, k: int) -> torch.Tensor:  # a stand-in for VAR's upsampled f_hat
        return (tokens.sum(-1, keepdim=True) + torch.arange(sizes[k])) % V

    def step(inputs, positions, *, cache):  # block-causal: a scale sees every cached scale and all of itself
        return model(inputs, positions, cache=cache, mask=None)

    config = TokenLoopConfig(block_sizes=sizes)
    out = generate_tokens(
        step,
        sos,
        config,
        cache=model.new_cache(2, 6),
        sampler=Sampler(temperature=0.0),
        generator=None,
        embed_next=embed_next,
    )
    seq, tokens, mask_ids = sos, None, ids_from_lengths(sizes)
    with torch.no_grad():
        for k, size in enumerate(sizes):
            if k:
                seq = torch.cat([seq, embed_next(tokens, k)], dim=1)
            mask = block_causal_mask(mask_ids[: seq.shape[1]])
            tokens = model(seq, torch.arange(seq.shape[1]), mask=mask)[:, -size:].argmax(-1)
            assert torch.equal(out[:, sum(sizes[:k]) : sum(sizes[: k + 1])], tokens)


def test_logits_processor_forces_tokens():
    model, prompt = _model(), torch.tensor([[1]])

    def force_seven(logits: torch.Tensor, step: int) -> torch.Tensor:
        forced = torch.full_like(logits, float("-inf"))
        forced[..., 7] = 0.0
        return forced if step % 2 == 0 else logits

    out = generate_tokens(
        model,
        prompt,
        TokenLoopConfig(block_sizes=(1,) * 4),
        cache=model.new_cache(1, 5),
        sampler=Sampler(),
        generator=torch.Generator().manual_seed(0),
        processors=[force_seven],
    )
    assert out[0, 0] == 7 and out[0, 2] == 7
