"""The pure-torch MiniLM forward equals sentence-transformers' all-MiniLM-L6-v2 (pooled and per token)."""

from __future__ import annotations

import pytest
import torch

from genmotion.text import PromptEncoder

SENTENCES = [
    "a red ball bouncing to the left",
    "A blue square moves up, slowly, over a GREEN background!",
    "hi",
    "",
]


@pytest.mark.slow  # imports sentence-transformers/transformers: 4-7 s on its own
def test_matches_sentence_transformers() -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    encoder = PromptEncoder()
    ours = encoder.encode(SENTENCES)
    reference = sentence_transformers.SentenceTransformer(str(encoder.files.folder), device="cpu")
    pooled = reference.encode(SENTENCES, convert_to_tensor=True).float()
    assert torch.nn.functional.cosine_similarity(ours.pooled, pooled).min() >= 0.9999
    torch.testing.assert_close(ours.pooled, pooled, atol=1e-4, rtol=0)
    tokens = reference.encode(SENTENCES, output_value="token_embeddings")
    for i, reference_LD in enumerate(tokens):
        assert int(ours.mask[i].sum()) == reference_LD.shape[0]
        torch.testing.assert_close(ours.tokens[i, : reference_LD.shape[0]], reference_LD.float(), atol=1e-4, rtol=0)
