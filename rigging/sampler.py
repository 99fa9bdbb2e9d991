"""RigAnything's joint-by-joint sampling on the core discrete loop (`genmotion.engine.discrete.token_stream`),
and the skin head evaluated on mesh vertices.

The adapter: the prompt is the shape tokens plus the begin token (one prefill); every decode step feeds one
joint token. The loop's "logits" are the transformer's features h_k (R, 1, C); its token sampler draws the
joint's position (an anchor by the pointer: an earlier joint, or the origin for the root; then the offset
from it), then its parent over the earlier joints and itself (self = stop), and returns the token (R, 1, 4) =
(x, y, z, parent). Axes: R skeletons sampled at once, S shape tokens, J joints, V vertices, C width.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import torch

from genmotion.engine.discrete import TokenLoopConfig, token_stream
from genmotion.kv.layered import LayeredKVCache
from genmotion.rigging.anchors import AnchorDraw, AnchorTable, anchor_table, draw_positions, offset_error, snap_inside
from genmotion.rigging.config import RigSamplingConfig
from genmotion.rigging.diffusion import cosine_alphas_cumprod
from genmotion.rigging.model import RigAnything, sequence_positions

__all__ = ["JointStep", "SampledSkeletons", "joint_steps", "skin_weights", "teacher_forced_skin"]


@dataclass(frozen=True)
class JointStep:
    """Step k of R parallel samples: positions (R, 3) in normalised space, parents (R,) (k = stop), and
    which rows were still growing before this step (R,)."""

    index: int
    positions: torch.Tensor
    parents: torch.Tensor
    alive: torch.Tensor


@dataclass(frozen=True)
class SampledSkeletons:
    """Every row's joints (list of (J_r, 3)), parents (list of (J_r,), -1 at the root), joint features
    (list of (J_r, C)), score (R,) (log-likelihood estimate, higher is better) and the shape-token
    features (R, S, C)."""

    joints: list[torch.Tensor]
    parents: list[torch.Tensor]
    features: list[torch.Tensor]
    scores: torch.Tensor
    shape_features: torch.Tensor


class _EngineModel:
    """The `TokenModel` view of RigAnything: engine positions t -> sequence positions (shape 0, begin 1,
    joint i at i + 2); keeps the prefill's shape-token features for the skin head."""

    def __init__(self, model: RigAnything) -> None:
        self.model, self.shape = model, model.config.shape_tokens
        self.shape_features: torch.Tensor | None = None

    def __call__(self, inputs: torch.Tensor, positions: torch.Tensor, *, cache: LayeredKVCache) -> torch.Tensor:
        pos = torch.where(positions < self.shape, torch.zeros_like(positions), positions - self.shape + 1)
        out = self.model.backbone(inputs, pos, cache)
        if self.shape_features is None:
            self.shape_features = out[:, : self.shape]
        return out


class _JointDecoder:
    """The loop's token sampler and `embed_next`; holds the joints decoded so far."""

    def __init__(
        self,
        model: RigAnything,
        engine: _EngineModel,
        points_RN6: torch.Tensor,
        cfg: RigSamplingConfig,
        max_joints: int,
    ) -> None:
        self.model, self.engine, self.cfg, self.step, self.max_joints = model, engine, cfg, 0, max_joints
        self.points = points_RN6  # the shape's surface samples: drawn joints outside it are snapped inside
        rows, device = points_RN6.shape[0], points_RN6.device
        self.begin: torch.Tensor | None = None  # the begin token's output: the origin anchor's feature (R, C)
        self.alphas = cosine_alphas_cumprod(model.config.diffusion_steps).to(device)
        self.contexts: list[torch.Tensor] = []  # the position head's context of step k (R, C)
        self.offsets: list[torch.Tensor] = []  # step k's scaled offset from its anchor (R, 3)
        self.features: list[torch.Tensor] = []  # joint i's token output (R, C)
        self.xyz: list[torch.Tensor] = []
        self.parents: list[torch.Tensor] = []
        self.alive = torch.ones(rows, dtype=torch.bool, device=device)
        self.logp = torch.zeros(rows, device=device)
        self.last: JointStep | None = None

    def __call__(self, h_R1C: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        h, k, m = h_R1C[:, -1], self.step, self.model
        if k > 0:
            self.features.append(h)
        else:
            self.begin = h
        assert self.begin is not None
        R, C = h.shape
        table = anchor_table(
            self.begin,
            torch.stack(self.features, dim=1) if k else h.new_zeros(R, 0, C),
            torch.stack(self.xyz, dim=1) if k else h.new_zeros(R, 0, 3),
            torch.stack(self.parents, dim=1) if k else torch.zeros(R, 0, dtype=torch.long, device=h.device),
            self._shape(),
        )
        cfg = self.cfg
        draw, pos = self._draw(h, table, k, generator)
        self.logp += torch.where(self.alive, draw.logp, 0.0)
        if k == 0:
            parent = torch.zeros(R, dtype=torch.long, device=h.device)
        else:
            pair, stop = m.parent_scores(h[:, None], pos[:, None], torch.stack(self.features, dim=1))
            logits = torch.cat([pair[:, 0], stop], dim=-1).float()  # (R, k + 1): column k = stop
            if k >= self.max_joints:
                logits[:, :k] = float("-inf")  # the joint budget is spent: stop
            logp = torch.log_softmax(logits / max(cfg.temperature, 1e-6), dim=-1)
            if cfg.parent_from_anchor:  # stop or not by the head; the parent is the anchor (table index i + 1)
                p_stop = logp[:, k].exp()
                stop = torch.rand(R, generator=generator, device=h.device) < p_stop
                parent = torch.where(stop, k, draw.anchor - 1)
                chosen = torch.where(stop, p_stop, 1 - p_stop).clamp(min=1e-12).log()
            else:
                parent = torch.multinomial(logp.exp(), 1, generator=generator)[:, 0]
                chosen = logp.gather(1, parent[:, None])[:, 0]
            self.logp += torch.where(self.alive, chosen, 0.0)
        self.last = JointStep(k, pos, parent, self.alive.clone())
        self.contexts.append(draw.context)
        self.offsets.append(draw.offset)
        self.xyz.append(pos)
        self.parents.append(parent)
        if k > 0:
            self.alive = self.alive & (parent != k)
        self.step += 1
        return torch.cat([pos, parent[:, None].to(pos.dtype)], dim=-1)[:, None]

    def _draw(
        self, h_RC: torch.Tensor, table: AnchorTable, k: int, generator: torch.Generator | None
    ) -> tuple[AnchorDraw, torch.Tensor]:
        """Step k's draw and its (snapped) positions (R, 3). With `redraw_duplicates`, a row whose joint lies within
        `duplicate_radius` of an earlier bone or joint (it retraces a limb already drawn, or makes a bone shorter
        than that) is drawn again, anchor and offset, up to that many times; it keeps its clearest draw."""
        cfg = self.cfg

        def once() -> tuple[AnchorDraw, torch.Tensor]:
            d = draw_positions(
                self.model,
                h_RC,
                table,
                k,
                self.alphas,
                cfg.sample_steps,
                cfg.temperature,
                generator,
                cfg.anchor_temperature,
            )
            return d, snap_inside(d.positions, self.points) if cfg.snap_inside else d.positions

        draw, pos = once()
        if not cfg.redraw_duplicates or k < 2:
            return draw, pos
        bones = self._bones()
        best = self._clearance(pos, draw.anchor - 1, bones)
        for _ in range(cfg.redraw_duplicates):
            if bool((best >= cfg.duplicate_radius).all()):
                break
            d, p = once()
            clear = self._clearance(p, d.anchor - 1, bones)
            better = clear > best
            draw, pos, best = _pick(better, d, draw), torch.where(better[:, None], p, pos), torch.maximum(best, clear)
        return draw, pos

    def _bones(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The bones drawn so far: starts and ends (R, k - 1, 3); bone j ends at joint j (j >= 1, joint 0 the root)."""
        xyz, par = torch.stack(self.xyz, dim=1), torch.stack(self.parents, dim=1)  # (R, k, 3), (R, k)
        starts = xyz.gather(1, par[..., None].clamp(max=xyz.shape[1] - 1).expand(-1, -1, 3))[:, 1:]
        return starts, xyz[:, 1:]

    def _clearance(
        self, pos_R3: torch.Tensor, anchor_R: torch.Tensor, bones: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """(R,) the distance from each row's new joint (grown from joint `anchor`) to the nearest of the `bones`
        (from `_bones`); infinite for a draw at the root from the root (a stop step's position, meant to lie there)."""
        a, b = bones
        ab, ap = b - a, pos_R3[:, None] - a
        t = ((ap * ab).sum(-1) / (ab * ab).sum(-1).clamp(min=1e-12)).clamp(0, 1)
        clear = (ap - t[..., None] * ab).norm(dim=-1).amin(dim=1)
        at_root = (anchor_R == 0) & ((pos_R3 - self.xyz[0]).norm(dim=-1) < self.cfg.duplicate_radius)
        return torch.where(at_root, float("inf"), clear)

    def _shape(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The prefill's contextual shape tokens (R, S, C) and their centres (R, S, 3)."""
        assert self.engine.shape_features is not None
        return self.engine.shape_features, self.points[:, : self.model.config.shape_tokens, :3]

    def embed_next(self, tokens_R14: torch.Tensor, k: int) -> torch.Tensor:
        """The token of joint k - 1 (R, 1, C) from its position and parent."""
        xyz = tokens_R14[:, :, :3]
        parent = tokens_R14[:, 0, 3].long().clamp(0, self.model.config.max_joints)
        stacked = torch.stack(self.xyz, dim=1)  # (R, k, 3)
        parent_xyz = stacked.gather(1, parent.clamp(max=k - 1)[:, None, None].expand(-1, 1, 3))
        index = torch.full_like(parent[:, None], k - 1)
        return self.model.joint_embedding(xyz, parent_xyz, index, parent[:, None])


def _pick(mask_R: torch.Tensor, new: AnchorDraw, old: AnchorDraw) -> AnchorDraw:
    """Per row (R,): `new`'s draw where the mask is true, else `old`'s."""

    def where(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.where(mask_R.view(-1, *([1] * (a.dim() - 1))), a, b)

    return AnchorDraw(**{f.name: where(getattr(new, f.name), getattr(old, f.name)) for f in fields(AnchorDraw)})


def _finish(dec: _JointDecoder, shape_features: torch.Tensor, generator: torch.Generator | None) -> SampledSkeletons:
    R = dec.alive.shape[0]
    xyz, par = torch.stack(dec.xyz, dim=1), torch.stack(dec.parents, dim=1)  # (R, K, 3), (R, K)
    ctx, feats, off = torch.stack(dec.contexts, dim=1), torch.stack(dec.features, dim=1), torch.stack(dec.offsets, 1)
    steps = torch.arange(par.shape[1], device=par.device)
    is_stop = (par == steps[None]) & (steps[None] > 0)
    stops = torch.where(is_stop, steps[None], par.shape[1]).amin(dim=1)  # (R,) joints per row
    scores = dec.logp.clone()
    joints, parents, features = [], [], []
    for r in range(R):
        n = int(stops[r])
        p = par[r, :n].clone()
        p[0] = -1
        joints.append(xyz[r, :n])
        parents.append(p)
        features.append(feats[r, :n])
        scores[r] = (
            scores[r] - 0.5 * offset_error(dec.model, ctx[r, : n + 1], off[r, : n + 1], dec.alphas, generator).sum()
        )
    return SampledSkeletons(joints, parents, features, scores, shape_features)


@torch.no_grad()
def joint_steps(
    model: RigAnything,
    points_N6: torch.Tensor,
    cfg: RigSamplingConfig,
    rows: int,
    generator: torch.Generator | None,
    max_joints: int | None = None,
) -> Iterator[JointStep | SampledSkeletons]:
    """Sample `rows` skeletons for one shape (N, 6) normalised points: yields one `JointStep` per decoded
    joint, then the `SampledSkeletons`. Stops when every row chose itself as parent (or after `max_joints`,
    at most the model's)."""
    c = model.config
    cap = min(max_joints or c.max_joints, c.max_joints)
    prompt = model.prompt(points_N6[None].expand(rows, -1, -1))  # (R, S + 1, C)
    steps = cap + 1
    cache = LayeredKVCache.allocate(
        c.depth, rows, c.heads, c.shape_tokens + 1 + steps, c.width // c.heads, dtype=prompt.dtype, device=prompt.device
    )
    engine = _EngineModel(model)
    dec = _JointDecoder(model, engine, points_N6[None].expand(rows, -1, -1), cfg, cap)
    loop = token_stream(
        engine,
        prompt,
        TokenLoopConfig(block_sizes=(1,) * steps),
        cache=cache,
        sampler=dec,
        generator=generator,
        embed_next=dec.embed_next,
    )
    for _chunk in loop:
        assert dec.last is not None
        yield dec.last
        if not bool(dec.alive.any()):
            break
    assert engine.shape_features is not None
    yield _finish(dec, engine.shape_features, generator)


@torch.no_grad()
def skin_weights(
    model: RigAnything,
    query_V6: torch.Tensor,
    points_N6: torch.Tensor,
    shape_features_SC: torch.Tensor,
    joint_features_JC: torch.Tensor,
    joints_J3: torch.Tensor,
    parents_J: torch.Tensor,
    chunk: int = 4096,
) -> torch.Tensor:
    """Softmax skin weights (V, J) of query points (V, 6) (normalised xyz + normal) for joints (J, 3) with
    their features (J, C) and parents (J,) (-1 at the root), in chunks."""
    out = []
    tree, bone = parents_J.clamp(min=0)[None], (parents_J >= 0)[None]
    for start in range(0, query_V6.shape[0], chunk):
        q = query_V6[start : start + chunk][None]
        pf = model.point_features(q, points_N6[None], shape_features_SC[None])
        logits = model.skin_logits(pf, joint_features_JC[None], q[..., :3], joints_J3[None], tree, bone)
        out.append(torch.softmax(logits.float(), dim=-1)[0])
    return torch.cat(out, dim=0)


@torch.no_grad()
def teacher_forced_skin(
    model: RigAnything,
    points_N6: torch.Tensor,
    joints_J3: torch.Tensor,
    parents_J: torch.Tensor,
    query_V6: torch.Tensor,
) -> torch.Tensor:
    """Skin weights (V, J) of query points for a given BFS-ordered skeleton (parents (J,), -1 at joint 0):
    one forward pass with the skeleton as the joint tokens (how skinning is scored against a known rig)."""
    S, J = model.config.shape_tokens, joints_J3.shape[0]
    x = torch.cat([model.prompt(points_N6[None]), model.joint_tokens(joints_J3[None], parents_J.clamp(min=0)[None])], 1)
    out = model.backbone(x, sequence_positions(S, J, x.device))
    return skin_weights(model, query_V6, points_N6, out[0, :S], out[0, S + 1 :], joints_J3, parents_J)
