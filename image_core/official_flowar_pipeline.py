"""`genmotion.load(DIR)` of a `flowar-official` checkpoint (converted by `genmotion convert flowar`) ->
`OfficialFlowARPipeline`: FlowARPipeline's stream / generate over the official FlowAR network and sampler."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from genmotion.image_core.convert import read_class_metadata
from genmotion.image_core.flowar_config import FlowARSamplingConfig
from genmotion.image_core.flowar_pipeline import FlowARPipeline
from genmotion.image_core.official_flowar import (
    OFFICIAL_FLOWAR_KIND,
    OfficialFlowARImageModel,
    load_official_flowar_checkpoint,
    save_official_flowar,
    stream_official_scales,
)

__all__ = ["OfficialFlowARPipeline"]


class OfficialFlowARPipeline(FlowARPipeline):
    """Class-conditional images of the official FlowAR-S/L/H weights (the README's settings as defaults)."""

    kind = OFFICIAL_FLOWAR_KIND
    model: OfficialFlowARImageModel  # type: ignore[assignment]
    _stream_scales = staticmethod(stream_official_scales)  # type: ignore[assignment]

    def __init__(
        self,
        model: OfficialFlowARImageModel,
        *,
        class_names: Sequence[str] = (),
        sampling: FlowARSamplingConfig | None = None,
        compute_dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(model, class_names=class_names, sampling=sampling, compute_dtype=compute_dtype)  # type: ignore[arg-type]

    @classmethod
    def _from_checkpoint(cls, directory: Path, config: Mapping[str, Any]) -> OfficialFlowARPipeline:
        names, sampling = read_class_metadata(directory, FlowARSamplingConfig)
        return cls(load_official_flowar_checkpoint(directory), class_names=names, sampling=sampling)

    def save_pretrained(self, directory: str | Path, card: str | None = None) -> Path:
        return save_official_flowar(self.model, directory, card=card, sampling=self.sampling)
