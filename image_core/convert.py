"""Official VAR checkpoints (`vae_ch160v4096z32.pth`, `var_d16.pth` ... `var_d36.pth`) -> genmotion models.

Files are read with `torch.load(weights_only=True)` only. The architecture is detected from the keys
(depth, width, schedule, attn_l2_norm, shared AdaLN, phi sharing); training checkpoints are
unwrapped from ['trainer']['var_wo_ddp'] / ['vae_local']; `module.`/`_orig_mod.` prefixes are
stripped; derived buffers (lvl_1L, attn_bias_for_masking, zero_k_bias) are rebuilt and compared,
never trusted. Any mismatch raises `InputError` naming the key and the likely cause.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch
from torch import nn

from genmotion.checkpoint import load_foreign, load_weights, read_checkpoint_config, save_pretrained
from genmotion.config import from_dict, to_dict
from genmotion.errors import InputError, UsageError
from genmotion.image_core.config import VARConfig, VARImageConfig, VARSamplingConfig
from genmotion.image_core.convert_checks import (
    check_var_buffers,
    detect_vqvae_config,
    match_state_dict,
    rebuilt_var_buffers,
)
from genmotion.image_core.model import VARImageModel
from genmotion.image_core.official_layouts import require_layout
from genmotion.image_core.var_model import VAR, level_ids
from genmotion.nn.vqvae import VQVAE
from genmotion.nn.vqvae_config import PATCH_NUMS_256, PATCH_NUMS_512, PATCH_NUMS_1024

__all__ = [
    "CHECKPOINT_KIND",
    "assemble",
    "convert_official",
    "detect_var_config",
    "detect_vqvae_config",
    "image_checkpoint_config",
    "load_image_model",
    "load_official",
    "load_official_var",
    "load_official_vqvae",
    "read_image_metadata",
    "read_official",
    "save_image_model",
]

CHECKPOINT_KIND = "var"
Source = str | Path | Mapping[str, object]
_PARTS = {"var": "var_wo_ddp", "vae": "vae_local", "m-var": "mvar_wo_ddp"}
_PART_FILES = {"var": "var_d*.pth", "vae": "vae_ch160v4096z32.pth", "m-var": "M-VAR d*.pth (e.g. d32.pth)"}
_METADATA_KEYS = ("classes", "sampling")
_C = TypeVar("_C")
_S = TypeVar("_S")
M = TypeVar("M", bound=nn.Module)
_KNOWN_SCHEDULES = (PATCH_NUMS_256, PATCH_NUMS_512, PATCH_NUMS_1024)
_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.")


def _strip(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in ("module.", "_orig_mod."):
            if name.startswith(prefix):
                name, changed = name[len(prefix) :], True
    return name


def read_official(source: Source, part: Literal["var", "vae", "m-var"]) -> dict[str, torch.Tensor]:
    """A flat state dict of one part from a file path or an already loaded object.

    Plain state dicts are returned as they are; training checkpoints are unwrapped from
    ['trainer'][var_wo_ddp | vae_local | mvar_wo_ddp (M-VAR's)]. Prefixes `module.` and `_orig_mod.` are stripped.
    """
    inner = _PARTS[part]
    if isinstance(source, (str, Path)):
        sd = load_foreign(source, unwrap=("trainer", inner))
        where = str(source)
    else:
        obj: object = source
        for key in ("trainer", inner):
            if isinstance(obj, Mapping) and key in obj:
                obj = obj[key]
        if not isinstance(obj, Mapping):
            raise InputError(f"the {part} checkpoint does not hold a state dict", why=f"found {type(obj).__name__}")
        sd = {_strip(str(k)): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        where = f"the {part} state dict"
    if not sd:
        raise InputError(
            f"{where} holds no {part} weights",
            why=f"neither a plain state dict nor a training checkpoint with ['trainer']['{inner}']",
            fix=f"pass the official {_PART_FILES[part]} file",
        )
    return sd


def _schedule_from_levels(sd: Mapping[str, torch.Tensor], num_levels: int) -> tuple[int, ...]:
    lvl = sd["lvl_1L"].flatten().long()
    ok = bool(lvl.numel()) and bool((lvl[1:] >= lvl[:-1]).all()) and int(lvl.min()) == 0
    counts = torch.bincount(lvl, minlength=num_levels).tolist() if ok else []
    roots = [round(c**0.5) for c in counts]
    if not ok or len(counts) != num_levels or any(r * r != c or r == 0 for r, c in zip(roots, counts, strict=True)):
        raise InputError(
            "checkpoint key 'lvl_1L' is not a valid level map",
            why=f"it must list scale ids 0..{num_levels - 1} in order, each pn*pn times",
            fix="the file is corrupt or not an official VAR checkpoint",
        )
    return tuple(roots)


def _detect_schedule(sd: Mapping[str, torch.Tensor]) -> tuple[int, ...]:
    K, L, first_l = sd["lvl_embed.weight"].shape[0], sd["pos_1LC"].shape[1], sd["pos_start"].shape[1]
    if "lvl_1L" in sd:
        patch_nums = _schedule_from_levels(sd, K)
    else:
        matches = [s for s in _KNOWN_SCHEDULES if len(s) == K and sum(p * p for p in s) == L]
        if not matches:
            raise InputError(
                f"cannot tell the scale schedule: 'lvl_embed.weight' has {K} levels and 'pos_1LC' {L} tokens",
                why="no known schedule (256, 512, 1024 px) fits and the checkpoint has no 'lvl_1L' buffer",
                fix="pass the config explicitly with the patch_nums the model was trained with",
            )
        patch_nums = matches[0]
    if sum(p * p for p in patch_nums) != L or patch_nums[0] ** 2 != first_l:
        raise InputError(
            f"checkpoint key 'pos_1LC' has {L} tokens but 'lvl_1L' describes schedule {patch_nums}",
            why="the position table and the level map disagree: wrong schedule",
            fix="the file is corrupt or was edited",
        )
    return patch_nums


def detect_var_config(sd: Mapping[str, torch.Tensor]) -> VARConfig:
    """Depth, width, schedule, attn_l2_norm, shared AdaLN, classes and vocabulary from the keys."""
    for key in ("word_embed.weight", "class_emb.weight", "pos_1LC", "pos_start", "lvl_embed.weight", "head.weight"):
        if key not in sd:
            raise InputError(
                "this is not a VAR transformer state dict",
                why=f"key {key!r} is missing",
                fix="pass a var_d*.pth file (or a VAR training checkpoint) as the transformer",
            )
    blocks = sorted({int(m.group(1)) for k in sd if (m := _BLOCK_RE.match(k))})
    if not blocks or blocks != list(range(len(blocks))):
        raise InputError("VAR checkpoint blocks are missing or not numbered 0..depth-1", why=f"found {blocks[:8]}")
    depth = len(blocks)
    C, Cv = sd["word_embed.weight"].shape
    if C % depth:
        raise InputError(
            f"checkpoint key 'word_embed.weight' has width {C}, not a multiple of depth {depth}",
            why="VAR uses width = 64 * depth with one head per block (wrong depth?)",
        )
    if "blocks.0.attn.scale_mul_1H11" in sd and sd["blocks.0.attn.scale_mul_1H11"].shape[1] != depth:
        raise InputError(
            f"checkpoint key 'blocks.0.attn.scale_mul_1H11' has {sd['blocks.0.attn.scale_mul_1H11'].shape[1]} heads",
            why=f"VAR uses heads = depth = {depth}",
        )
    return VARConfig(
        depth=depth,
        head_dim=C // depth,
        num_classes=sd["class_emb.weight"].shape[0] - 1,
        vocab_size=sd["head.weight"].shape[0],
        latent_channels=Cv,
        patch_nums=_detect_schedule(sd),
        mlp_ratio=sd["blocks.0.ffn.fc1.weight"].shape[0] / C,
        drop_path_rate=0.1 * depth / 24,
        shared_aln="shared_ada_lin.1.weight" in sd or "blocks.0.ada_gss" in sd,
        attn_l2_norm="blocks.0.attn.scale_mul_1H11" in sd,
        markov=_is_scale_markov(sd, _detect_schedule(sd)),
    )


def _is_scale_markov(sd: Mapping[str, torch.Tensor], patch_nums: tuple[int, ...]) -> bool:
    """True when the stored training mask `attn_bias_for_masking` (1, 1, L, L) is block-diagonal by scale: each scale
    sees only itself, as in MVAR's official checkpoints (CVL-UESTC/MVAR), whose weights are VAR's key for key."""
    mask = sd.get("attn_bias_for_masking")
    lvl = level_ids(patch_nums)[0]
    if mask is None or mask.numel() != lvl.numel() ** 2:
        return False
    diagonal = torch.where(lvl[:, None] == lvl[None, :], 0.0, -torch.inf)
    return bool(torch.equal(mask.detach().to("cpu").float().reshape(diagonal.shape), diagonal))


def with_neighbourhood(cfg: VARConfig, kernel: int, first_scale: int) -> VARConfig:
    """`cfg` with MVAR's spatial-Markov window (`kernel` x `kernel` from scale index `first_scale` on; the official
    MVAR: 7 from `refine_step` 8); the checkpoint must be scale-Markov (a UsageError names why otherwise)."""
    if not cfg.markov:
        raise UsageError(
            "--mvar needs an MVAR checkpoint",
            why="the file's attn_bias_for_masking is VAR's block-causal mask, not the scale-Markov one",
            fix="drop --mvar for a VAR file",
        )
    try:
        return dataclasses.replace(cfg, neighbourhood_kernel=kernel, neighbourhood_from=first_scale)
    except ValueError as e:
        raise UsageError("--mvar does not fit this checkpoint's schedule", why=str(e)) from e


def _materialise(build: type[nn.Module], config: object, sd: dict[str, torch.Tensor], dtype: torch.dtype) -> nn.Module:
    """Build on the meta device (no init cost, no double memory) and take the checkpoint tensors."""
    with torch.device("meta"):
        model = build(config)
    sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
    model.load_state_dict(sd, strict=True, assign=True)
    return model.eval()


def load_official_var(
    source: Source,
    *,
    config: VARConfig | None = None,
    dtype: torch.dtype = torch.float32,
    neighbourhood: tuple[int, int] | None = None,
) -> VAR:
    """An official VAR transformer (or MVAR's: same keys, a scale-Markov mask, detected from the stored mask);
    `config` (else detected) is checked key for key against the file. `neighbourhood` = (kernel, first scale)
    adds MVAR's window, which the weights do not record."""
    sd = read_official(source, "var")
    require_layout(sd, "var", only=("hmar", "flexvar", "m-var", "flowar"))  # name the file's kind and its command
    cfg = config or detect_var_config(sd)
    if neighbourhood is not None:
        cfg = with_neighbourhood(cfg, *neighbourhood)
    with torch.device("meta"):
        reference = VAR(cfg).state_dict()
    # The stored training mask holds the scale pattern only (MVAR applies its window at sampling time).
    stored = dataclasses.replace(cfg, neighbourhood_kernel=0, neighbourhood_from=0)
    for key, value in rebuilt_var_buffers(stored).items():
        sd.setdefault(key, value)  # a file saved without its derived buffers still loads
    match_state_dict(reference, sd, part="var")
    check_var_buffers(sd, stored)
    sd.update(rebuilt_var_buffers(cfg))
    model = _materialise(VAR, cfg, sd, dtype)
    assert isinstance(model, VAR)
    return model


def load_official_vqvae(
    source: Source,
    *,
    patch_nums: tuple[int, ...] | None = None,
    norm_groups: int = 32,
    dtype: torch.dtype = torch.float32,
) -> VQVAE:
    """An official VAR tokenizer run at `patch_nums` (default: the 256 px schedule)."""
    sd = read_official(source, "vae")
    require_layout(sd, "var-vae", only=("flexvae",))
    cfg = detect_vqvae_config(sd, patch_nums=patch_nums or PATCH_NUMS_256, norm_groups=norm_groups)
    with torch.device("meta"):
        reference = VQVAE(cfg).state_dict()
    # Codebook-usage statistics are training bookkeeping sized by the training schedule; like the
    # official loader, reset them when this run's schedule has another number of scales.
    ema = reference["quantize.ema_vocab_hit_SV"]
    if "quantize.ema_vocab_hit_SV" not in sd or sd["quantize.ema_vocab_hit_SV"].shape != ema.shape:
        sd["quantize.ema_vocab_hit_SV"] = torch.zeros(ema.shape)
    match_state_dict(reference, sd, part="vae")
    model = _materialise(VQVAE, cfg, sd, dtype)
    assert isinstance(model, VQVAE)
    return model


def load_official(
    var_source: Source,
    vae_source: Source | None = None,
    *,
    norm_groups: int = 32,
    dtype: torch.dtype = torch.float32,
    neighbourhood: tuple[int, int] | None = None,
) -> VARImageModel:
    """Transformer + tokenizer at the transformer's schedule; without `vae_source` the tokenizer comes
    from the VAR training checkpoint (['trainer']['vae_local']). `neighbourhood`: see `load_official_var`."""
    var = load_official_var(var_source, dtype=dtype, neighbourhood=neighbourhood)
    vae = load_official_vqvae(
        var_source if vae_source is None else vae_source,
        patch_nums=var.patch_nums,
        norm_groups=norm_groups,
        dtype=dtype,
    )
    return assemble(VARImageModel, VARImageConfig(vae=vae.config, var=var.config), vae, var)


def assemble(model_class: Callable[[Any], M], config: Any, vae: nn.Module, var: nn.Module) -> M:
    """A two-part image model (`.vae` tokenizer, `.var` transformer) of `config`, built on the meta device (no
    memory, no init) and given the two loaded parts: what every official converter ends with."""
    with torch.device("meta"):
        model = model_class(config)
    model.vae, model.var = vae, var
    return model


def save_image_model(
    model: VARImageModel,
    directory: str | Path,
    *,
    card: str | None = None,
    dtype: torch.dtype | None = None,
    class_names: Sequence[str] = (),
    sampling: VARSamplingConfig | None = None,
    force: bool = False,
) -> Path:
    """Write `config.yaml` (kind: var) + `model.safetensors` (`vae.*`, `var.*`).

    `class_names` (index = label) and `sampling` (default sampling settings) are stored beside the
    architecture as metadata; `read_image_metadata` reads them back.
    """
    config = image_checkpoint_config(model.config, class_names, sampling)
    return save_pretrained(directory, model, config, card, dtype, force=force)


def class_checkpoint_config(
    kind: str, config: object, num_classes: int, class_names: Sequence[str] = (), sampling: object | None = None
) -> dict[str, object]:
    """The `config.yaml` mapping of a class-conditional image checkpoint of `kind` (every VAR-family kind):
    `kind`, the config's fields, the class names (one per class, or none) and the default sampling settings."""
    out: dict[str, object] = {"kind": kind, **to_dict(config)}
    if class_names:
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for a model of {num_classes} classes")
        out["classes"] = list(class_names)
    if sampling is not None:
        out["sampling"] = to_dict(sampling)
    return out


def image_checkpoint_config(
    config: VARImageConfig, class_names: Sequence[str] = (), sampling: VARSamplingConfig | None = None
) -> dict[str, object]:
    """The `config.yaml` mapping of a `var` checkpoint."""
    return class_checkpoint_config(CHECKPOINT_KIND, config, config.var.num_classes, class_names, sampling)


def read_class_checkpoint(directory: str | Path, kind: str, config_type: type[_C], label: str, fix: str) -> _C:
    """The architecture config of a class-conditional image checkpoint of `kind` (its config.yaml without the class
    names and sampling settings); a checkpoint of another kind is an InputError ("not `label` one", `fix`)."""
    raw = read_checkpoint_config(directory)
    found = raw.pop("kind")
    if found != kind:
        raise InputError(f"{directory} holds a {found!r} checkpoint, not {label} one", fix=fix)
    for metadata in _METADATA_KEYS:
        raw.pop(metadata, None)
    return from_dict(config_type, raw)


def read_class_metadata(directory: str | Path, sampling_type: type[_S]) -> tuple[tuple[str, ...], _S]:
    """Class names (empty when the checkpoint names none) and default sampling settings of an image checkpoint."""
    raw = read_checkpoint_config(directory)
    names = tuple(str(n) for n in raw.get("classes", ()))
    return names, from_dict(sampling_type, raw.get("sampling", {}), prefix="sampling")


def read_image_metadata(directory: str | Path) -> tuple[tuple[str, ...], VARSamplingConfig]:
    """Class names (empty when the checkpoint names none) and default sampling settings of a `var` directory."""
    return read_class_metadata(directory, VARSamplingConfig)


def load_image_model(directory: str | Path, *, dtype: torch.dtype = torch.float32) -> VARImageModel:
    """Read a directory written by `save_image_model` / `convert_official` / `genmotion train` (task var);
    buffers are re-checked."""
    config = read_class_checkpoint(directory, CHECKPOINT_KIND, VARImageConfig, "a VAR", "pass a VAR checkpoint")
    with torch.device("meta"):
        model = VARImageModel(config)
    model.to_empty(device="cpu")
    model = model.to(dtype)
    load_weights(model, directory, strict=True)
    state = model.var.state_dict()
    check_var_buffers(state, config.var)
    return model.eval()


def convert_official(
    var_source: Source,
    vae_source: Source | None,
    directory: str | Path,
    *,
    norm_groups: int = 32,
    dtype: torch.dtype | None = None,
    force: bool = False,
    neighbourhood: tuple[int, int] | None = None,
) -> Path:
    """`genmotion convert var --var F --vae F [--mvar] -o DIR`: official files -> a safetensors checkpoint directory
    (written under the suite's folder rule: `force` moves a folder genmotion did not write aside)."""
    model = load_official(var_source, vae_source, norm_groups=norm_groups, neighbourhood=neighbourhood)
    depth, markov = model.config.var.depth, model.config.var.markov
    name, origin = ("MVAR", "CVL-UESTC/MVAR") if markov else ("VAR", "FoundationVision/VAR")
    card = f"# {name}-d{depth}\n\nConverted from the official {name} checkpoints ({origin}).\n"
    return save_image_model(model, directory, card=card, dtype=dtype, force=force)
