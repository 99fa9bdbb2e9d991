"""The public entry of the causal flow video model: `genmotion.load("ca2vdm-toy")` -> `Ca2VDMPipeline`.

Same calls as `VideoARPipeline` (`stream()` yields a `VideoChunk` per chunk of frames as soon as it is
clean, `generate()` collects it), plus `cache=`: the core cache policy that runs the chunked flow loop
(`recompute`, `shared`, `flowcache`, `flowcache-kv`, `forcing-kv`, `rolling`, or `flowcache+<kv policy>`).
Policies get this model's context window as their default, so every name is valid for any length.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genmotion.cache.compose import kv_part, parse_policy, uses_steps
from genmotion.checkpoint import load_weights, read_checkpoint_config, save_pretrained
from genmotion.config import from_dict, to_dict
from genmotion.engine.flow import FlowLoopConfig, flow_generate, flow_stream
from genmotion.errors import UsageError
from genmotion.kv.protocol import CachePolicy, FrameLayout
from genmotion.pipeline import to_uint8
from genmotion.video.ca2vdm.config import Ca2VDMConfig
from genmotion.video.ca2vdm.model import Ca2VDM
from genmotion.video.ca2vdm.sampler import GuidedFlow
from genmotion.video.streamer import DEFAULT_FPS, PromptConditions, VideoChunk, VideoStreamer, check_prompt_schedule

__all__ = ["FIRST_CHUNK_DIR", "KIND", "PROFILE_NAME", "Ca2VDMPipeline", "ReencodedContext", "read_ca2vdm_config"]

KIND = "ca2vdm"
PROFILE_NAME = "head_profile.json"  # the Forcing-KV head profile shipped beside the weights, if any
FIRST_CHUNK_DIR = "first_chunk"  # a videoar checkpoint inside the folder that draws the first chunk, if any


def read_ca2vdm_config(directory: Any) -> Ca2VDMConfig:
    """The `Ca2VDMConfig` of a `ca2vdm` checkpoint directory."""
    cfg = read_checkpoint_config(directory)
    if cfg["kind"] != KIND:
        raise UsageError(f"{directory} is a {cfg['kind']!r} checkpoint, not {KIND!r}", fix="point at a ca2vdm one")
    return from_dict(Ca2VDMConfig, cfg["model"], prefix="model")


class Ca2VDMPipeline(VideoStreamer):
    """Text (and a prompt schedule) -> video, chunk by chunk through a cache policy."""

    kind = KIND
    model: Ca2VDM

    def __init__(
        self,
        model: Ca2VDM,
        *,
        encoder: Any = None,
        fps: float = DEFAULT_FPS,
        head_profile: Path | None = None,
        first_chunk: VideoStreamer | None = None,
    ) -> None:
        """`first_chunk`: a text-to-video pipeline of the same frame size (a `videoar` one) that draws the first
        chunk, which the flow model then continues from as a clean prefix (see `with_first_chunk`)."""
        super().__init__(model, encoder=encoder, fps=fps)
        self.config: Ca2VDMConfig = model.config
        self.head_profile = head_profile
        self.first_chunk = first_chunk

    @classmethod
    def _from_checkpoint(cls, directory: Path, config: Mapping[str, Any]) -> Ca2VDMPipeline:
        model = Ca2VDM(from_dict(Ca2VDMConfig, config["model"], prefix="model"))
        load_weights(model, directory)
        profile, first = Path(directory) / PROFILE_NAME, Path(directory) / FIRST_CHUNK_DIR
        first_chunk = None
        if first.is_dir():
            import genmotion

            first_chunk = genmotion.load(str(first))
            if not isinstance(first_chunk, VideoStreamer):
                raise UsageError(f"{first} is a {first_chunk.kind!r} checkpoint, not a text-to-video one")
        return cls(model, head_profile=profile if profile.is_file() else None, first_chunk=first_chunk)

    def save_pretrained(self, directory: str | Path, card: str | None = None, *, force: bool = False) -> Path:
        """The weights (bf16), config and card, the Forcing-KV head profile and the first-chunk checkpoint
        (`first_chunk/`) when the pipeline has them."""
        files: dict[str, Path | Callable[[Path], object]] = {}
        if self.head_profile is not None:
            files[PROFILE_NAME] = self.head_profile
        if self.first_chunk is not None:
            files[FIRST_CHUNK_DIR] = self.first_chunk.save_pretrained
        config = {"kind": KIND, "model": to_dict(self.config)}
        return save_pretrained(directory, self.model, config, card, torch.bfloat16, force=force, files=files)

    def with_first_chunk(self, first_chunk: VideoStreamer | None) -> Ca2VDMPipeline:
        """This model with `first_chunk` (None: none) drawing the first `frames_per_chunk` frames from the text,
        a new pipeline sharing the weights. The flow model draws its first chunk from the text alone, which is
        where the toy-world models lose most of their quality; a frame model that draws it better (the VideoAR
        default) gives every later chunk a coherent scene to continue."""
        if first_chunk is not None and (first_chunk.height, first_chunk.width) != (self.height, self.width):
            raise UsageError(
                f"the first-chunk model makes {first_chunk.height}x{first_chunk.width} frames, this model "
                f"{self.height}x{self.width}",
                fix="pair models of the same frame size",
            )
        return Ca2VDMPipeline(
            self.model, encoder=self._encoder, fps=self.fps, head_profile=self.head_profile, first_chunk=first_chunk
        )

    @property
    def frame_layout(self) -> FrameLayout:
        return self.config.layout

    @property
    def flow_model(self) -> GuidedFlow:
        """The unconditional velocity model (what `genmotion profile-heads` measures)."""
        return GuidedFlow(self.model, self.model.null_condition(1))

    def conditioned_flow(self, prompt: str, guidance_scale: float = 3.0) -> GuidedFlow:
        """The velocity model bound to `prompt` with classifier-free guidance: a core `FlowModel` any cache policy
        and `genmotion.engine.flow_generate` can drive (tokens laid out as `frame_layout`)."""
        check_prompt_schedule(prompt, ())
        return GuidedFlow(self.model, self.condition(prompt), guidance_scale)

    @torch.no_grad()
    def decode_latents(self, latents_BTND: torch.Tensor) -> np.ndarray:
        """Latent tokens (1, T, N, D) of a whole video from frame 0 -> uint8 frames (T, H, W, 3)."""
        return to_uint8(self.model.decode_tokens(latents_BTND.to(self.dtype))[0])

    def profile_heads(self, out: str | Path, *, seed: int = 0, num_samples: int = 8, num_steps: int = 4) -> str:
        """Forcing-KV's offline head profile of this model (`genmotion profile-heads --model M -o F`): generate
        `num_samples` chunks unconditioned, write the JSON to `out`, return a one-line summary. Ship it beside
        the weights as `head_profile.json` and `cache="forcing-kv"` reads it."""
        from genmotion.cache.profile import profile_heads, save_head_profile

        generator = torch.Generator(device=self.device).manual_seed(seed)
        profile = profile_heads(
            self.flow_model, self.frame_layout, generator=generator, num_chunks=num_samples, num_steps=num_steps
        )
        save_head_profile(profile, out)
        return f"wrote {out}: {profile.summary()}"

    def policy(self, name: str = "shared", **params: Any) -> CachePolicy:
        """A fresh cache policy by name, with this model's trained context window as its default window:
        recompute/shared hold the last `context_frames` frames; rolling holds 1 sink + `context_frames - 1`
        (the same bytes); flowcache-kv a budget of `context_frames` frames of tokens; forcing-kv the shipped
        head profile, with dynamic heads' segments drawn from the last `context_frames - 2` frames before the
        recent one (sink + recent + those: the trained window, so its memory stays flat too); flowcache reuse
        under the forecast-error rule at 0.15 with the chord correction of skipped Euler steps
        (`FlowCache(thresh=0.15, order=0, rule="error", warmup=2, correct=True)`: on ca2vdm-toy at the default
        10 steps and 64 frames it skips 43 % of the denoising evaluations (138 of 320; 213 model calls against
        shared's 351, 1.6x fewer FLOPs) at 37.6 dB frame PSNR vs shared, 1.36-1.50x faster through `stream`;
        uncorrected, the same rule loses 6.6 dB; the previous default, the linear forecast at 0.1, skipped 27 % at
        34.8 dB; FlowCache's own input rule at 0.01 skips none of a chunk's 10-24 steps, whose input moves 5-12 %
        per step). `params` override (see `genmotion.cache.parse_policy`)."""
        P, N = self.config.flow.context_frames, self.config.tokens_per_frame
        defaults: dict[str, Any] = {
            "recompute": {"window": P},
            "shared": {"context_frames": P},
            "rolling": {"sink": 1, "window": max(1, P - 1)},
            "flowcache-kv": {"budget": P * N},
            "forcing-kv": {"segments": min(6, N), "window": max(0, P - 2)}  # sink + recent + window = P frames
            | ({"profile": self.head_profile} if self.head_profile else {}),
        }[kv_part(name)]
        if uses_steps(name):
            defaults |= {"thresh": 0.15, "order": 0, "rule": "error", "warmup": 2, "correct": True}
        return parse_policy(name, **{**defaults, **params})

    @property
    def cache_window_frames(self) -> int:
        return int(self.config.flow.context_frames + self.config.flow.frames_per_chunk)

    @torch.no_grad()
    def condition(self, prompt: str) -> torch.Tensor:
        """The model's condition of one prompt, (1, W), as every frame of that prompt reads it."""
        pooled = self.encoder.encode([prompt]).pooled.to(self.device, self.dtype)
        return self.model.text_condition(pooled)  # (1, cond_dim)

    @torch.no_grad()
    def _first_chunk(
        self, prompt: str, count: int, generator: torch.Generator
    ) -> tuple[np.ndarray, torch.Tensor] | None:
        """The first `count` frames drawn by `first_chunk`, as their latent tokens (1, count, N, D) (the flow
        loop's clean prefix) and decoded from those by this model's decoder (uint8 (count, H, W, 3)), so the
        whole clip comes out of one decoder; None without a first-chunk model."""
        if self.first_chunk is None:
            return None
        self.first_chunk.encoder = self.encoder  # one prompt encoder for both
        drawn = self.first_chunk.generate(prompt, num_frames=count, generator=generator).frames
        unit = torch.as_tensor(drawn).permute(0, 3, 1, 2).float().div(127.5).sub(1)  # (count, 3, H, W)
        tokens = self.model.encode_tokens(unit[None].to(self.device, self.dtype))
        return to_uint8(self.model.decode_tokens(tokens)[0]), tokens

    def stream(
        self,
        prompt: str | None = None,
        *,
        num_frames: int | None = 16,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        guidance_scale: float = 3.0,
        num_steps: int = 10,
        cache: str | CachePolicy = "shared",
        prompt_schedule: Sequence[tuple[int, str]] = (),
        reencode_context: bool = True,
    ) -> Iterator[VideoChunk]:
        """Yield one `VideoChunk` per chunk of `frames_per_chunk` frames; `num_frames=None` streams forever
        (any policy but recompute, which keeps the whole history). A prompt change takes effect from the
        first chunk that starts at or after its frame. `reencode_context`: each chunk is committed to the
        context as its decoded frames encoded again (see `ReencodedContext`); False commits the sampled
        latents as they are."""
        schedule = check_prompt_schedule(prompt, prompt_schedule)
        if num_frames is not None and num_frames < 1:
            raise UsageError(f"num_frames must be >= 1, got {num_frames}", fix="ask for at least one frame")
        if guidance_scale < 0 or num_steps < 1:
            raise UsageError(f"need guidance_scale >= 0 and num_steps >= 1, got {guidance_scale}, {num_steps}")
        policy = self.policy(cache) if isinstance(cache, str) else cache
        if num_frames is None and not _bounded(policy):
            raise UsageError(
                f"cache policy {type(policy).__name__} grows with the video, so it cannot stream forever",
                fix="pass num_frames, or use a windowed policy (shared, rolling, or flowcache over them)",
            )
        return self._chunks(
            schedule, num_frames, guidance_scale, num_steps, policy, self.make_generator(seed, generator),
            reencode_context,
        )  # fmt: skip

    def _chunks(
        self,
        schedule: tuple[tuple[int, str], ...],
        num_frames: int | None,
        guidance: float,
        num_steps: int,
        policy: CachePolicy,
        generator: torch.Generator,
        reencode_context: bool,
    ) -> Iterator[VideoChunk]:
        start = time.perf_counter()
        condition = PromptConditions(schedule, self.condition)
        flows: dict[str, GuidedFlow] = {}  # one binding per prompt of the schedule

        def flow_at(frame: int) -> GuidedFlow:
            text = condition.prompt_at(frame)
            if text not in flows:
                flows[text] = GuidedFlow(self.model, condition(frame), guidance)
            return flows[text]

        total = num_frames if num_frames is not None else 1 << 40  # forever: a length no stream reaches
        layout = self.frame_layout
        options: dict[str, Any] = {"generator": generator, "device": self.device, "dtype": self.dtype}
        first = self._first_chunk(condition.prompt_at(0), min(layout.frames_per_chunk, total), generator)
        decoder = ReencodedContext(self.model, None if first is None else first[1])
        if reencode_context:
            options["project"] = decoder
        if first is not None:
            frames0, options["prefix_BFNC"] = first
            seconds, text = time.perf_counter() - start, condition.prompt_at(0)
            yield VideoChunk(frames=frames0, index=0, prompt=text, cache_bytes=0, cache_valid_bytes=0, seconds=seconds)
            total -= len(frames0)
            if total == 0:
                return
        config = FlowLoopConfig(num_frames=total, num_steps=num_steps)
        chunks = flow_stream(flow_at(0), policy, layout, config, model_at=flow_at, **options)
        with torch.no_grad():
            for chunk in chunks:
                frames = decoder.decode(chunk.latents, chunk.start_frame, keep=reencode_context)  # (1, F, 3, H, W)
                yield VideoChunk(
                    frames=to_uint8(frames[0]),
                    index=chunk.start_frame,
                    prompt=condition.prompt_at(chunk.start_frame),
                    cache_bytes=policy.bytes_held(),
                    cache_valid_bytes=_valid_bytes(policy),
                    seconds=time.perf_counter() - start,
                )

    @torch.no_grad()
    def latents(
        self,
        prompt: str,
        *,
        num_frames: int = 16,
        seed: int | None = None,
        guidance_scale: float = 3.0,
        num_steps: int = 10,
        cache: str | CachePolicy = "shared",
        reencode_context: bool = True,
    ) -> torch.Tensor:
        """Latent tokens (1, num_frames, N, D) of one prompt, without decoding (benchmarks, policy comparisons);
        with a first-chunk model its frames' tokens come first. The same tokens as `stream` with the same
        settings (with `reencode_context` the committed chunks are decoded here for the projection)."""
        flow = self.conditioned_flow(prompt, guidance_scale)
        policy = self.policy(cache) if isinstance(cache, str) else cache
        generator = self.make_generator(seed)
        options: dict[str, Any] = {"generator": generator, "device": self.device, "dtype": self.dtype}
        first = self._first_chunk(prompt, min(self.frame_layout.frames_per_chunk, num_frames), generator)
        prefix = None if first is None else first[1]  # (1, F, N, D)
        done = 0 if prefix is None else prefix.shape[1]
        if prefix is not None and done == num_frames:
            return prefix
        if reencode_context:
            options["project"] = ReencodedContext(self.model, prefix)
        config = FlowLoopConfig(num_frames=num_frames - done, num_steps=num_steps)
        made = flow_generate(flow, policy, self.frame_layout, config, prefix_BFNC=prefix, **options)
        return made if prefix is None else torch.cat([prefix, made], dim=1)


class ReencodedContext:
    """The decoder of one clip's chunks and the context projection of the flow loop (`flow_stream(project=)`).

    `decode` turns a chunk's latent tokens (1, F, N, D) into frames (1, F, 3, H, W), each frame's decoding mixed
    with the latent before it, as one clip. Called as `project(clean (1, F*N, D), start_frame)`, it gives the
    chunk back as its decoded frames encoded again, which is what the next chunks read as context. Why: the
    flow model was trained on the autoencoder's latents of real frames, and a sampled chunk is a little off
    them; fed back unchanged, those errors compound over a long clip (ca2vdm-toy, 64 clips: frames 16-32 at
    FVD 10708 committed as sampled, 8260 re-encoded). Frames `decode` kept for a start frame are reused, so a
    stream decodes each chunk once.
    """

    def __init__(self, model: Ca2VDM, prefix_BFND: torch.Tensor | None) -> None:
        self.model = model
        self.prev = None if prefix_BFND is None else model.tokens_to_latents(prefix_BFND[:, -1:])[:, 0]
        self.kept: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def decode(self, latents_BFND: torch.Tensor, start_frame: int, *, keep: bool = False) -> torch.Tensor:
        frames = self.model.decode_tokens(latents_BFND, self.prev)
        self.prev = self.model.tokens_to_latents(latents_BFND[:, -1:])[:, 0]
        if keep:
            self.kept[start_frame] = frames
        return frames

    @torch.no_grad()
    def __call__(self, clean_BLD: torch.Tensor, start_frame: int) -> torch.Tensor:
        B, L, D = clean_BLD.shape
        N = self.model.config.tokens_per_frame
        frames = self.kept.pop(start_frame, None)
        if frames is None:
            frames = self.decode(clean_BLD.view(B, L // N, N, D), start_frame)
        return self.model.encode_tokens(frames.clamp(-1, 1)).reshape(B, L, D).to(clean_BLD)


def _bounded(policy: CachePolicy) -> bool:
    """True for a windowed clean-context cache (SharedClean/RollingWindow, alone or under FlowCache)."""
    from genmotion.cache.policies import RollingWindow, SharedClean

    inner = getattr(policy, "context", policy)
    return isinstance(inner, (SharedClean, RollingWindow)) and getattr(inner, "window", None) is not None


def _valid_bytes(policy: CachePolicy) -> int:
    """Bytes of the entries the policy's KV cache holds now (its allocation when it has no KV cache)."""
    cache = getattr(policy, "cache", None) or getattr(getattr(policy, "context", None), "cache", None)
    return int(cache.valid_nbytes()) if cache is not None and hasattr(cache, "valid_nbytes") else policy.bytes_held()
