"""Configs of the RigAnything rigger (Liu et al., 2025): the architecture, the training data and the
sampling / skin post-processing settings (the released constants are the defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["FARTHEST_PREFIX", "RigDataConfig", "RigModelConfig", "RigSamplingConfig", "SkinPostConfig"]

FARTHEST_PREFIX = 256  # surface samples put in farthest-point order (the rest keep theirs): shape tokens <= this


@dataclass(frozen=True, kw_only=True)
class RigModelConfig:
    """Hybrid-attention transformer over shape tokens and BFS-ordered joint tokens."""

    num_points: int = 1024  # surface samples (xyz + normal) per mesh
    shape_tokens: int = 256  # points that become shape tokens (each pools its `group_size` nearest samples)
    group_size: int = 16
    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    max_joints: int = 64  # joints per skeleton the model can emit (the stop step is extra)
    position_head: Literal["diffusion", "regression"] = "diffusion"  # how the offset from the anchor is drawn
    anchor_candidates: int = 8  # sampling picks the anchor among this many most likely earlier joints
    offset_scale: float = 0.3  # joint - anchor offsets (bone vectors) are divided by this for the head
    local_tokens: int = 0  # shape tokens nearest the anchor that the position head reads directly (0: none)
    # > 0: the bone vector's direction is first drawn as one of this many directions spread over the sphere
    # (plus one class for a zero bone: a stop step's), by classification, and the offset head draws the vector
    # given it: the siblings' directions are separate classes instead of modes of one continuous head
    direction_bins: int = 0
    head_width: int = 128  # diffusion / regression MLP width
    head_depth: int = 3  # residual blocks of the diffusion MLP
    diffusion_steps: int = 1000  # training noise schedule (cosine)
    skin_width: int = 64
    fourier_bands: int = 8  # sin/cos frequencies of every xyz embedding

    def __post_init__(self) -> None:
        if self.width % self.heads or (self.width // self.heads) % 2:
            raise ValueError(f"width {self.width} must split into {self.heads} heads of even size")
        if not 1 <= self.shape_tokens <= self.num_points:
            raise ValueError(f"shape_tokens must be in [1, num_points], got {self.shape_tokens}")
        if self.shape_tokens > FARTHEST_PREFIX:
            raise ValueError(
                f"shape_tokens must be <= {FARTHEST_PREFIX} (the surface samples put in farthest-point order), "
                f"got {self.shape_tokens}"
            )
        if not 1 <= self.group_size <= self.num_points:
            raise ValueError(f"group_size must be in [1, num_points], got {self.group_size}")
        if not 1 <= self.anchor_candidates <= self.max_joints:
            raise ValueError(f"anchor_candidates must be in [1, max_joints], got {self.anchor_candidates}")
        if not 0 <= self.local_tokens <= self.shape_tokens:
            raise ValueError(f"local_tokens must be in [0, shape_tokens], got {self.local_tokens}")
        if self.direction_bins < 0:
            raise ValueError(f"direction_bins must be >= 0, got {self.direction_bins}")
        if not 2 <= self.max_joints <= 256:
            raise ValueError(f"max_joints must be in [2, 256], got {self.max_joints}")


@dataclass(frozen=True, kw_only=True)
class SkinPostConfig:
    """Released skin post-processing: top-k influences, drop small weights, renormalise, smooth over mesh
    neighbours, then transfer to every vertex."""

    top_k: int = 5
    threshold: float = 0.068
    smooth_iterations: int = 10
    smooth_factor: float = 0.35


@dataclass(frozen=True, kw_only=True)
class RigSamplingConfig:
    """Joint sampling: diffusion steps (respaced DDPM), temperature, and how many skeletons to draw."""

    sample_steps: int = 20  # the released model uses 300; 20 matched 50 on the toy (within noise) at half the time
    temperature: float = 1.0
    num_samples: int = 1
    snap_inside: bool = True  # a drawn joint outside the surface moves to the medial point under it
    anchor_temperature: float | None = None  # the pointer's own temperature (None: `temperature`; 0: most likely)
    parent_from_anchor: bool = False  # the joint's parent is its anchor; the parent head only decides stop
    # a drawn joint within `duplicate_radius` of an earlier bone or joint (it retraces a limb already drawn, or
    # makes a bone shorter than that) is drawn again, anchor and offset, up to this many times (0: off)
    redraw_duplicates: int = 0
    duplicate_radius: float = 0.03
    skin: SkinPostConfig = field(default_factory=SkinPostConfig)


@dataclass(frozen=True, kw_only=True)
class RigDataConfig:
    """Procedural creatures (or RigNet rig_info folders) for training."""

    source: Literal["creatures", "rignet"] = "creatures"
    root: str | None = None  # rignet: a folder of <id>.obj + <id>.txt (rig_info) pairs
    plans: tuple[str, ...] = ("biped", "dino", "quadruped", "snake", "bird", "spider")
    held_out: tuple[str, ...] = ("hexapod", "centaur")
    num_points: int = 1024
    skin_points: int = 128  # points per mesh that the skin loss is computed on
    max_joints: int = 64
    pose_degrees: float = 30.0  # max random local joint rotation of the pose augmentation
    pose_probability: float = 0.8
    shuffle_siblings: bool = True
    eval_meshes: int = 48  # held-out creatures scored after training
    workers: int = 0  # background processes that build the batches (1 frees the trainer's thread on 2 cores)

    def __post_init__(self) -> None:
        if self.source == "rignet" and not self.root:
            raise ValueError("data.root must name a folder of <id>.obj + <id>.txt pairs when source is rignet")
        if not 1 <= self.skin_points <= self.num_points:
            raise ValueError("data.skin_points must be in [1, num_points]")
        if self.workers < 0:
            raise ValueError(f"data.workers must be >= 0, got {self.workers}")
