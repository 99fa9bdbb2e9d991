"""Offline attention-head profiling for `ForcingKV` (Forcing-KV): which heads only look at the last few frames.

Forcing-KV (2026) observes that heads keep their role across samples and denoising steps: *static* heads put
almost all of their attention to earlier frames on the most recent ones, *dynamic* heads look further
back. `profile_heads` generates a short video with the full clean-context cache (`SharedClean`) and, for
every denoising evaluation, layer and head, sums the attention of the chunk's queries to history frames:
    recent_mass = mass on the last `last_frames` committed frames / mass on all history frames
(history = frames before the chunk, without the first `skip_first_frames` sink frames, as Forcing-KV's
`head_profile.py` skips them). Only chunks with more than `last_frames` such frames count. A head is static
when recent_mass >= `threshold` (0.8). Deterministic for a given model, layout and generator.

Every head profile genmotion writes shares one versioned JSON envelope (`write_profile_json` /
`read_profile_json`): {"format": "genmotion.head-profile", "version": 2, "kind": ..., "model": ...,
"num_layers": L, "num_heads": H, ...}; `kind` is "frame-recency" for this profile (ForcingKV) and "next-scale"
for the VAR head types that ScaleKV/HACK read (`genmotion.image_core.profile`). Version 1 files still load.

This kind's fields (`save_head_profile` / `load_head_profile`):
    {..., "kind": "frame-recency", "rule": {"last_frames": 4, "threshold": 0.8, "skip_first_frames": 1},
     "num_layers": L, "num_heads": H,
     "recent_mass": [[float per head] per layer],
     "static": [[bool per head] per layer],          # what ForcingKV reads; may be edited by hand
     "samples": {"chunks": .., "steps": .., "batch": .., "evaluations": ..}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from genmotion.cache.policies import SharedClean
from genmotion.cache.probe import AttentionProbe, attention_probabilities
from genmotion.errors import InputError, UsageError
from genmotion.kv.protocol import FlowModel, FrameLayout

__all__ = [
    "FRAME_RECENCY",
    "PROFILE_FORMAT",
    "PROFILE_VERSION",
    "check_profile",
    "read_profile_json",
    "write_profile_json",
    "PROFILE_FORMAT",
    "HeadProfile",
    "load_head_profile",
    "profile_heads",
    "recent_mass_sums",
    "save_head_profile",
]

PROFILE_FORMAT = "genmotion.head-profile"
PROFILE_VERSION = 2
FRAME_RECENCY = "frame-recency"


def write_profile_json(data: Mapping[str, Any], kind: str, path: str | Path) -> Path:
    """Write a head profile of `kind` (its fields in `data`) in the shared envelope, atomically."""
    from genmotion.io.atomic import write_text

    envelope = {"format": PROFILE_FORMAT, "version": PROFILE_VERSION, "kind": kind}
    return write_text(path, json.dumps({**envelope, **data}, indent=1) + "\n")


def read_profile_json(path: str | Path, kind: str) -> dict[str, Any]:
    """Read a head profile and check it is one of `kind` (version 1 files, which had no kind, load too)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError as e:
        raise InputError(f"head profile {p} does not exist", fix="write one with `genmotion profile-heads`") from e
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read the head profile {p}", why=str(e), fix="write one with profile-heads") from e
    if not isinstance(data, dict):
        raise InputError(f"{p} is not a genmotion head profile", why="it does not hold a JSON object")
    return check_profile(data, kind, str(p))


def check_profile(data: Mapping[str, Any], kind: str, source: str = "the head profile") -> dict[str, Any]:
    """`data` as a profile of `kind`, or InputError saying what it is instead."""
    found = (data.get("format"), data.get("version"), data.get("kind", kind if data.get("version") == 1 else None))
    if found[0] != PROFILE_FORMAT or found[1] not in (1, PROFILE_VERSION) or found[2] != kind:
        raise InputError(
            f"{source} is not a {kind} head profile (format {found[0]!r}, version {found[1]!r}, kind {found[2]!r})",
            fix="write one for this model with `genmotion profile-heads --model M -o heads.json`",
        )
    return dict(data)


@dataclass(frozen=True, kw_only=True)
class HeadProfile:
    """Per layer and head: the fraction of history attention on the last frames, and the static/dynamic call."""

    recent_mass: tuple[tuple[float, ...], ...]
    static: tuple[tuple[bool, ...], ...]
    last_frames: int = 4
    threshold: float = 0.8
    skip_first_frames: int = 1
    model: str = ""
    samples: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = [len(row) for row in self.recent_mass]
        if not shape or shape != [len(row) for row in self.static] or len(set(shape)) != 1 or not shape[0]:
            raise InputError(
                "a head profile needs the same non-empty number of heads in every layer for recent_mass and static"
            )

    @property
    def num_layers(self) -> int:
        return len(self.static)

    @property
    def num_heads(self) -> int:
        return len(self.static[0])

    @classmethod
    def classify(
        cls, recent_mass: torch.Tensor, *, last_frames: int = 4, threshold: float = 0.8, **kw: Any
    ) -> HeadProfile:
        """A profile from a (layers, heads) tensor of recent-mass fractions: static where >= threshold."""
        mass = tuple(tuple(float(m) for m in row) for row in recent_mass.tolist())
        static = tuple(tuple(m >= threshold for m in row) for row in mass)
        return cls(recent_mass=mass, static=static, last_frames=last_frames, threshold=threshold, **kw)

    def summary(self) -> str:
        """One line: "4 layers x 4 heads, 15/16 static"."""
        static = sum(s for row in self.static for s in row)
        return f"{self.num_layers} layers x {self.num_heads} heads, {static}/{self.num_layers * self.num_heads} static"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PROFILE_FORMAT,
            "version": PROFILE_VERSION,
            "kind": FRAME_RECENCY,
            "model": self.model,
            "rule": {
                "last_frames": self.last_frames,
                "threshold": self.threshold,
                "skip_first_frames": self.skip_first_frames,
            },
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "recent_mass": [list(row) for row in self.recent_mass],
            "static": [list(row) for row in self.static],
            "samples": dict(self.samples),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HeadProfile:
        check_profile(data, FRAME_RECENCY)
        try:
            rule = data["rule"]
            return cls(
                recent_mass=tuple(tuple(float(m) for m in row) for row in data["recent_mass"]),
                static=tuple(tuple(bool(s) for s in row) for row in data["static"]),
                last_frames=int(rule["last_frames"]),
                threshold=float(rule["threshold"]),
                skip_first_frames=int(rule["skip_first_frames"]),
                model=str(data.get("model", "")),
                samples={str(k): int(v) for k, v in data.get("samples", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"head profile is missing or mistypes a field: {e}") from e


def save_head_profile(profile: HeadProfile, path: str | Path) -> Path:
    """Write the profile in the shared envelope (atomically)."""
    fields = {k: v for k, v in profile.to_dict().items() if k not in ("format", "version", "kind")}
    return write_profile_json(fields, FRAME_RECENCY, path)


def load_head_profile(path: str | Path) -> HeadProfile:
    return HeadProfile.from_dict(read_profile_json(path, FRAME_RECENCY))


def recent_mass_sums(
    probs_BHLS: torch.Tensor, key_frames_BHS: torch.Tensor, start_frame: int, *, last_frames: int, skip_first: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per head (H,): attention mass on the last `last_frames` history frames, and on all history frames.

    `probs_BHLS` are a chunk's attention weights over its S history keys (frames `key_frames_BHS`, all before
    `start_frame`); history leaves out the first `skip_first` (sink) frames.
    """
    in_history = (key_frames_BHS >= skip_first).unsqueeze(2)  # (B, H, 1, S)
    is_recent = (key_frames_BHS >= start_frame - last_frames).unsqueeze(2)
    recent = (probs_BHLS * (in_history & is_recent)).sum(dim=(0, 2, 3))
    return recent, (probs_BHLS * in_history).sum(dim=(0, 2, 3))


class _MassCounter(SharedClean):
    """SharedClean that sums, per layer and head, history attention mass (all, and on the last frames)."""

    def __init__(self, last_frames: int, skip_first_frames: int) -> None:
        super().__init__()
        self.last_frames, self.skip_first = last_frames, skip_first_frames
        self.recent: torch.Tensor | None = None  # (layers, heads)
        self.history: torch.Tensor | None = None
        self.evaluations = 0

    def velocity(self, model: FlowModel, x_BLC: torch.Tensor, t: float, *, start_frame: int) -> torch.Tensor:
        if start_frame - self.skip_first <= self.last_frames:
            return super().velocity(model, x_BLC, t, start_frame=start_frame)
        with AttentionProbe(model) as probe:
            v = super().velocity(model, x_BLC, t, start_frame=start_frame)
        sums = []
        for call in probe.calls:
            S = call.history_k.shape[2]
            probs = attention_probabilities(call)[..., :S]  # (B, H, L, S): mass on committed frames only
            frames = call.history_positions if call.position_axes == 1 else call.history_positions[..., 0]
            sums.append(
                recent_mass_sums(probs, frames, start_frame, last_frames=self.last_frames, skip_first=self.skip_first)
            )
        r = torch.stack([a for a, _ in sums]).double()
        h = torch.stack([b for _, b in sums]).double()
        self.recent = r if self.recent is None else self.recent + r
        self.history = h if self.history is None else self.history + h
        self.evaluations += 1
        return v


def profile_heads(
    model: FlowModel,
    layout: FrameLayout,
    *,
    generator: torch.Generator,
    num_chunks: int = 8,
    num_steps: int = 4,
    batch: int = 1,
    last_frames: int = 4,
    threshold: float = 0.8,
    skip_first_frames: int = 1,
    model_name: str = "",
) -> HeadProfile:
    """Generate `num_chunks` chunks from noise with `generator` and classify every head (see the module doc)."""
    from genmotion.engine.flow import FlowLoopConfig, flow_generate

    frames = num_chunks * layout.frames_per_chunk
    if frames - layout.frames_per_chunk - skip_first_frames <= last_frames:
        need = (last_frames + skip_first_frames) // layout.frames_per_chunk + 2
        raise UsageError(
            f"{num_chunks} chunks of {layout.frames_per_chunk} frames leave no history beyond the last "
            f"{last_frames} frames to profile",
            fix=f"profile with at least {need} chunks",
        )
    counter = _MassCounter(last_frames, skip_first_frames)
    config = FlowLoopConfig(num_frames=frames, num_steps=num_steps)
    like = next(iter(model.parameters())) if isinstance(model, torch.nn.Module) else torch.empty(0)
    flow_generate(
        model, counter, layout, config, generator=generator, batch=batch, device=like.device, dtype=like.dtype
    )
    assert counter.recent is not None and counter.history is not None
    mass = counter.recent / counter.history.clamp_min(1e-30)
    samples = {"chunks": num_chunks, "steps": num_steps, "batch": batch, "evaluations": counter.evaluations}
    return HeadProfile.classify(
        mass,
        last_frames=last_frames,
        threshold=threshold,
        skip_first_frames=skip_first_frames,
        model=model_name,
        samples=samples,
    )
