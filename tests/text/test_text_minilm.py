"""The pure-torch MiniLM forward equals sentence-transformers' all-MiniLM-L6-v2 (pooled and per token).

The reference embeddings were computed once with sentence-transformers 6.3.0 on the packaged model folder
(`SentenceTransformer(folder).encode(SENTENCES)`, pooled and `output_value="token_embeddings"`) and stored in
`minilm_reference.safetensors`, so this runs everywhere without that package.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from genmotion.text import PromptEncoder

SENTENCES = [
    "a red ball bouncing to the left",
    "A blue square moves up, slowly, over a GREEN background!",
    "hi",
    "",
]
REFERENCE = Path(__file__).with_name("minilm_reference.safetensors")


def test_matches_stored_sentence_transformers_embeddings() -> None:
    reference = load_file(str(REFERENCE))
    ours = PromptEncoder().encode(SENTENCES)
    pooled = reference["pooled"]
    assert pooled.shape == (len(SENTENCES), 384)
    assert torch.nn.functional.cosine_similarity(ours.pooled, pooled).min() >= 0.9999
    torch.testing.assert_close(ours.pooled, pooled, atol=1e-4, rtol=0)
    for i in range(2):
        reference_LD = reference[f"tokens_{i}"]
        assert int(ours.mask[i].sum()) == reference_LD.shape[0]
        torch.testing.assert_close(ours.tokens[i, : reference_LD.shape[0]], reference_LD, atol=1e-4, rtol=0)


def test_reference_is_not_trivially_matched() -> None:
    """A wrong encoder (here: the right one on shuffled words) must fail the comparison above."""
    reference = load_file(str(REFERENCE))["pooled"]
    wrong = PromptEncoder().encode(["left the to bouncing ball red a", *SENTENCES[1:]]).pooled
    assert (wrong[0] - reference[0]).abs().max() > 1e-2
