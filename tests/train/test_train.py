"""`genmotion train` end to end on the smallest task: export, card, resume, and 2-process CPU DDP."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from genmotion.checkpoint import load_weights, read_checkpoint_config
from genmotion.errors import InputError, UsageError
from genmotion.train.caption_lm import VOCAB, decode, encode
from genmotion.train.run import train

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "core" / "caption_lm.yaml"
TINY = [
    "model.transformer.dim=32",
    "model.transformer.depth=1",
    "model.transformer.heads=2",
    "data.length=48",
    "data.eval_captions=8",
    "trainer.batch_size=4",
    "trainer.progress=false",
    "trainer.log_every=1",
]


def test_encode_decode_round_trip():
    assert decode(encode("a red ball", 20)) == "a red ball"
    assert int(encode("x" * 50, 10).max()) < VOCAB


def test_train_exports_checkpoint_and_resumes(tmp_path):
    out = tmp_path / "run"
    r = train(CONFIG, [*TINY, "trainer.max_steps=3", f"trainer.out_dir={out}"])
    assert r.steps == 3 and r.checkpoint == out / "model"
    cfg = read_checkpoint_config(out / "model")
    assert cfg["kind"] == "caption-lm" and cfg["model"]["transformer"]["dim"] == 32
    card = (out / "model" / "card.md").read_text()
    assert "steps: 3" in card and "eval_char_perplexity" in card
    with safe_open(str(out / "model" / "model.safetensors"), framework="pt") as f:
        assert all(f.get_tensor(k).dtype in (torch.bfloat16, torch.int64) for k in f.keys())
    last = out / "checkpoints" / "last.safetensors"
    assert last.is_file()
    r2 = train(CONFIG, [*TINY, "trainer.max_steps=5", f"trainer.out_dir={out}", "trainer.resume=last"])
    assert r2.steps == 5  # continued from step 3, not from scratch
    from genmotion.nn.tiny import TinyTokenModel, TinyTransformerConfig

    load_weights(TinyTokenModel(VOCAB, TinyTransformerConfig(dim=32, depth=1, heads=2)), out / "model")


def test_bad_recipe_names_the_key(tmp_path):
    with pytest.raises(UsageError, match="model.transformer.widht"):
        train(CONFIG, ["model.transformer.widht=3"])
    with pytest.raises(UsageError, match="cannot resume"):
        train(CONFIG, [*TINY, f"trainer.out_dir={tmp_path}", "trainer.resume=last"])


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(directory / "model.safetensors"), framework="pt") as f:
        return {k: f.get_tensor(k).float() for k in f.keys()}


def test_init_from_starts_a_fresh_run_from_exported_weights(tmp_path):
    first = train(CONFIG, [*TINY, "trainer.max_steps=3", f"trainer.out_dir={tmp_path / 'a'}", "trainer.lr=0.01"])
    assert first.checkpoint is not None
    a = _weights(first.checkpoint)
    common = [*TINY, "trainer.max_steps=1", "trainer.lr=1e-12", "trainer.warmup_steps=0"]
    tuned = train(CONFIG, [*common, f"trainer.out_dir={tmp_path / 'b'}", f"trainer.init_from={first.checkpoint}"])
    fresh = train(CONFIG, [*common, f"trainer.out_dir={tmp_path / 'c'}"])
    assert tuned.checkpoint is not None and fresh.checkpoint is not None
    b, c = _weights(tuned.checkpoint), _weights(fresh.checkpoint)
    assert tuned.steps == 1  # a new run (step 0), not a resume of the first one's 3 steps
    assert all(torch.equal(a[k], b[k]) for k in a)  # a 1e-12 step leaves the loaded bf16 weights as they were
    assert not all(torch.equal(a[k], c[k]) for k in a)
    with pytest.raises(InputError, match="cannot initialise from"):
        train(CONFIG, [*common, f"trainer.out_dir={tmp_path / 'd'}", f"trainer.init_from={tmp_path / 'nowhere'}"])


def test_two_process_cpu_ddp(tmp_path):
    out = tmp_path / "ddp"
    sets = [
        *TINY,
        "trainer.max_steps=3",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.accelerator=cpu",
        "trainer.threads=1",
        f"trainer.out_dir={out}",
    ]
    args = [sys.executable, "-m", "genmotion.cli.app", "train", str(CONFIG)]
    for s in sets:
        args += ["--set", s]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in (out / "model" / "card.md").read_text()
