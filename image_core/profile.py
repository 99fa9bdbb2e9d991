"""Offline head profiling of a VAR transformer for the next-scale KV policies (HACK's head types, ScaleKV's
drafters). The lead exposes it as `genmotion profile-heads`; `HACK` and `ScaleKV` read the JSON it writes.

Method: sample a few images with the full cache; at every scale k >= 1 record every query of the scale
and read the attention it pays the cached keys. Per head:
* alignment: attention mass a query puts on keys of earlier scales spatially aligned with it (within
  one cell of that scale) divided by the mass the query-averaged attention puts on the same keys. A
  structural ("diagonal") head follows the query's position (ratio >> 1); a contextual ("vertical")
  head attends to the same keys whatever the query (ratio ~ 1). Heads with ratio >= `threshold`
  (default 1.1: a tenth more than position-blind attention) are structural.
* column_concentration: share of the query-averaged attention on its top 10 % keys (how vertical).
Per layer and scale: prefix_mass, the attention mass on earlier scales (dispersed layers = drafters).

JSON: the suite's head-profile envelope (`genmotion.cache.profile`), kind "next-scale":
    {"format": "genmotion.head-profile", "version": 2, "kind": "next-scale",
     "num_layers": D, "num_heads": H, "patch_nums": [...], "samples": n, "threshold": 1.1,
     "head_types": [["structural" | "contextual", ... H] ... D],
     "alignment": [[float ... H] ... D], "column_concentration": [[float ... H] ... D],
     "prefix_mass": [[float ... K] ... D], "drafter_fraction": 0.25,
     "drafters": [[layer ids] ... K]}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from genmotion.cache.profile import PROFILE_FORMAT, PROFILE_VERSION, check_profile, write_profile_json
from genmotion.errors import InputError
from genmotion.image_core.kv_policies import FullKV
from genmotion.image_core.sampler import stream_scales
from genmotion.image_core.var_model import VAR
from genmotion.nn.quantizer import MultiScaleQuantizer

__all__ = ["NEXT_SCALE", "load_head_profile", "profile_var_heads", "write_head_profile"]

NEXT_SCALE = "next-scale"
LEGACY_FORMAT = "genmotion-var-head-profile"  # version 1 of this profile, before the shared envelope


def _centres(pn: int, device: torch.device) -> torch.Tensor:
    """(pn*pn, 2) cell centres of a pn x pn map in [0, 1] (x, y)."""
    c = (torch.arange(pn, device=device, dtype=torch.float32) + 0.5) / pn
    return torch.stack(torch.meshgrid(c, c, indexing="xy"), -1).reshape(-1, 2)


def _aligned(var: VAR, scale_index: int, device: torch.device) -> torch.Tensor:
    """bool (l, N_prefix): key j of an earlier scale lies within one of its cells of query i."""
    queries = _centres(var.patch_nums[scale_index], device)
    cols = []
    for pn in var.patch_nums[:scale_index]:
        d = (queries[:, None] - _centres(pn, device)[None]).abs().amax(-1)
        cols.append(d <= 1.0 / pn)
    return torch.cat(cols, dim=1)


class _Recorder(FullKV):
    """Full cache that also observes every query of every scale and accumulates head statistics."""

    def __init__(self, var: VAR) -> None:
        super().__init__()
        D, H, K = len(var.blocks), var.config.num_heads, len(var.patch_nums)
        self.var = var
        self.aligned_mass = torch.zeros(D, H)
        self.baseline_mass = torch.zeros(D, H)
        self.concentration = torch.zeros(D, H)
        self.prefix = torch.zeros(D, K)
        self.counts = torch.zeros(K)

    def observation_rows(self, scale_index: int) -> torch.Tensor | None:
        return torch.arange(self.var.patch_nums[scale_index] ** 2)

    def after_scale(self, cache: Any, scale_index: int, queries: Any) -> None:
        super().after_scale(cache, scale_index, queries)
        if scale_index == 0:
            return
        begin = self.var.config.scale_slices[scale_index][0]
        aligned = None
        for layer, (q, layer_cache) in enumerate(zip(queries, cache, strict=True)):
            attn = torch.softmax(q.float() @ layer_cache.keys.float().transpose(-1, -2), -1)  # B, H, l, N
            if aligned is None:
                aligned = _aligned(self.var, scale_index, attn.device).float()  # l, N_prefix
            prefix = attn[..., :begin]  # B, H, l, N_prefix
            mean = prefix.mean(2, keepdim=True)
            self.aligned_mass[layer] += (prefix * aligned).sum(-1).mean((0, 2)).cpu()
            self.baseline_mass[layer] += (mean * aligned).sum(-1).mean((0, 2)).cpu()
            column = attn.mean(2)  # B, H, N
            top = max(1, column.shape[-1] // 10)
            self.concentration[layer] += column.topk(top, -1).values.sum(-1).mean(0).cpu()
            self.prefix[layer, scale_index] += float(prefix.sum(-1).mean())
        self.counts[scale_index] += 1


@torch.no_grad()
def profile_var_heads(
    var: VAR,
    quantizer: MultiScaleQuantizer,
    *,
    generator: torch.Generator,
    labels: torch.Tensor | None = None,
    num_samples: int = 8,
    threshold: float = 1.1,
    drafter_fraction: float = 0.25,
    guidance_scale: float = 1.0,
) -> dict[str, Any]:
    """Profile `var`'s heads on `num_samples` samples (classes spread evenly unless `labels` are given)."""
    device = var.pos_1LC.device
    if labels is None:
        labels = torch.arange(num_samples, device=device) % var.num_classes
    recorder = _Recorder(var)
    for _ in stream_scales(var, quantizer, labels, generator=generator, guidance_scale=guidance_scale, policy=recorder):
        pass
    steps = max(1.0, float(recorder.counts.sum()))
    alignment = recorder.aligned_mass / recorder.baseline_mass.clamp_min(1e-12)
    prefix = recorder.prefix / recorder.counts.clamp_min(1)
    depth = len(var.blocks)
    count = min(depth, max(1, round(drafter_fraction * depth)))
    drafters = [sorted(prefix[:, k].topk(count).indices.tolist()) for k in range(len(var.patch_nums))]
    return {
        "format": PROFILE_FORMAT,
        "version": PROFILE_VERSION,
        "kind": NEXT_SCALE,
        "num_layers": depth,
        "num_heads": var.config.num_heads,
        "patch_nums": list(var.patch_nums),
        "samples": int(labels.numel()),
        "threshold": threshold,
        "head_types": [["structural" if a >= threshold else "contextual" for a in row] for row in alignment.tolist()],
        "alignment": [[round(a, 4) for a in row] for row in alignment.tolist()],
        "column_concentration": [[round(c / steps, 4) for c in row] for row in recorder.concentration.tolist()],
        "prefix_mass": [[round(p, 4) for p in row] for row in prefix.tolist()],
        "drafter_fraction": drafter_fraction,
        "drafters": drafters,
    }


def write_head_profile(profile: dict[str, Any], path: str | Path) -> Path:
    """Write a profile in the shared head-profile envelope, atomically."""
    fields = {k: v for k, v in profile.items() if k not in ("format", "version", "kind")}
    return write_profile_json(fields, NEXT_SCALE, path)


def upgrade_profile(data: dict[str, Any]) -> dict[str, Any]:
    """A version-1 VAR profile (its own format, `depth`) in the shared envelope; others unchanged."""
    if data.get("format") != LEGACY_FORMAT:
        return data
    fields = {("num_layers" if k == "depth" else k): v for k, v in data.items() if k not in ("format", "version")}
    return {"format": PROFILE_FORMAT, "version": PROFILE_VERSION, "kind": NEXT_SCALE, **fields}


def load_head_profile(path: str | Path, var: VAR | None = None) -> dict[str, Any]:
    """Read a profile JSON; with `var`, check it describes this model's layers, heads and scales."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read the head profile {p}", why=str(e), fix="write one with profile-heads") from e
    if not isinstance(raw, dict):
        raise InputError(f"{p} is not a VAR head profile", why="it does not hold a JSON object")
    profile = check_profile(upgrade_profile(raw), NEXT_SCALE, str(p))
    if var is not None:
        want = (len(var.blocks), var.config.num_heads, list(var.patch_nums))
        have = (profile.get("num_layers"), profile.get("num_heads"), profile.get("patch_nums"))
        if have != want:
            raise InputError(
                f"the head profile {p} was made for depth/heads/scales {have}, not this model's {want}",
                fix="profile this model (profile_var_heads / genmotion profile-heads)",
            )
    return profile
