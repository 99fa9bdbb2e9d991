"""The `riganything` training task: teacher-forced joint positions (a pointer over shape tokens + the
offset from the chosen token by diffusion or regression), parent / stop cross-entropy and soft skin
cross-entropy on procedural creatures (RigAnything, Liu et al., 2025).

Axes: B batch, S shape tokens, J joints (padded), K = J + 1 joint steps, P skin points, C width.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genmotion.config import to_dict
from genmotion.rigging.anchors import anchor_losses, anchor_table, draw_positions
from genmotion.rigging.config import RigDataConfig, RigModelConfig, RigSamplingConfig
from genmotion.rigging.creatures import random_creature
from genmotion.rigging.data import RigBatches, collate, creature_sample
from genmotion.rigging.diffusion import cosine_alphas_cumprod
from genmotion.rigging.model import RigAnything, sequence_positions

__all__ = ["RIG_KIND", "RigTrainModel", "RigAnythingTask", "jitter_joints", "rig_losses", "teacher_forced_error"]

RIG_KIND = "riganything"


@dataclass(frozen=True, kw_only=True)
class RigTrainModel:
    """The `model:` section: the architecture, the sampling defaults saved with it, and loss weights."""

    net: RigModelConfig = field(default_factory=RigModelConfig)
    sampling: RigSamplingConfig = field(default_factory=RigSamplingConfig)
    noise_samples: int = 4  # noise draws per joint step and anchor (MAR's diffusion batch multiplier)
    # > 0: the joints the model reads (its tokens and anchors) are jittered by Gaussian noise of a standard
    # deviation drawn per creature in [0, context_noise] (normalised units); the targets stay the true joints, so
    # each step learns to grow the true next joint from slightly wrong earlier ones, as in free sampling
    context_noise: float = 0.0
    anchor_weight: float = 1.0
    parent_weight: float = 1.0
    skin_weight: float = 1.0


def parent_logits(pair_BKI: torch.Tensor, stop_BK: torch.Tensor) -> torch.Tensor:
    """(B, K, I) pair scores and (B, K) stop scores -> (B, K, I + 1) logits where step k may pick an earlier
    joint i < k or itself (column k = stop); other columns are -inf."""
    B, K, n_cand = pair_BKI.shape
    logits = torch.cat([pair_BKI, pair_BKI.new_zeros(B, K, 1)], dim=-1)
    col = torch.arange(n_cand + 1, device=logits.device)
    step = torch.arange(K, device=logits.device)[:, None]
    logits = torch.where(col[None] == step, stop_BK[..., None], logits)
    return logits.masked_fill(col[None] > step, float("-inf"))


def jitter_joints(
    joints_BJ3: torch.Tensor, num_joints_B: torch.Tensor, max_std: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Joints (B, J, 3) plus Gaussian noise of a standard deviation drawn per row uniformly in [0, max_std];
    padding rows (index >= num_joints) are left as they are."""
    B, J, _ = joints_BJ3.shape
    dev = joints_BJ3.device
    std = torch.rand(B, 1, 1, generator=generator, device=dev) * max_std
    real = (torch.arange(J, device=dev)[None] < num_joints_B[:, None])[..., None]
    eps = torch.randn(joints_BJ3.shape, generator=generator, device=dev)
    return joints_BJ3 + torch.where(real, std * eps, 0.0)


def rig_losses(
    model: RigAnything,
    batch: dict[str, torch.Tensor],
    cfg: RigTrainModel,
    alphas: torch.Tensor,
    generator: torch.Generator | None = None,
    context_joints: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Teacher-forced losses of one batch: `position` (offset head), `anchor` (pointer), `direction` (the direction
    class; 0 without `direction_bins`), `parent`, `skin` (scalars), and the metrics `parent_acc` and `anchor_acc`
    (how often the pointer's most likely anchor is the true one: the parent, the origin for the root).
    `context_joints` (B, J, 3): the joints the model reads as earlier joints and anchors (default the true ones);
    targets and the skin are always the true joints."""
    points, joints, parents, n = batch["points"], batch["joints"], batch["parents"], batch["num_joints"]
    B, J, _ = joints.shape
    S = model.config.shape_tokens
    seen = joints if context_joints is None else context_joints
    x = torch.cat([model.prompt(points), model.joint_tokens(seen, parents)], dim=1)
    out = model.backbone(x, sequence_positions(S, J, points.device))
    h, cand = out[:, S : S + J + 1], out[:, S + 1 :]  # (B, K, C) step contexts, (B, J, C) joint features
    K = J + 1
    steps = torch.arange(K, device=points.device)
    valid = steps[None] <= n[:, None]  # (B, K): real joints and the stop step
    target = torch.cat([joints, joints[:, :1]], dim=1)  # the stop step's position is the root's
    target = torch.where((steps[None] == n[:, None])[..., None], joints[:, :1], target)
    table = anchor_table(out[:, S], cand, seen, parents, (out[:, :S], points[:, :S, :3]))
    goal = torch.cat([parents.new_zeros(B, 1), parents[:, 1:] + 1, parents.new_ones(B, 1)], dim=1)  # (B, K)
    goal = torch.where(steps[None] == n[:, None], 1, goal)  # the stop step grows from the root, offset 0
    pointer, offset, hit, bins = anchor_losses(model, h, table, goal, target, alphas, cfg.noise_samples, generator)
    count = valid.sum()
    anchor, position, anchor_acc, direction = [(v * valid).sum() / count for v in (pointer, offset, hit, bins)]
    pair, stop = model.parent_scores(h, target, cand)
    logits = parent_logits(pair, stop)  # (B, K, J + 1)
    goal = torch.cat([parents, parents.new_zeros(B, 1)], dim=1)
    goal = torch.where(steps[None] == n[:, None], steps[None].expand(B, -1), goal)
    use = valid & (steps[None] >= 1)
    ce = F.cross_entropy(logits[use], goal[use])
    acc = (logits[use].argmax(-1) == goal[use]).float().mean()
    query = torch.gather(points, 1, batch["skin_index"][..., None].expand(-1, -1, 6))
    pf = model.point_features(query, points, out[:, :S])
    real = steps[None, :J] < n[:, None]  # (B, J)
    skin_logits = model.skin_logits(pf, cand, query[..., :3], joints, parents, real & (steps[None, :J] >= 1))
    skin_logits = skin_logits.masked_fill(~real[:, None], float("-inf"))
    logp = torch.log_softmax(skin_logits, dim=-1).clamp(min=-1e4)
    skin = -(batch["skin"] * logp).sum(-1).mean()
    return {
        "position": position,
        "anchor": anchor,
        "direction": direction,
        "parent": ce,
        "skin": skin,
        "parent_acc": acc,
        "anchor_acc": anchor_acc,
    }


@torch.no_grad()
def teacher_forced_error(
    model: RigAnything, batch: dict[str, torch.Tensor], sample_steps: int, generator: torch.Generator | None
) -> float:
    """Mean distance (normalised units) from a drawn next joint to the true one, every step given the true
    earlier joints (temperature 1, as sampled)."""
    points, joints, parents, n = batch["points"], batch["joints"], batch["parents"], batch["num_joints"]
    B, J, _ = joints.shape
    S = model.config.shape_tokens
    x = torch.cat([model.prompt(points), model.joint_tokens(joints, parents)], dim=1)
    out = model.backbone(x, sequence_positions(S, J, points.device))
    table = anchor_table(out[:, S], out[:, S + 1 :], joints, parents, (out[:, :S], points[:, :S, :3]))
    alphas = cosine_alphas_cumprod(model.config.diffusion_steps).to(out)
    drawn = [draw_positions(model, out[:, S + k], table, k, alphas, sample_steps, 1.0, generator) for k in range(J)]
    err = (torch.stack([d.positions for d in drawn], dim=1) - joints).norm(dim=-1)  # (B, J)
    valid = torch.arange(J, device=points.device)[None] < n[:, None]
    return float((err * valid).sum() / valid.sum())


class RigAnythingTask:
    """`task: riganything` for `genmotion train`."""

    model_config = RigTrainModel
    data_config = RigDataConfig

    def __init__(self) -> None:
        self._cfg: RigTrainModel | None = None
        self._alphas: torch.Tensor | None = None

    def build_model(self, model_cfg: RigTrainModel) -> nn.Module:
        self._cfg = model_cfg
        self._alphas = cosine_alphas_cumprod(model_cfg.net.diffusion_steps).float()
        return RigAnything(model_cfg.net)

    def dataloader(self, data_cfg: RigDataConfig, batch_size: int, seed: int, rank: int, world_size: int) -> Any:
        workers = data_cfg.workers
        return torch.utils.data.DataLoader(
            RigBatches(data_cfg, batch_size, seed),
            batch_size=None,
            num_workers=workers,
            prefetch_factor=4 if workers else None,
            persistent_workers=workers > 0,
        )

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        assert isinstance(model, RigAnything) and self._cfg is not None and self._alphas is not None
        cfg = self._cfg
        seen = None
        if cfg.context_noise > 0:
            seen = jitter_joints(batch["joints"], batch["num_joints"], cfg.context_noise)
        parts = rig_losses(model, batch, cfg, self._alphas, context_joints=seen)
        loss = parts["position"] + cfg.anchor_weight * parts["anchor"] + parts["direction"]
        loss = loss + cfg.parent_weight * parts["parent"] + cfg.skin_weight * parts["skin"]
        return loss, {k: float(v.detach()) for k, v in parts.items()}

    def checkpoint_config(self, model_cfg: RigTrainModel, data_cfg: RigDataConfig) -> dict[str, Any]:
        return {
            "kind": RIG_KIND,
            "net": to_dict(model_cfg.net),
            "sampling": to_dict(model_cfg.sampling),
            "held_out": list(data_cfg.held_out),
        }

    @torch.no_grad()
    def evaluate(self, model: nn.Module, model_cfg: RigTrainModel, data_cfg: RigDataConfig) -> dict[str, float]:
        """Teacher-forced losses and parent accuracy on creatures of the held-out body plans."""
        assert isinstance(model, RigAnything)
        rng = np.random.default_rng(1234)
        gen = torch.Generator().manual_seed(0)
        alphas = cosine_alphas_cumprod(model_cfg.net.diffusion_steps).float()
        out: dict[str, float] = {}
        for plan in data_cfg.held_out:
            samples = [creature_sample(random_creature(plan, rng), data_cfg, rng) for _ in range(16)]
            batch = collate(samples, data_cfg.skin_points, rng)
            parts = rig_losses(model, batch, model_cfg, alphas, gen)
            out.update({f"heldout_{plan}_{k}": float(v) for k, v in parts.items()})
            steps = model_cfg.sampling.sample_steps
            out[f"heldout_{plan}_next_joint_error"] = teacher_forced_error(model, batch, steps, gen)
        return out
