"""The public entry of M-VAR: `genmotion.load("m-var-toy")` -> `MambaVARPipeline` (checkpoint kind `m-var`).

VAR's pipeline with M-VAR's sampler: the same `stream()` / `generate()` arguments, chunks and results
(`ScaleChunk`, `ImageResult`), in-painting and class editing by token forcing included. There is no KV cache
to compress: the state carried between scales is a fixed-size scan state per block, whose bytes the chunks and
the result's cache statistics report. No math here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch

from genmotion.errors import UsageError
from genmotion.image_core.config import VARSamplingConfig
from genmotion.image_core.convert import read_image_metadata
from genmotion.image_core.kv_policies import ScalePolicy
from genmotion.image_core.mamba_var import MambaVARImageModel
from genmotion.image_core.mamba_var_io import MVAR_KIND, load_mvar_model, save_mvar_model
from genmotion.image_core.mamba_var_sampler import stream_mvar_scales
from genmotion.image_core.pipeline import ScaleChunk, VARPipeline
from genmotion.nn.vqvae import VQVAE
from genmotion.pipeline import to_uint8
from genmotion.sampling.logits import LogitsProcessor

__all__ = ["MambaVARPipeline"]


class _ScanStats(ScalePolicy):
    """The 'full' policy of M-VAR: nothing to evict; records the bytes of the scan states carried."""

    def record(self, nbytes: int, last: bool) -> None:
        self._held(nbytes)
        if not last:
            self._carried(nbytes)


class MambaVARPipeline(VARPipeline):
    """Class-conditional M-VAR images. Build with `from_pretrained` or `genmotion.load("m-var-toy")`."""

    kind = MVAR_KIND
    config_keys: ClassVar[frozenset[str] | None] = frozenset({"kind", "vae", "var", "classes", "sampling"})
    model: MambaVARImageModel  # type: ignore[assignment]

    @classmethod
    def _from_checkpoint(cls, directory: Path, config: Mapping[str, Any]) -> MambaVARPipeline:
        names, sampling = read_image_metadata(directory)
        pipe = cls(load_mvar_model(directory), class_names=names, sampling=sampling)  # type: ignore[arg-type]
        pipe.watermark_source = Path(directory)
        return pipe

    def save_pretrained(self, directory: str | Path, card: str | None = None) -> Path:
        return save_mvar_model(self.model, directory, card=card, class_names=self.class_names, sampling=self.sampling)

    def profile_heads(self, out: str | Path, *, seed: int = 0, num_samples: int = 8) -> str:
        raise UsageError("M-VAR has no KV cache whose heads could be profiled", fix="profile a var checkpoint")

    def kv_policy(self, name: str, budget: float = 0.25) -> ScalePolicy:
        """Only `full`: M-VAR carries a fixed-size scan state, there is no KV cache for ScaleKV/HACK to evict."""
        if name != "full":
            raise UsageError(
                f"--kv {name} does not apply to M-VAR",
                why="it keeps no KV cache: each block carries a fixed-size scan state from scale to scale",
                fix="drop --kv (or use --kv full)",
            )
        return _ScanStats()

    def tts(self, class_label: int | str, **options: Any) -> Any:
        raise UsageError("TTS-VAR runs on var checkpoints only", fix="use --model var with --tts")

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
        if not isinstance(policy, _ScanStats):
            raise UsageError("M-VAR takes no KV cache policy", fix="pass kv='full'")
        start = time.perf_counter()
        autocast = torch.autocast(
            self.device.type, dtype=self.compute_dtype, enabled=self.compute_dtype != torch.float32
        )
        vae, mvar, K = self.model.vae, self.model.var, len(self.config.var.patch_nums)
        rows = labels.shape[0] * (2 if settings.guidance_scale != 1.0 else 1)
        cache = mvar.new_cache(rows, dtype=torch.float32, device=self.device)
        policy._allocated(cache.nbytes())
        with torch.no_grad(), autocast:
            steps = stream_mvar_scales(
                mvar, vae.quantize, labels, generator=generator, guidance_scale=settings.guidance_scale,
                top_k=settings.top_k, top_p=settings.top_p, temperature=settings.temperature,
                more_smooth=more_smooth, processors=processors, cache=cache,
            )  # fmt: skip
            for step in steps:
                last = step.scale_index == K - 1
                policy.record(cache.nbytes(), last)
                images = to_uint8(decoder.fhat_to_image(step.f_hat)) if last or preview else None
                yield ScaleChunk(
                    index=step.scale_index, num_scales=K, tokens=step.indices, images=images,
                    cache_bytes=0 if last else cache.nbytes(), seconds=time.perf_counter() - start,
                )  # fmt: skip
