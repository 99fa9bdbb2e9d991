"""`load_weights(prefix=, skip=)`: the one way a run starts from part of another checkpoint."""

import pytest
import torch
from torch import nn

from genmotion.checkpoint import load_weights, save_pretrained
from genmotion.errors import InputError


class _Whole(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tokenizer = nn.Linear(3, 2)
        self.transformer = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        self.register_buffer("latent_mean", torch.zeros(2))


def _saved(tmp_path):
    torch.manual_seed(0)
    whole = _Whole()
    whole.latent_mean.fill_(5.0)
    return whole, save_pretrained(tmp_path / "ck", whole, {"kind": "test"})


def test_prefix_loads_one_part_of_a_whole_checkpoint(tmp_path):
    whole, d = _saved(tmp_path)
    part = load_weights(nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)), d, prefix="transformer.")
    for key, value in part.state_dict().items():
        assert torch.equal(value, whole.state_dict()[f"transformer.{key}"])
    with pytest.raises(InputError, match="do not match"):  # the tokenizer's keys are not the transformer's
        load_weights(nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)), d, prefix="tokenizer.")


def test_skip_keeps_the_model_own_weights_for_those_keys(tmp_path):
    whole, d = _saved(tmp_path)
    other = _Whole()
    own = {k: v.clone() for k, v in other.state_dict().items()}
    load_weights(other, d, skip=("tokenizer.", "latent_mean"))
    for key, value in other.state_dict().items():
        expected = own[key] if key.startswith(("tokenizer.", "latent_mean")) else whole.state_dict()[key]
        assert torch.equal(value, expected), key
    assert float(other.latent_mean[0]) == 0.0  # skipped: not 5 as saved
