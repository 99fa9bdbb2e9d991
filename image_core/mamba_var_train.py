"""Training task `m-var` for `genmotion train`: the M-VAR transformer (`mamba_var.MambaVAR`) on a frozen VAR
tokenizer, with VAR's recipe (teacher-forced cross-entropy over all scales, labels dropped to the null class for
guidance). `model.tokenizer` names a var-tokenizer or var checkpoint (e.g. `genmotion/weights/var-toy`, whose
`vae.*` it takes); exports load with `mamba_var_io.load_mvar_model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genmotion.errors import UsageError
from genmotion.image_core.config import VARSamplingConfig
from genmotion.image_core.mamba_var import MambaVARConfig, MambaVARImageConfig, MambaVARImageModel
from genmotion.image_core.mamba_var_io import mvar_checkpoint_config
from genmotion.image_core.mamba_var_sampler import sample_mvar_images
from genmotion.image_core.train import VARTask, VARTrainModel, load_tokenizer
from genmotion.image_core.var_model import drop_labels

__all__ = ["MambaVARTask", "MambaVARTrainModel"]


@dataclass(frozen=True, kw_only=True)
class MambaVARTrainModel(VARTrainModel):
    """`model:` of task m-var: `var` (the M-VAR architecture) and `tokenizer` are required; no `init_from`."""

    var: MambaVARConfig | None = None


class MambaVARTask(VARTask):
    """Task `m-var`: VAR's task with the M-VAR transformer (see `genmotion.train.task.Task`)."""

    model_config = MambaVARTrainModel
    model_class = MambaVARImageModel

    def build_model(self, model_cfg: MambaVARTrainModel) -> nn.Module:
        if not 0 <= model_cfg.label_drop < 1:
            raise UsageError(f"model.label_drop must be in [0, 1), got {model_cfg.label_drop}")
        if model_cfg.init_from:
            raise UsageError("task m-var trains from scratch: model.init_from is not supported", fix="leave it out")
        if not isinstance(model_cfg.var, MambaVARConfig) or not model_cfg.tokenizer:
            raise UsageError(
                "task m-var needs model.var and model.tokenizer",
                fix="set model.tokenizer to a var-tokenizer or var checkpoint, e.g. genmotion/weights/var-toy",
            )
        vae = load_tokenizer(model_cfg.tokenizer, model_cfg.var.patch_nums)
        try:
            config = MambaVARImageConfig(vae=vae.config, var=model_cfg.var)
        except ValueError as e:
            raise UsageError(f"model.var does not fit the tokenizer in {model_cfg.tokenizer}", why=str(e)) from e
        model = MambaVARImageModel(config)
        model.var.init_weights()
        model.vae = vae.requires_grad_(False).eval()
        self._label_drop, self._resolved = model_cfg.label_drop, config
        return model

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        assert isinstance(model, MambaVARImageModel)
        images, labels = batch
        with torch.no_grad():
            indices = model.vae.encode(images)  # K x (B, l)
            x_BLCv = model.vae.quantize.idxBl_to_var_input(indices)
        labels = drop_labels(labels, model.var.num_classes, self._label_drop, self._generator)
        logits_BLV = model.var(labels, x_BLCv)
        target_BL = torch.cat(indices, dim=1)
        loss = F.cross_entropy(logits_BLV.flatten(0, 1), target_BL.flatten())
        accuracy = (logits_BLV.argmax(-1) == target_BL).float().mean()
        return loss, {"token_accuracy": accuracy.item()}

    def _config_mapping(self, names: tuple[str, ...], sampling: VARSamplingConfig) -> dict[str, Any]:
        assert isinstance(self._resolved, MambaVARImageConfig), "build_model runs before the export"
        return mvar_checkpoint_config(self._resolved, names, sampling)

    def _sample(self, model: Any, wanted: torch.Tensor, s: VARSamplingConfig) -> torch.Tensor:
        return sample_mvar_images(
            model.var, model.vae, wanted, generator=torch.Generator(device=wanted.device).manual_seed(0),
            guidance_scale=s.guidance_scale, top_k=s.top_k, top_p=s.top_p, temperature=s.temperature,
        )  # fmt: skip
