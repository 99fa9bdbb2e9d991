"""The public entry of the VAR family: `genmotion.load("var-toy")` -> `VARPipeline`.

`stream()` yields one `ScaleChunk` per scale as soon as its tokens exist (the last one carries the
decoded images); `generate()` collects it into an `ImageResult`. The pipeline composes: labels ->
optional token forcing (in/out-painting, class editing) -> sampler with a KV policy -> tokenizer
decoder -> uint8 images. No math here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from genmotion.errors import UsageError
from genmotion.image_core.config import VARSamplingConfig
from genmotion.image_core.convert import load_image_model, read_image_metadata, save_image_model
from genmotion.image_core.data import parse_class
from genmotion.image_core.editing import inpaint_forcing, prepare_inpaint
from genmotion.image_core.kv_policies import ScalePolicy, parse_policy, policy_parameters
from genmotion.image_core.markov import check_refine, parse_refine
from genmotion.image_core.model import VARImageModel
from genmotion.image_core.sampler import stream_scales
from genmotion.kv.protocol import PolicyStats
from genmotion.pipeline import Chunk, Pipeline, Result, to_uint8
from genmotion.sampling.logits import LogitsProcessor

if TYPE_CHECKING:
    from genmotion.image_core.tts import TTSResult
    from genmotion.image_core.watermark import Watermark
    from genmotion.nn.vqvae import VQVAE

__all__ = ["HEAD_PROFILE_NAME", "ImageResult", "ScaleChunk", "VARPipeline", "to_uint8"]

log = logging.getLogger(__name__)
HEAD_PROFILE_NAME = "head_profile.json"  # shipped beside a checkpoint for `kv="hack"`


@dataclass(frozen=True, kw_only=True)
class ScaleChunk(Chunk):
    """One scale `index` of `stream()`: its tokens (B, pn*pn), and uint8 images (B, H, W, 3) on the last scale
    (on every scale with `preview=True`: f_hat so far, decoded). `cache_bytes`: KV entries held after it."""

    num_scales: int
    tokens: torch.Tensor
    images: np.ndarray | None
    cache_bytes: int

    @property
    def is_last(self) -> bool:
        return self.index == self.num_scales - 1


@dataclass(frozen=True, kw_only=True)
class ImageResult(Result):
    """Finished images uint8 (N, H, W, 3), the labels that made them, per-scale tokens and cache bytes."""

    images: np.ndarray
    labels: tuple[int, ...]
    class_names: tuple[str, ...]
    tokens: tuple[torch.Tensor, ...]
    cache: PolicyStats


class ClassImages:
    """What every class-conditional image pipeline of the family shares (VAR, FlexVAR, FlowAR): class ids from ids
    or names, the label batch, and the `ImageResult` built from the per-scale chunks. A subclass defines
    `class_names`, `num_classes` and (through `Pipeline`) `device`."""

    class_names: tuple[str, ...]
    if TYPE_CHECKING:  # given by the subclass; not defined here, so Pipeline's `device` is not shadowed

        @property
        def num_classes(self) -> int: ...

        @property
        def device(self) -> torch.device: ...

        config: Any

    @property
    def height(self) -> int:
        """The trained image side (FlexVAR also makes other sides: `image_size=`)."""
        return int(self.config.vae.image_size)

    @property
    def width(self) -> int:
        return int(self.config.vae.image_size)

    def class_id(self, value: int | str) -> int:
        """A class id from an id or a name of this checkpoint."""
        return parse_class(str(value), self.class_names, self.num_classes)

    def _labels(self, class_label: int | str | Sequence[int | str], num_images: int) -> torch.Tensor:
        if num_images < 1:
            raise UsageError(f"num_images must be >= 1, got {num_images}", fix="ask for at least one image")
        given = [class_label] if isinstance(class_label, (int, str)) else list(class_label)
        if not given:
            raise UsageError("no class given", fix="pass class_label=<id or name>")
        ids = [self.class_id(c) for c in given]
        return torch.tensor([ids[i % len(ids)] for i in range(num_images)], device=self.device)

    def _image_result(self, scales: Sequence[Any], seconds: float, class_label: Any, num_images: int,
                      cache: PolicyStats | None = None) -> ImageResult:  # fmt: skip
        """The result of a finished stream: `scales` are its chunks (each with `.tokens`), the last with `.images`."""
        images = scales[-1].images
        assert images is not None
        labels = self._labels(class_label, num_images).tolist()
        return ImageResult(
            images=images,
            labels=tuple(labels),
            class_names=tuple(self.class_names[i] if self.class_names else str(i) for i in labels),
            tokens=tuple(c.tokens for c in scales),
            cache=cache or PolicyStats(),
            seconds=seconds,
        )


class VARPipeline(ClassImages, Pipeline):
    """Class-conditional VAR images. Build with `from_pretrained` or `genmotion.load`.

    `from_pretrained(dtype=torch.bfloat16)` casts the weights (as every pipeline does) and samples under
    autocast in that dtype; `compute_dtype` alone runs bf16 autocast over fp32 weights (the bench compares both).
    """

    kind = "var"
    model: VARImageModel

    def __init__(
        self,
        model: VARImageModel,
        *,
        class_names: Sequence[str] = (),
        sampling: VARSamplingConfig | None = None,
        compute_dtype: torch.dtype = torch.float32,
        head_profile: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model)
        self.config = model.config
        self.class_names = tuple(class_names)
        self.sampling = sampling or VARSamplingConfig()
        self.compute_dtype = compute_dtype  # bf16: autocast over fp32 weights
        self.head_profile = head_profile
        self.watermark_source: Path | None = None  # checkpoint folder that may ship `watermark_vae.safetensors`
        self._watermark_vae: VQVAE | None = None

    @classmethod
    def _from_checkpoint(cls, directory: Path, config: Mapping[str, Any]) -> VARPipeline:
        from genmotion.image_core.profile import load_head_profile

        model = load_image_model(directory)
        names, sampling = read_image_metadata(directory)
        profile_path = Path(directory) / HEAD_PROFILE_NAME
        profile = load_head_profile(profile_path, model.var) if profile_path.is_file() else None
        pipe = cls(model, class_names=names, sampling=sampling, head_profile=profile)
        pipe.watermark_source = Path(directory)
        return pipe

    def to(self, device: Any = None, dtype: Any = None) -> VARPipeline:
        super().to(device=device, dtype=dtype)
        if dtype is not None:
            self.compute_dtype = dtype
        return self

    def watermark_tokenizer(self) -> VQVAE | None:
        """The tokenizer of LBW watermarking: the checkpoint's `watermark_vae.safetensors` pair (encoder and
        decoder trained to give the watermarked codes back) around the model's quantizer, loaded on first use;
        None when the checkpoint ships none (watermarking then decodes and detects with the model's own)."""
        from genmotion.image_core.watermark_vae import load_watermark_pair, watermark_tokenizer

        if self._watermark_vae is None and self.watermark_source is not None:
            pair = load_watermark_pair(self.watermark_source, self.config.vae)
            if pair is not None:
                self._watermark_vae = watermark_tokenizer(self.model.vae, pair)
        return None if self._watermark_vae is None else self._watermark_vae.to(self.device)

    def _decoder(self, watermark: Watermark | None) -> VQVAE:
        """The tokenizer that decodes a sample: the watermark pair for a watermarked one, where shipped."""
        if watermark is None:
            return self.model.vae
        marked = self.watermark_tokenizer()
        if marked is None:
            log.info("this checkpoint ships no watermark tokenizer: the watermark is decoded with the model's own")
        return marked or self.model.vae

    def profile_heads(self, out: str | Path, *, seed: int = 0, num_samples: int = 8) -> str:
        """Profile this model's heads for HACK/ScaleKV (`genmotion profile-heads --model M -o F`): write the JSON
        to `out` and return a one-line summary. Ship it beside the weights as `head_profile.json`."""
        from genmotion.image_core.profile import profile_var_heads, write_head_profile

        generator = torch.Generator(device=self.device).manual_seed(seed)
        profile = profile_var_heads(
            self.model.var, self.model.vae.quantize, generator=generator, num_samples=num_samples
        )
        write_head_profile(profile, out)
        kinds = [k for row in profile["head_types"] for k in row]
        return (
            f"wrote {out}: {profile['num_layers']} layers x {profile['num_heads']} heads, "
            f"{kinds.count('structural')} structural / {kinds.count('contextual')} contextual"
        )

    def save_pretrained(self, directory: str | Path, card: str | None = None) -> Path:
        return save_image_model(
            self.model, directory, card=card, dtype=torch.bfloat16, class_names=self.class_names, sampling=self.sampling
        )

    @property
    def num_classes(self) -> int:
        return self.config.var.num_classes

    def _forcing(self, image: Any, mask: Any, batch: int) -> LogitsProcessor:
        """Token forcing that keeps `image` where `mask` is 0 (mask: 1/white = generate there)."""
        image_B3HW, keep_BHW = prepare_inpaint(image, mask, self.height, batch, self.device)
        return inpaint_forcing(self.model.vae, image_B3HW, keep_BHW)

    def kv_policy(self, name: str, budget: float = 0.25) -> ScalePolicy:
        """`parse_policy(name, ...)` given what of `budget` and this pipeline's head profile the policy takes
        (`full` takes neither; `hack` needs the profile)."""
        given = {"budget": budget, "profile": self.head_profile}
        return parse_policy(name, **{k: v for k, v in given.items() if k in policy_parameters(name)})

    def stream(
        self,
        class_label: int | str | Sequence[int | str],
        *,
        num_images: int = 1,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        guidance_scale: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        temperature: float | None = None,
        more_smooth: bool = False,
        kv: str | ScalePolicy = "full",
        kv_budget: float = 0.25,
        image: Any = None,
        mask: Any = None,
        preview: bool = False,
        refine: Sequence[int] | str | None = None,
        watermark: Watermark | None = None,
    ) -> Iterator[ScaleChunk]:
        """Yield a `ScaleChunk` per scale. Unset sampling settings come from the checkpoint (`sampling:`).

        `kv`: full, scalekv or hack (hack reads the head profile shipped with the checkpoint), or a policy
        object (its `stats` then report the cache bytes).
        `image` (H, W, 3) uint8 + `mask` (H, W), 1 or white where to generate: in-painting, out-painting,
        or class-conditional editing of the masked region (both resized to the model's size).
        `refine` (HMAR): sampling passes per scale, e.g. "1,1,2,3,1,1" (default: the checkpoint's).
        `watermark`: an LBW `Watermark(key)` biasing its scales towards the key's green codes (each image takes a
        pool entry drawn with the generator's seed); detect it with `genmotion.image_core.watermark.detect_watermark`.
        """
        s = self.sampling
        if isinstance(refine, str):
            refine = parse_refine(refine)
        try:
            settings = VARSamplingConfig(
                guidance_scale=s.guidance_scale if guidance_scale is None else guidance_scale,
                top_k=s.top_k if top_k is None else top_k,
                top_p=s.top_p if top_p is None else top_p,
                temperature=s.temperature if temperature is None else temperature,
                refine=s.refine if refine is None else tuple(refine),
            )
        except ValueError as e:
            raise UsageError("bad sampling settings", why=str(e), fix="e.g. --cfg 1.5 --top-k 0 --top-p 0") from e
        if getattr(self.config.var, "markov", False):  # (subclasses with their own backbone config have none)
            check_refine(settings.refine, self.model.var)  # before any sampling: a schedule that does not fit
        elif any(n > 1 for n in settings.refine):
            raise UsageError("refine needs an HMAR checkpoint (masked refinement)", fix="drop refine / --refine")
        labels = self._labels(class_label, num_images)
        if (image is None) != (mask is None):
            raise UsageError("in-painting needs both an image and a mask", fix="pass image=... and mask=... together")
        processors = [self._forcing(image, mask, num_images)] if image is not None else []
        policy = self.kv_policy(kv, kv_budget) if isinstance(kv, str) else kv
        generator = self.make_generator(seed, generator)
        if watermark is not None:  # before the forcing, so a forced token always survives
            processors.insert(0, watermark.processor(self.model.vae.quantize, num_images, generator))
        return self._scales(labels, settings, generator, more_smooth, processors, policy, preview,
                            self._decoder(watermark))  # fmt: skip

    def _scales(
        self,
        labels: torch.Tensor,
        settings: VARSamplingConfig,
        generator: torch.Generator,
        more_smooth: bool,
        processors: list[LogitsProcessor],
        policy: ScalePolicy,
        preview: bool,
        decoder: VQVAE,
    ) -> Iterator[ScaleChunk]:
        """The chunks of one sampling run; `decoder` turns f_hat into images (the watermark pair or the model's)."""
        start = time.perf_counter()
        autocast = torch.autocast(
            self.device.type, dtype=self.compute_dtype, enabled=self.compute_dtype != torch.float32
        )
        vae, K = self.model.vae, len(self.config.var.patch_nums)
        with torch.no_grad(), autocast:
            steps = stream_scales(
                self.model.var, vae.quantize, labels, generator=generator, guidance_scale=settings.guidance_scale,
                top_k=settings.top_k, top_p=settings.top_p, temperature=settings.temperature,
                more_smooth=more_smooth, processors=processors, policy=policy, refine=settings.refine,
            )  # fmt: skip
            for step in steps:
                last = step.scale_index == K - 1
                images = to_uint8(decoder.fhat_to_image(step.f_hat)) if last or preview else None
                held = policy.stats.context_bytes[-1] if policy.stats.context_bytes and not last else 0
                yield ScaleChunk(
                    index=step.scale_index,
                    num_scales=K,
                    tokens=step.indices,
                    images=images,
                    cache_bytes=held,
                    seconds=time.perf_counter() - start,
                )

    def tts(self, class_label: int | str, **options: Any) -> TTSResult:
        """TTS-VAR test-time scaling for one class: N candidates searched over the scales, the best kept
        (`genmotion.image_core.tts.tts_generate`, whose keywords `options` are: candidates, schedule, scorer, ...)."""
        from genmotion.image_core.tts import tts_generate

        return tts_generate(self, class_label, **options)

    def generate(self, class_label: int | str | Sequence[int | str], **options: Any) -> ImageResult:
        """`stream()` collected: the finished images and what made them; options as in `stream()`."""
        kv = options.pop("kv", "full")
        if isinstance(kv, str):  # made here so the result can report the policy's cache statistics
            kv = self.kv_policy(kv, options.pop("kv_budget", 0.25))
        return super().generate(class_label, kv=kv, **options)  # type: ignore[return-value]

    def collect(self, chunks: Iterable[Chunk], seconds: float, class_label: Any = None, **options: Any) -> ImageResult:
        scales = [c for c in chunks if isinstance(c, ScaleChunk)]
        cache = getattr(options.get("kv"), "stats", None)
        return self._image_result(scales, seconds, class_label, options.get("num_images", 1), cache)
