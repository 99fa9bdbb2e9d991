"""The attention probe every cache policy reads: rows and snapshots."""

import pytest
import torch
from flow_tiny import tiny_flow_model

from genmotion.cache import AttentionProbe, attention_probabilities
from genmotion.errors import UsageError


def _forward(model, cache, frames, start):
    g = torch.Generator().manual_seed(start)
    x = torch.randn(1, 2 * frames, 3, generator=g)
    t = torch.full((1, 2 * frames), 0.5)
    return model(x, t, start + torch.arange(2 * frames) // 2, cache=cache, mask="causal")


def test_probing_rows_gives_those_rows_of_the_full_probe_and_no_snapshot_leaves_history_empty():
    model = tiny_flow_model()
    cache = model.new_cache(1, 16)
    with torch.no_grad():
        _forward(model, cache, 2, 0)
        rows = torch.tensor([1, 2])
        with AttentionProbe(model) as full, AttentionProbe(model, rows=rows, snapshot=False) as some:
            _forward(model, cache.read_only(), 2, 2)
    for call, part in zip(full.calls, some.calls, strict=True):
        torch.testing.assert_close(part.q, call.q[:, :, rows], rtol=0, atol=1e-6)  # a subset's projection may
        torch.testing.assert_close(part.v, call.v[:, :, rows], rtol=0, atol=1e-6)  # round in the last bit
        assert torch.equal(part.positions, call.positions[rows])
        assert call.history_k.shape[2] == 4 and part.history_k.shape[2] == 0
        assert call.scale == call.q.shape[-1] ** -0.5 == part.scale
        assert attention_probabilities(call).shape == (1, 2, 4, 8)


def test_only_models_with_attention_layers_can_be_probed():
    with pytest.raises(UsageError, match="no attention layers"):
        AttentionProbe(torch.nn.Linear(2, 2))
