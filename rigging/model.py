"""The RigAnything network (Liu et al., 2025): shape tokens from surface points, BFS joint tokens, one
hybrid-attention transformer (shape tokens see each other; joint tokens see the shape and earlier joints),
and heads for the next joint's position, its parent (self = stop) and the skin.

The position head is anchored: a pointer scores the earlier joints (which one the next joint grows from;
the origin for the root), and a small head (diffusion or regression) draws the offset from the chosen
anchor. With `local_tokens` > 0 the head also reads the shape around the anchor directly: the contextual
shape tokens nearest to it, each with its centre relative to the anchor (where the body goes on from here),
max-pooled; the pooled feature enters through a zero-initialised projection, so a model without it loads
and starts unchanged. The skin head sees, for each point and joint, the distance from the point to the joint's bones
(the segments to its children), the feature skin weights mostly depend on.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from genmotion.nn.blocks import PreNormBlock
from genmotion.nn.rope import Rotary
from genmotion.rigging.config import RigModelConfig

__all__ = [
    "Denoiser",
    "RigAnything",
    "bone_distances",
    "direction_labels",
    "fourier",
    "gather_rows",
    "sequence_positions",
    "sphere_directions",
]


_SKIN_BANDS = 3  # sin/cos frequencies of the point - joint offset seen by the skin head
_BONE_FEATURES = 5  # bone distance, its excess over the nearest bone's, two soft-nearest scores, leaf flag
_BONE_SCALE = 0.1  # bone distances are divided by this (normalised units)
_PRIOR_TAU = 0.03  # the skin prior logit is -(excess bone distance) / this
_FAR = 3.0  # the bone distance of a joint without bones (a leaf: it carries no weight)


def fourier(x: torch.Tensor, bands: int) -> torch.Tensor:
    """(..., 3) -> (..., 3 + 6 bands): x and sin/cos of x at frequencies 2^k pi."""
    freqs = (2.0 ** torch.arange(bands, device=x.device, dtype=x.dtype)) * math.pi
    xf = x[..., None] * freqs  # (..., 3, bands)
    return torch.cat([x, xf.sin().flatten(-2), xf.cos().flatten(-2)], dim=-1)


_ZERO_BONE = 0.01  # a scaled offset shorter than this is the "zero bone" direction class (a stop step's)


def sphere_directions(n: int) -> torch.Tensor:
    """(n, 3) unit vectors spread evenly over the sphere (a Fibonacci lattice)."""
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (1 + math.sqrt(5.0)) * i
    r = (1 - z * z).sqrt()
    return torch.stack([r * phi.cos(), r * phi.sin(), z], dim=-1).float()


def direction_labels(x0_K3: torch.Tensor, directions_D3: torch.Tensor) -> torch.Tensor:
    """(...,) the direction class of scaled offsets (..., 3): the nearest of the D directions, or D (the zero bone)
    for an offset shorter than `_ZERO_BONE`."""
    nearest = (x0_K3 @ directions_D3.to(x0_K3).T).argmax(dim=-1)
    return torch.where(x0_K3.norm(dim=-1) < _ZERO_BONE, directions_D3.shape[0], nearest)


def sequence_positions(num_shape: int, num_joint_tokens: int, device: torch.device | None = None) -> torch.Tensor:
    """(S + 1 + J,) positions: shape tokens 0, the begin token 1, joint i's token i + 2."""
    return torch.cat(
        [torch.zeros(num_shape, dtype=torch.long), torch.arange(1, num_joint_tokens + 2, dtype=torch.long)]
    ).to(device)


def gather_rows(x_BNC: torch.Tensor, idx_BMG: torch.Tensor) -> torch.Tensor:
    """Rows of x (B, N, C) at indices (B, M, G) -> (B, M, G, C), without materialising (B, M, N, C)."""
    B, N, C = x_BNC.shape
    flat = idx_BMG + torch.arange(B, device=idx_BMG.device).view(B, 1, 1) * N
    return x_BNC.reshape(B * N, C)[flat]


def bone_distances(
    xyz_BN3: torch.Tensor, joints_BJ3: torch.Tensor, parents_BJ: torch.Tensor, bone_BJ: torch.Tensor
) -> torch.Tensor:
    """(B, N, J): distance from each point to the nearest bone that starts at joint j (parent j -> child c for
    every c with `bone[c]` true; parents (B, J) clamped to >= 0); `_FAR` where j has no bone."""
    a = torch.gather(joints_BJ3, 1, parents_BJ.clamp(min=0)[..., None].expand(-1, -1, 3))  # bone starts (B, J, 3)
    ab = joints_BJ3 - a
    ap = xyz_BN3[:, :, None] - a[:, None]  # (B, N, J, 3)
    t = ((ap * ab[:, None]).sum(-1) / (ab * ab).sum(-1).clamp(min=1e-12)[:, None]).clamp(0.0, 1.0)
    d = (ap - t[..., None] * ab[:, None]).norm(dim=-1).masked_fill(~bone_BJ[:, None], _FAR)  # by child (B, N, J)
    out = torch.full_like(d, _FAR)
    index = parents_BJ.clamp(min=0)[:, None].expand_as(d)
    return out.scatter_reduce(2, index, d, reduce="amin", include_self=True)


def _mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class _ResBlock(nn.Module):
    """x + MLP(AdaLN(x; cond)): the MAR denoiser block."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.mod = nn.Linear(width, 3 * width)
        self.mlp = _mlp([width, width, width])

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.mod(nn.functional.silu(cond)).chunk(3, dim=-1)
        return x + gate * self.mlp(self.norm(x) * (1 + scale) + shift)


class Denoiser(nn.Module):
    """eps(x_t (..., 3), t (...,) in [0, T), context (..., C)) -> (..., 3): a small conditional MLP."""

    def __init__(self, context: int, width: int, depth: int) -> None:
        super().__init__()
        self.width = width
        self.inp, self.cond = nn.Linear(3, width), nn.Linear(context, width)
        self.time = _mlp([width, width, width])
        self.blocks = nn.ModuleList(_ResBlock(width) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 3))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        half = self.width // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=x_t.device, dtype=x_t.dtype) / half)
        ang = t.to(x_t.dtype)[..., None] * freqs
        cond = self.cond(context) + self.time(torch.cat([ang.cos(), ang.sin()], dim=-1))
        x = self.inp(x_t)
        for block in self.blocks:
            x = block(x, cond)
        return self.out(x)


class RigAnything(nn.Module):
    """The modules of the rigger; the training loss and the sampling loop live outside."""

    def __init__(self, config: RigModelConfig) -> None:
        super().__init__()
        self.config = c = config
        fdim = 3 + 6 * c.fourier_bands
        self.group_mlp = _mlp([fdim + 3, c.width, c.width])
        self.centre_embed = _mlp([fdim + 3, c.width, c.width])
        self.joint_embed = _mlp([2 * fdim, c.width, c.width])
        self.index_embed = nn.Embedding(c.max_joints + 1, c.width)
        self.parent_embed = nn.Embedding(c.max_joints + 1, c.width)
        self.begin = nn.Parameter(torch.zeros(1, 1, c.width))
        self.blocks = nn.ModuleList(PreNormBlock(c.width, c.heads, mlp_ratio=c.mlp_ratio) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.width)
        self.rotary = Rotary(c.width // c.heads)
        if c.position_head == "diffusion":
            self.denoiser: Denoiser | None = Denoiser(c.width, c.head_width, c.head_depth)
            self.regressor: nn.Module | None = None
        else:
            self.denoiser, self.regressor = None, _mlp([c.width, c.head_width, c.head_width, 3])
        self.anchor_query, self.anchor_key = nn.Linear(c.width, c.width), nn.Linear(c.width, c.width)
        self.anchor_embed = _mlp([c.width + fdim + 3, c.width, c.width])
        self.local_rel: nn.Module | None = None
        if c.local_tokens:
            self.local_rel = _mlp([fdim, c.width, c.width])
            self.local_mlp = _mlp([c.width, c.width, c.width])
            self.local_out = nn.Linear(c.width, c.width)
            nn.init.zeros_(self.local_out.weight)
            nn.init.zeros_(self.local_out.bias)
        self.direction_head: nn.Module | None = None
        if c.direction_bins:
            self.register_buffer("directions", sphere_directions(c.direction_bins), persistent=False)
            self.direction_head = _mlp([c.width, c.width, c.direction_bins + 1])
            self.direction_embed = nn.Embedding(c.direction_bins + 1, c.width)
            nn.init.zeros_(self.direction_embed.weight)  # the offset head starts as it was without a direction
        self.query = _mlp([c.width + fdim, c.width, c.width])
        self.candidate = nn.Linear(c.width, c.width)
        self.pair_score = nn.Sequential(nn.GELU(), nn.Linear(c.width, 1))
        self.self_score = _mlp([c.width, c.width, 1])
        self.point_mlp = _mlp([fdim + 3, c.width, c.width])
        self.skin_point, self.skin_joint = nn.Linear(c.width, c.skin_width), nn.Linear(c.width, c.skin_width)
        self.skin_geometry = nn.Linear(3 + 6 * _SKIN_BANDS + 1 + _BONE_FEATURES, c.skin_width)
        self.skin_prior = nn.Parameter(torch.ones(()))
        self.skin_score = nn.Sequential(
            nn.GELU(), nn.Linear(c.skin_width, c.skin_width), nn.GELU(), nn.Linear(c.skin_width, 1)
        )

    # ------------------------------------------------------------------------------------------- tokens
    def _feat(self, xyz: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
        return torch.cat([fourier(xyz, self.config.fourier_bands), normals], dim=-1)

    def shape_tokens(self, points_BN6: torch.Tensor) -> torch.Tensor:
        """(B, N, 6) -> (B, S, C): the first S points are centres; each max-pools its G nearest samples."""
        c = self.config
        xyz, nrm = points_BN6[..., :3], points_BN6[..., 3:]
        centres = xyz[:, : c.shape_tokens]  # (B, S, 3)
        idx = torch.cdist(centres, xyz).topk(c.group_size, dim=-1, largest=False).indices  # (B, S, G)
        gather = gather_rows(points_BN6, idx)  # (B, S, G, 6)
        rel = self._feat(gather[..., :3] - centres[:, :, None], gather[..., 3:])
        pooled = self.group_mlp(rel).amax(dim=2)
        return pooled + self.centre_embed(self._feat(centres, nrm[:, : c.shape_tokens]))

    def joint_tokens(self, joints_BJ3: torch.Tensor, parents_BJ: torch.Tensor) -> torch.Tensor:
        """(B, J, 3) positions and (B, J) parent indices (root: 0) -> (B, J, C) joint tokens."""
        parent_xyz = torch.gather(joints_BJ3, 1, parents_BJ[..., None].expand(-1, -1, 3))
        index = torch.arange(joints_BJ3.shape[1], device=joints_BJ3.device)
        return self.joint_embedding(joints_BJ3, parent_xyz, index[None], parents_BJ)

    def joint_embedding(
        self, xyz_BJ3: torch.Tensor, parent_xyz_BJ3: torch.Tensor, index_BJ: torch.Tensor, parent_BJ: torch.Tensor
    ) -> torch.Tensor:
        """Token (B, J, C) of joints at `index` with positions, their parents' positions and parent indices."""
        bands = self.config.fourier_bands
        x = self.joint_embed(torch.cat([fourier(xyz_BJ3, bands), fourier(parent_xyz_BJ3, bands)], dim=-1))
        return x + self.index_embed(index_BJ) + self.parent_embed(parent_BJ)

    def backbone(self, x_BLC: torch.Tensor, positions_L: torch.Tensor, cache: object | None = None) -> torch.Tensor:
        """Tokens (B, L, C) at sequence positions (L,) -> contextual features (B, L, C); `cache` a LayeredKVCache."""
        for i, block in enumerate(self.blocks):
            layer = None if cache is None else cache[i]  # type: ignore[index]
            x_BLC = block(x_BLC, positions_L, self.rotary, cache=layer)
        return self.norm(x_BLC)

    def prompt(self, points_BN6: torch.Tensor) -> torch.Tensor:
        """(B, N, 6) -> (B, S + 1, C): the shape tokens and the begin token."""
        shape = self.shape_tokens(points_BN6)
        return torch.cat([shape, self.begin.expand(shape.shape[0], -1, -1)], dim=1)

    # -------------------------------------------------------------------------------------------- heads
    def anchor_logits(self, h_BKC: torch.Tensor, anchor_BAC: torch.Tensor) -> torch.Tensor:
        """Step contexts (B, K, C) x anchor features (B, A, C) -> (B, K, A) pointer logits: which anchor the
        next joint grows from (unmasked)."""
        q, k = self.anchor_query(h_BKC), self.anchor_key(anchor_BAC)
        return q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])

    def anchor_context(
        self,
        h_BKC: torch.Tensor,
        anchor_BAC: torch.Tensor,
        geo_BA6: torch.Tensor,
        idx_BKM: torch.Tensor,
        shape: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The position head's context (B, K, M, C) for M chosen anchors (B, K, M) of every step: the step's
        context plus an embedding of the anchor's features and geometry (position, and its own bone vector),
        plus, with `local_tokens`, the pooled shape tokens around the anchor (`shape` = contextual shape
        tokens (B, S, C) and their centres (B, S, 3); required then)."""
        B, K, M = idx_BKM.shape
        flat = idx_BKM.reshape(B, K * M, 1)
        feat = gather_rows(anchor_BAC, flat)[:, :, 0]  # (B, K M, C)
        geo = gather_rows(geo_BA6, flat)[:, :, 0]  # (B, K M, 6)
        emb = self.anchor_embed(torch.cat([feat, self._feat(geo[..., :3], geo[..., 3:])], dim=-1))
        if self.local_rel is not None:
            if shape is None:
                raise ValueError("this model reads the shape around each anchor: pass shape=(tokens, centres)")
            emb = emb + self.local_context(geo[..., :3], *shape)
        return h_BKC[:, :, None] + emb.reshape(B, K, M, -1)

    def local_context(self, xyz_BQ3: torch.Tensor, shape_BSC: torch.Tensor, centres_BS3: torch.Tensor) -> torch.Tensor:
        """(B, Q, C): the `local_tokens` shape tokens nearest each query position (B, Q, 3), their features
        plus an embedding of their centre relative to the query (in bone-vector units), max-pooled."""
        assert self.local_rel is not None
        idx = torch.cdist(xyz_BQ3, centres_BS3).topk(self.config.local_tokens, dim=-1, largest=False).indices
        rel = (gather_rows(centres_BS3, idx) - xyz_BQ3[:, :, None]) / self.config.offset_scale  # (B, Q, G, 3)
        x = gather_rows(shape_BSC, idx) + self.local_rel(fourier(rel, self.config.fourier_bands))
        return self.local_out(self.local_mlp(x).amax(dim=2))

    def direction_logits(self, context: torch.Tensor) -> torch.Tensor:
        """Position-head contexts (..., C) -> (..., D + 1) logits of the bone direction class (D: the zero bone)."""
        assert self.direction_head is not None, "this model has no direction classes (direction_bins 0)"
        return self.direction_head(context)

    def with_direction(self, context: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """The offset head's context (..., C) given the direction class (...,)."""
        return context + self.direction_embed(label)

    def regress(self, context: torch.Tensor) -> torch.Tensor:
        """(..., C) -> (..., 3) scaled offset from the anchor (regression head)."""
        assert self.regressor is not None, "this model has a diffusion position head"
        return self.regressor(context)

    def parent_scores(
        self, h_BKC: torch.Tensor, xyz_BK3: torch.Tensor, cand_BIC: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Step contexts (B, K, C) with their joint positions (B, K, 3), earlier joints' features (B, I, C) ->
        pair scores (B, K, I) and the stop (self) score (B, K)."""
        q = self.query(torch.cat([h_BKC, fourier(xyz_BK3, self.config.fourier_bands)], dim=-1))
        pair = self.pair_score(q[:, :, None] + self.candidate(cand_BIC)[:, None]).squeeze(-1)
        return pair, self.self_score(q).squeeze(-1)

    def point_features(
        self, query_BP6: torch.Tensor, points_BN6: torch.Tensor, shape_out_BSC: torch.Tensor
    ) -> torch.Tensor:
        """Features (B, P, C) of query points (B, P, 6) on the shape `points` (B, N, 6): an MLP of the point plus
        the inverse-distance mix of its 3 nearest contextual shape tokens (B, S, C)."""
        xyz = query_BP6[..., :3]
        centres = points_BN6[:, : self.config.shape_tokens, :3]
        d, idx = torch.cdist(xyz, centres).topk(3, dim=-1, largest=False)  # (B, P, 3)
        w = 1.0 / (d + 1e-3)
        w = w / w.sum(-1, keepdim=True)
        near = gather_rows(shape_out_BSC, idx)  # (B, P, 3, C)
        return self.point_mlp(self._feat(xyz, query_BP6[..., 3:])) + (w[..., None] * near).sum(2)

    def skin_logits(
        self,
        point_BNC: torch.Tensor,
        joint_BJC: torch.Tensor,
        point_xyz_BN3: torch.Tensor,
        joint_xyz_BJ3: torch.Tensor,
        parents_BJ: torch.Tensor,
        bone_BJ: torch.Tensor,
    ) -> torch.Tensor:
        """(B, N, C) point features x (B, J, C) joint features, with the points' and joints' positions and the
        tree (parents (B, J), `bone` (B, J): joint c ends a real bone) -> (B, N, J) logits (softmax over
        joints). The pair also sees the offset point - joint, its length and the distances to the joint's
        bones; a learnt multiple of "excess distance over the nearest bone" is added as a prior logit."""
        offset = point_xyz_BN3[:, :, None] - joint_xyz_BJ3[:, None]  # (B, N, J, 3)
        d = bone_distances(point_xyz_BN3, joint_xyz_BJ3, parents_BJ, bone_BJ)  # (B, N, J)
        excess = d - d.amin(dim=-1, keepdim=True)
        bones = torch.stack(
            [d / _BONE_SCALE, excess / _BONE_SCALE, (-excess / 0.02).exp(), (-excess / 0.05).exp(), (d >= _FAR).to(d)],
            dim=-1,
        )
        geometry = torch.cat([fourier(offset, _SKIN_BANDS), offset.norm(dim=-1, keepdim=True), bones], dim=-1)
        pair = self.skin_point(point_BNC)[:, :, None] + self.skin_joint(joint_BJC)[:, None]
        learnt = self.skin_score(pair + self.skin_geometry(geometry)).squeeze(-1)
        return learnt - self.skin_prior * excess / _PRIOR_TAU
