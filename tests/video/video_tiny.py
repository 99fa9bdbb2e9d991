"""Tiny VideoAR configs shared by the video tests (2 layers, width 32, 16x16 frames, scales 1, 2)."""

import torch

from genmotion.video.config import VideoTokenizerConfig
from genmotion.video.videoar.config import VideoARConfig, VideoARTransformerConfig
from genmotion.video.videoar.model import VideoAR

TINY_TOKENIZER = VideoTokenizerConfig(
    image_size=16, widths=(8, 8, 8), latent_channels=4, vocab_size=32, patch_nums=(1, 2)
)
TINY_TRANSFORMER = VideoARTransformerConfig(
    width=32, depth=2, heads=2, rope_axes=(4, 6, 6), text_dim=384, sink_frames=1, window_frames=2, max_sink_distance=5
)
TINY = VideoARConfig(tokenizer=TINY_TOKENIZER, transformer=TINY_TRANSFORMER)


def tiny_model(seed: int = 0) -> VideoAR:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VideoAR(TINY)
        for p in model.parameters():  # zero-initialised AdaLN/temporal layers would hide bugs
            if p.dim() >= 1:
                p.data.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def tiny_ca2vdm(seed: int = 0):
    """A randomly initialised tiny causal flow video model (16x16 frames, 4 tokens per frame, chunks of 2)."""
    from genmotion.video.ca2vdm.config import Ca2VDMConfig, CausalFlowConfig
    from genmotion.video.ca2vdm.model import Ca2VDM

    flow = CausalFlowConfig(width=32, depth=2, heads=2, cond_dim=16, patch=1, frames_per_chunk=2, context_frames=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Ca2VDM(Ca2VDMConfig(tokenizer=TINY_TOKENIZER, flow=flow))
        for p in model.parameters():  # the zero-initialised output layer would hide bugs
            if p.dim() >= 1:
                p.data.add_(torch.randn_like(p) * 0.1)
    return model.eval()
