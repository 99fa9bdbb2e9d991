"""Ca2-VDM's adapter onto the core flow loops: `GuidedFlow`, the model bound to a text condition as the engine's
`FlowModel` (with classifier-free guidance as one doubled batch).

Axes: B batch, L tokens, D token channels, E text width.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from genmotion.kv.layered import LayeredKVCache
from genmotion.nn.blocks import ConditionMemo
from genmotion.nn.masks import MaskArg
from genmotion.sampling.guidance import guide
from genmotion.video.ca2vdm.model import Ca2VDM

__all__ = ["GuidedFlow"]


class GuidedFlow(nn.Module):
    """`Ca2VDM` bound to a text condition, as the core `FlowModel` (velocity of x at t, positions, cache).

    With `guidance != 1` every call runs the conditional and the null rows as one doubled batch (the cache
    holds both) and returns null + guidance * (cond - null), the one guidance rule (`genmotion.sampling.guide`).
    A binding never changes its condition: a prompt schedule binds each prompt once and the flow loop picks
    the binding per chunk (`flow_stream(model_at=...)`); the cached clean frames keep the scene. The memo
    holds the AdaLN values of this condition per flow time (a cache of values, not state the output depends on).
    """

    def __init__(self, model: Ca2VDM, cond_BE: torch.Tensor, guidance: float = 1.0) -> None:
        super().__init__()
        self.model, self.guidance = model, guidance  # a wrapper: its weights are the model's
        self.batch = cond_BE.shape[0]
        null = self.model.null_condition(self.batch).to(cond_BE.dtype)
        self.cond = (torch.cat([cond_BE, null]) if self.guided else cond_BE).detach()  # sampling: no autograd
        self.memo = ConditionMemo()  # per-time AdaLN values of this condition

    @property
    def guided(self) -> bool:
        return self.guidance != 1.0

    def new_cache(self, batch: int, capacity: int, **kwargs: Any) -> LayeredKVCache:
        return self.model.new_cache(2 * batch if self.guided else batch, capacity, **kwargs)

    def forward(
        self,
        x_BLD: torch.Tensor,
        t_BL: torch.Tensor,
        positions_L: torch.Tensor,
        *,
        cache: LayeredKVCache | None = None,
        mask: MaskArg = "causal",
    ) -> torch.Tensor:
        if not self.guided:
            return self.model(x_BLD, t_BL, positions_L, self.cond, cache=cache, mask=mask, memo=self.memo)
        x, t = torch.cat([x_BLD, x_BLD]), torch.cat([t_BL, t_BL])
        v = self.model(x, t, positions_L, self.cond, cache=cache, mask=mask, memo=self.memo)
        cond, null = v.chunk(2)
        return guide(cond, null, self.guidance)
