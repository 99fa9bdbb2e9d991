import torch
from flow_tiny import tiny_flow_model, tiny_layout

from genmotion.cache import SharedClean
from genmotion.engine import FlowLoopConfig, flow_generate, flow_stream
from genmotion.nn import TinyFlowModel

LAYOUT = tiny_layout(2)


def _model() -> TinyFlowModel:
    return tiny_flow_model(2)


def test_stream_equals_generate_and_chunks_are_typed():
    model, config = _model(), FlowLoopConfig(num_frames=5, num_steps=2)
    chunks = list(flow_stream(model, SharedClean(), LAYOUT, config, generator=torch.Generator().manual_seed(1)))
    assert [(c.index, c.start_frame, c.latents.shape[1]) for c in chunks] == [(0, 0, 2), (1, 2, 2), (2, 4, 1)]
    video = flow_generate(model, SharedClean(), LAYOUT, config, generator=torch.Generator().manual_seed(1))
    assert video.shape == (1, 5, 2, 3)
    assert torch.equal(torch.cat([c.latents for c in chunks], dim=1), video)


def test_commit_forwards_one_per_chunk_but_the_last():
    policy, config = SharedClean(), FlowLoopConfig(num_frames=6, num_steps=4, solver="heun")
    video = flow_generate(_model(), policy, LAYOUT, config, generator=torch.Generator().manual_seed(0))
    assert policy.stats.forwards_run == 3 * config.evaluations_per_chunk + 2
    assert not video.requires_grad and torch.is_grad_enabled()  # no_grad inside, not leaked to the caller


def test_model_at_picks_the_model_of_each_chunk_and_of_the_commit_before_it():
    """A prompt schedule: chunk k denoises with model_at(its start) and is committed with model_at(next start)."""
    first, second = _model(), tiny_flow_model(2, seed=1)
    calls: list[tuple[str, int]] = []

    def model_at(frame: int) -> TinyFlowModel:
        which = first if frame < 4 else second
        calls.append(("first" if which is first else "second", frame))
        return which

    config = FlowLoopConfig(num_frames=6, num_steps=2)
    mixed = flow_generate(
        first, SharedClean(), LAYOUT, config, generator=torch.Generator().manual_seed(3), model_at=model_at
    )
    assert calls == [("first", 0), ("first", 2), ("first", 2), ("second", 4), ("second", 4)]
    plain = flow_generate(first, SharedClean(), LAYOUT, config, generator=torch.Generator().manual_seed(3))
    assert torch.equal(mixed[:, :2], plain[:, :2])  # the first chunk never sees the second model
    assert not torch.equal(mixed[:, 4:], plain[:, 4:])


def test_project_changes_what_is_committed_not_what_is_yielded():
    """project(clean, start) is committed in place of each generated chunk (not the last, not the prefix): the
    same as running the loop chunk by chunk with the projected chunks as the clean prefix."""
    model, config = _model(), FlowLoopConfig(num_frames=6, num_steps=2)
    seen: list[int] = []

    def project(clean: torch.Tensor, start: int) -> torch.Tensor:
        seen.append(start)
        return 0.5 * clean

    g = torch.Generator().manual_seed(4)
    chunks = list(flow_stream(model, SharedClean(), LAYOUT, config, generator=g, project=project))
    assert seen == [0, 2]  # the last chunk is not committed
    plain = flow_generate(model, SharedClean(), LAYOUT, config, generator=torch.Generator().manual_seed(4))
    assert torch.equal(chunks[0].latents, plain[:, :2])  # the first chunk is drawn before any projection
    # chunk 2 by hand: the projected chunks 0 and 1 as a prefix, the generator past their noise
    g = torch.Generator().manual_seed(4)
    for _ in range(2):  # chunks 0 and 1's noise
        torch.randn(1, 2 * LAYOUT.tokens_per_frame, LAYOUT.channels, generator=g)
    prefix = 0.5 * torch.cat([chunks[0].latents, chunks[1].latents], dim=1)
    tail = flow_generate(model, SharedClean(), LAYOUT, FlowLoopConfig(num_frames=2, num_steps=2), generator=g,
                         prefix_BFNC=prefix)  # fmt: skip
    torch.testing.assert_close(tail, chunks[2].latents)
