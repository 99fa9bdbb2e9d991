"""`cubecomposer`: trains the panorama flow transformer by flow matching on one face x one window per
sample, with the context built exactly as at inference (ContextPool) but from ground truth: a random
window, the planner's order, a random number of faces already made (ground truth), up to two earlier
windows, the warped input for the rest and the future fragments.

Axes: B batch, Lg / Lc generated / context tokens, K token channels.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from genmotion.config import to_dict
from genmotion.panorama.config import CubeComposerConfig, SampleConfig
from genmotion.panorama.context import ContextPool
from genmotion.panorama.cube import pad_faces, plan_faces
from genmotion.panorama.data import Clip, PanoDataConfig, folder_clip, toy_clip, video_files
from genmotion.panorama.model import CubeComposerModel, patchify
from genmotion.panorama.sampler import call_inputs, windows
from genmotion.sampling.flow import flow_path, velocity_target

__all__ = ["CubeComposerTask", "PanoBatches", "face_sample", "panorama_loss"]

log = logging.getLogger(__name__)
KIND = "cubecomposer"


def face_sample(clip: Clip, config: CubeComposerConfig, g: torch.Generator) -> dict[str, torch.Tensor]:
    """One training call from a clip: inputs as `call_inputs` builds them, and the padded ground-truth face."""
    spans = windows(clip.gt.shape[0], config.window)
    w = int(torch.randint(len(spans), (), generator=g))
    s, e = spans[w]
    order = plan_faces(clip.mask[s:e])
    k = int(torch.randint(6, (), generator=g))
    made = {f: clip.gt[s:e, f] for f in order[:k]}
    face = order[k]
    sample = SampleConfig()
    pool = ContextPool(clip.cond, clip.mask, config, sample)
    for ps, pe in spans[max(0, w - config.history_windows) : w]:
        pool.add_window(ps, clip.gt[ps:pe])
    inputs = call_inputs(pool, face, s, e, made, sample)
    target = patchify(pad_faces(clip.gt[s:e], config.pad_pixels, (face,))[:, 0], config.patch).flatten(0, 1)
    return {
        "gen_cond": inputs.gen_cond[0],
        "gen_pos": inputs.gen_pos[0],
        "ctx_feats": inputs.ctx_feats[0],
        "ctx_role": inputs.ctx_role[0],
        "ctx_pos": inputs.ctx_pos[0],
        "ctx_valid": inputs.ctx_valid[0],
        "target": target,
        "noise": torch.randn(target.shape, generator=g),
        "t": torch.rand((), generator=g),
    }


def collate(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack samples; contexts are right-padded to the longest with invalid frame slots."""
    n = max(s["ctx_role"].shape[0] for s in samples)
    out: dict[str, list[torch.Tensor]] = {k: [] for k in samples[0]}
    for s in samples:
        pad = n - s["ctx_role"].shape[0]  # whole frame slots: every context length is a multiple of a slot
        for k, v in s.items():
            if k.startswith("ctx_"):
                v = torch.cat([v, v.new_zeros((pad, *v.shape[1:]))])
            out[k].append(v)
    return {k: torch.stack(v) for k, v in out.items()}


class PanoBatches(torch.utils.data.IterableDataset):
    """Endless batches from a ring of `pool_clips` clips; one fresh clip replaces the oldest per batch."""

    def __init__(self, data: PanoDataConfig, config: CubeComposerConfig, batch_size: int, seed: int) -> None:
        super().__init__()
        self.data, self.config, self.batch_size, self.seed = data, config, batch_size, seed
        self.files = None if data.source == "toyworld" else video_files(data.source)

    def clip(self, g: torch.Generator) -> Clip:
        if self.files is None:
            return toy_clip(g, self.data, self.config.face_size)
        return folder_clip(g, self.files, self.data, self.config.face_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed)
        ring = [self.clip(g) for _ in range(self.data.pool_clips)]
        step = 0
        while True:
            ring[step % len(ring)] = self.clip(g)
            picks = torch.randint(len(ring), (self.batch_size,), generator=g).tolist()
            yield collate([face_sample(ring[i], self.config, g) for i in picks])
            step += 1


def panorama_loss(model: CubeComposerModel, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Velocity MSE of the padded face tokens at flow time t (B,)."""
    x1, x0, t = batch["target"], batch["noise"], batch["t"]
    xt = flow_path(x0, x1, t[:, None, None])
    state = model.encode_context(batch["ctx_feats"], batch["ctx_role"], batch["ctx_pos"], batch["ctx_valid"])
    v = model.velocity(torch.cat([xt, batch["gen_cond"]], -1), t, batch["gen_pos"], state)
    loss = (v - velocity_target(x0, x1)).square().mean()
    return loss, {"ctx_tokens": float(batch["ctx_valid"].sum(1).float().mean())}


class CubeComposerTask:
    """The `cubecomposer` training task (see the module docstring)."""

    model_config = CubeComposerConfig
    data_config = PanoDataConfig

    def __init__(self) -> None:
        self._model_cfg = CubeComposerConfig()

    def build_model(self, model_cfg: CubeComposerConfig) -> nn.Module:
        self._model_cfg = model_cfg  # the data stream needs the face size, window and context settings
        return CubeComposerModel(model_cfg)

    def dataloader(self, data_cfg: PanoDataConfig, batch_size: int, seed: int, rank: int, world_size: int) -> Any:
        batches = PanoBatches(data_cfg, self._model_cfg, batch_size, seed)
        return torch.utils.data.DataLoader(batches, batch_size=None)

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        assert isinstance(model, CubeComposerModel)
        return panorama_loss(model, batch)

    def checkpoint_config(self, model_cfg: CubeComposerConfig, data_cfg: PanoDataConfig) -> dict[str, Any]:
        return {"kind": KIND, "model": to_dict(model_cfg), "fps": 8.0}

    def evaluate(self, model: nn.Module, model_cfg: CubeComposerConfig, data_cfg: PanoDataConfig) -> dict[str, float]:
        """PSNR of held-out toy clips (seeded): uncovered region vs ground truth, covered region vs the input."""
        from genmotion.panorama.metrics import psnr_masked
        from genmotion.panorama.sampler import CubeComposerSampler

        assert isinstance(model, CubeComposerModel)
        g = torch.Generator().manual_seed(12345)
        sampler = CubeComposerSampler(model.eval(), SampleConfig())
        unc, cov = [], []
        for _ in range(data_cfg.eval_clips):
            clip = toy_clip(g, data_cfg, model_cfg.face_size)
            cube = torch.cat([w.cube for w in sampler.stream(clip.cond, clip.mask, torch.Generator().manual_seed(0))])
            m = clip.mask.expand_as(cube)
            unc.append(psnr_masked(cube, clip.gt, 1 - m))
            cov.append(psnr_masked(cube, clip.cond, m))
        return {"eval_uncovered_psnr": sum(unc) / len(unc), "eval_covered_psnr": sum(cov) / len(cov)}
