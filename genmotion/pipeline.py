"""The generator contract: the `Pipeline` base every generator's public entry derives from, its base
`Chunk`/`Result` dataclasses, and the capability protocols benches and CLIs test for (never `hasattr`).

A pipeline composes (encoders, the generator's sampler, decoders) and contains no math. Its contract:
* `from_pretrained(path_or_name, device=, dtype=)`: a registry name or a checkpoint directory; `dtype` always
  means the dtype the weights are cast to (fp32 by default), `device` where they live;
* `stream(...)` yields typed chunks as soon as they exist; `generate(...)` is `stream()` collected by
  `collect()`, so the two agree by construction;
* randomness only from an explicit `torch.Generator` (`make_generator(seed, generator)`), never global seeding;
* `save_pretrained(dir)` writes a checkpoint directory that `from_pretrained` reads back.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from genmotion.errors import UsageError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "Chunk",
    "FlowPolicyHost",
    "FrameStreamer",
    "HeadProfiler",
    "HoldsModel",
    "Pipeline",
    "Result",
    "resolve_device_dtype",
    "to_uint8",
]


@dataclass(frozen=True, kw_only=True)
class Chunk:
    """One piece of a stream: its position `index` (frame, scale, joint, window ...) and `seconds` since the
    stream started. Generators subclass it with their payload (frames, tokens, joints)."""

    index: int
    seconds: float


@dataclass(frozen=True, kw_only=True)
class Result:
    """A finished generation; `seconds` is the wall time of the whole `stream()`."""

    seconds: float


def to_uint8(images_B3HW: torch.Tensor) -> np.ndarray:
    """Images in [-1, 1], channel-first (..., 3, H, W) -> uint8 channel-last (..., H, W, 3) on the CPU."""
    import torch

    x = images_B3HW.detach().float().add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    return x.movedim(-3, -1).cpu().numpy()


class HoldsModel:
    """`device` and `dtype` of what holds a torch module as `self.model`: those of its parameters."""

    model: nn.Module

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


class Pipeline(HoldsModel, ABC):
    """Base of every generator's public entry point. Subclasses set `kind` (the checkpoint `kind` they read),
    implement `_from_checkpoint`, `save_pretrained`, `stream` and `collect`."""

    kind: ClassVar[str]
    #: every top-level key this kind's config.yaml may hold (`kind` included); others are refused (exit 3)
    config_keys: ClassVar[frozenset[str] | None] = None

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()

    # ----------------------------------------------------------------------------------- loading / saving
    @classmethod
    def from_pretrained(
        cls, path_or_name: str | Path, *, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> Any:
        """Load a checkpoint directory or registry name; weights on `device` (cpu) cast to `dtype` (fp32)."""
        from genmotion.checkpoint import check_weights, read_checkpoint_config
        from genmotion.registry import check_config_keys, resolve

        directory = resolve(path_or_name)
        config = read_checkpoint_config(directory)
        if str(config["kind"]) != cls.kind:
            raise UsageError(
                f"{directory} is a {config['kind']!r} checkpoint, not {cls.kind!r}",
                fix=f"load it with genmotion.load({str(path_or_name)!r}) or pick a {cls.kind} checkpoint",
            )
        check_config_keys(Path(directory), config, cls)
        check_weights(directory)  # truncated, empty or foreign weights: exit 3, before any tensor is built
        device, dtype = resolve_device_dtype(device, dtype)
        pipe = cls._from_checkpoint(Path(directory), config)
        return pipe.to(device=device, dtype=dtype)

    @classmethod
    @abstractmethod
    def _from_checkpoint(cls, directory: Path, config: Mapping[str, Any]) -> Any:
        """Build the pipeline from a checked checkpoint directory, weights in fp32 on the CPU."""

    @abstractmethod
    def save_pretrained(self, directory: str | Path, card: str | None = None) -> Path:
        """Write a checkpoint directory (`config.yaml` with this `kind`, bf16 `model.safetensors`, `card.md`)."""

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> Any:
        """Move (and cast) the model; returns self."""
        self.model.to(device=device, dtype=dtype)
        return self

    # ----------------------------------------------------------------------------------------- sampling
    def make_generator(self, seed: int | None = None, generator: torch.Generator | None = None) -> torch.Generator:
        """The explicit generator of a call: `generator` if given, else one seeded with `seed` (0 if None)."""
        import torch

        if generator is not None:
            if seed is not None:
                raise UsageError("both seed and generator given", fix="pass one of them")
            return generator
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            raise UsageError(f"seed must be a non-negative integer, got {seed!r}", fix="e.g. seed=0")
        return torch.Generator(device=self.device).manual_seed(0 if seed is None else seed)

    @abstractmethod
    def stream(self, *args: Any, **kwargs: Any) -> Iterator[Chunk]:
        """Yield chunks as soon as they exist. Arguments are checked before the first chunk is made."""

    @abstractmethod
    def collect(self, chunks: Iterable[Chunk], seconds: float, *args: Any, **kwargs: Any) -> Result:
        """Assemble a `Result` from the chunks of one `stream(*args, **kwargs)` call that took `seconds`."""

    def generate(self, *args: Any, **kwargs: Any) -> Result:
        """`stream()` collected (same arguments)."""
        start = time.perf_counter()
        chunks = list(self.stream(*args, **kwargs))
        return self.collect(chunks, time.perf_counter() - start, *args, **kwargs)


def resolve_device_dtype(device: Any, dtype: Any) -> tuple[torch.device, torch.dtype]:
    """`device` (None -> cpu) and `dtype` (None -> float32) checked: an unavailable device or a dtype that
    is not floating point is a `UsageError`."""
    import torch

    from genmotion.runtime import resolve_device

    dev = device if isinstance(device, torch.device) else resolve_device(device or "cpu")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {device!r} is not available here", why="torch sees no CUDA device", fix="use cpu")
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"device {device!r} is not supported", fix="use cpu, cuda or cuda:N")
    dt = dtype or torch.float32
    if not isinstance(dt, torch.dtype) or not dt.is_floating_point:
        raise UsageError(f"dtype must be a floating torch dtype, got {dtype!r}", fix="e.g. torch.bfloat16")
    if dt == torch.float16 and dev.type == "cpu":
        raise UsageError("float16 on the CPU is refused", why="it runs ~500x slower than fp32 here", fix="use bf16")
    return dev, dt


# ------------------------------------------------------------------------------------ capability protocols
@runtime_checkable
class FrameStreamer(Protocol):
    """A pipeline whose chunks carry uint8 frames `(T, H, W, 3)` starting at frame `index` (video, panorama,
    world): what the video writers and frame benches need."""

    fps: float

    @property
    def height(self) -> int: ...

    @property
    def width(self) -> int: ...

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]: ...


@runtime_checkable
class FlowPolicyHost(Protocol):
    """A flow pipeline that takes the core's cache policies (`genmotion bench cache --model`, `--cache`):
    its token layout, a fresh policy by name, its velocity model bound to a prompt (and unconditioned, for
    head profiling), and the decoder of its latents."""

    @property
    def frame_layout(self) -> Any: ...

    @property
    def flow_model(self) -> Any: ...

    def policy(self, name: str = "shared", **params: Any) -> Any: ...

    def conditioned_flow(self, prompt: str, guidance_scale: float = ...) -> Any: ...

    def decode_latents(self, latents_BTND: torch.Tensor) -> np.ndarray: ...


@runtime_checkable
class HeadProfiler(Protocol):
    """A pipeline that can profile its attention heads (`genmotion profile-heads --model`)."""

    def profile_heads(self, out: str | Path, *, seed: int = 0, num_samples: int = 8) -> str: ...
