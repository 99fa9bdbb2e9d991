"""Training on a folder of the user's videos (JSONL captions): tokenizer, then VideoAR, a few steps each."""

import json

import pytest

import genmotion
from genmotion.data.toyworld import caption, render_clips, sample_clip_specs
from genmotion.errors import InputError
from genmotion.io import open_video_writer
from genmotion.train.run import train
from genmotion.video.config import VideoDataConfig
from genmotion.video.data import FolderClips, read_sidecar

HERE = __import__("pathlib").Path(__file__).parent


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three generated clips (24x20 px, so the loader must crop and resize) and their captions."""
    import torch

    root = tmp_path_factory.mktemp("my_videos")
    g = torch.Generator().manual_seed(0)
    specs = sample_clip_specs(3, g)
    frames = render_clips(specs, 5, 20, 24).frames
    lines = []
    for i, spec in enumerate(specs):
        with open_video_writer(root / f"clip{i}.mp4", fps=8) as writer:
            writer.write(frames[i])
        lines.append(json.dumps({"path": f"clip{i}.mp4", "caption": caption(spec, g)}))
    (root / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_folder_clips_are_cropped_resized_and_captioned(folder):
    cfg = VideoDataConfig(source="folder", folder=str(folder), image_size=16, num_frames=4)
    batch = next(iter(FolderClips(cfg, batch_size=2, seed=0)))
    assert batch["video"].shape == (2, 4, 3, 16, 16) and len(batch["captions"]) == 2
    assert -1.0 <= float(batch["video"].min()) and float(batch["video"].max()) <= 1.0


def test_sidecar_errors_name_the_line(tmp_path):
    (tmp_path / "captions.jsonl").write_text('{"path": "missing.mp4", "caption": "x"}\n')
    with pytest.raises(InputError, match="captions.jsonl:1"):
        read_sidecar(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        read_sidecar(tmp_path / "nope")


def test_train_tokenizer_then_videoar_on_a_folder(folder, tmp_path):
    tok = train(HERE / "tiny_tokenizer.yaml", [f"data.folder={folder}", f"trainer.out_dir={tmp_path / 'tok'}"])
    assert tok.steps == 2 and "eval_psnr" in tok.metrics
    ar = train(
        HERE / "tiny_videoar.yaml",
        [f"data.folder={folder}", f"model.tokenizer_checkpoint={tok.checkpoint}", f"trainer.out_dir={tmp_path / 'ar'}"],
    )
    assert ar.steps == 2
    pipe = genmotion.load(str(ar.checkpoint))
    video = pipe.generate("a red ball moving left", num_frames=3, seed=0)
    assert video.frames.shape == (3, 16, 16, 3)


def test_train_ca2vdm_on_a_folder(folder, tmp_path):
    tok = train(HERE / "tiny_tokenizer.yaml", [f"data.folder={folder}", f"trainer.out_dir={tmp_path / 'tok'}"])
    run = train(
        HERE / "tiny_ca2vdm.yaml",
        [f"data.folder={folder}", f"model.tokenizer_checkpoint={tok.checkpoint}", f"trainer.out_dir={tmp_path / 'cv'}"],
    )
    assert run.steps == 2
    pipe = genmotion.load(str(run.checkpoint))
    assert float(pipe.model.latent_std.min()) > 0 and float(pipe.model.text_std.min()) > 0  # statistics were set
    video = pipe.generate("a red ball moving left", num_frames=5, seed=0)
    assert video.frames.shape == (5, 16, 16, 3)


def test_toy_clips_write_the_configured_caption_vocabulary():
    from genmotion.data.toyworld.vocab import LEXICON
    from genmotion.video.data import ToyClips

    rich_only = {e.text for e in LEXICON if e.split == "rich"}

    def captions(vocabulary: str) -> str:
        cfg = VideoDataConfig(image_size=16, num_frames=2, caption_vocabulary=vocabulary)  # type: ignore[arg-type]
        batches = iter(ToyClips(cfg, batch_size=16, seed=0))
        return " | ".join(c.lower() for _ in range(4) for c in next(batches)["captions"])

    assert any(p in captions("rich") for p in rich_only)
    assert not any(f" {p} " in f" {captions('basic')} " for p in rich_only if " " in p)


def test_train_layout_prior_through_the_cli(folder, tmp_path):
    """`genmotion train` with model.train=layout_prior: only the prior changes, the sampling block is kept."""
    import torch

    from genmotion.checkpoint import read_checkpoint_config
    from genmotion.cli.app import main

    tok = train(HERE / "tiny_tokenizer.yaml", [f"data.folder={folder}", f"trainer.out_dir={tmp_path / 'tok'}"])
    ar = train(
        HERE / "tiny_videoar.yaml",
        [f"data.folder={folder}", f"model.tokenizer_checkpoint={tok.checkpoint}", f"trainer.out_dir={tmp_path / 'ar'}"],
    )
    config = read_checkpoint_config(ar.checkpoint)
    (ar.checkpoint / "config.yaml").write_text(
        (ar.checkpoint / "config.yaml").read_text() + "sampling:\n  guidance_scale: 2.0\n"
    )
    args = ["train", str(HERE / "tiny_videoar.yaml"), "--set", f"data.folder={folder}", "--set",
            "model.tokenizer_checkpoint=null", "--set", f"model.init_from={ar.checkpoint}", "--set",
            "model.train=layout_prior", "--set", "model.layout_prior.scales=1", "--set", "model.layout_prior.width=32",
            "--set", "model.layout_prior.heads=2", "--set", "data.num_frames=1", "--set",
            f"trainer.out_dir={tmp_path / 'lay'}"]  # fmt: skip
    assert main(args) == 0
    made = tmp_path / "lay" / "model"
    assert read_checkpoint_config(made)["sampling"] == {"guidance_scale": 2.0}
    before, after = genmotion.load(str(ar.checkpoint)).model, genmotion.load(str(made)).model
    assert after.layout_prior is not None and before.layout_prior is None
    std = after.layout_prior.text_std
    assert float(std.min()) > 0 and not torch.equal(std, torch.ones(384))  # statistics were set
    b, a = before.state_dict(), after.state_dict()
    assert all(torch.equal(b[k], a[k]) for k in b)  # every weight but the prior's as it was
    assert config["model"]["transformer"] == read_checkpoint_config(made)["model"]["transformer"]
    video = genmotion.load(str(made)).generate("a red ball moving left", num_frames=2, seed=0)
    assert video.frames.shape == (2, 16, 16, 3)


def test_train_keyframe_through_the_cli(folder, tmp_path, capsys):
    """`genmotion train` with model.train=keyframe: only the keyframe transformer changes; a checkpoint
    without one, or clips longer than one frame, are clear errors (exit 2)."""
    import torch

    from genmotion.cli.app import main
    from genmotion.video.videoar.keyframe import attach_keyframe

    tok = train(HERE / "tiny_tokenizer.yaml", [f"data.folder={folder}", f"trainer.out_dir={tmp_path / 'tok'}"])
    ar = train(
        HERE / "tiny_videoar.yaml",
        [f"data.folder={folder}", f"model.tokenizer_checkpoint={tok.checkpoint}", f"trainer.out_dir={tmp_path / 'ar'}"],
    )
    plain = genmotion.load(str(ar.checkpoint))
    composed = attach_keyframe(plain, plain).save_pretrained(tmp_path / "composed")

    def run(init: object, frames: int, out: str) -> int:
        return main(["train", str(HERE / "tiny_videoar.yaml"), "--set", f"data.folder={folder}", "--set",
                     "model.tokenizer_checkpoint=null", "--set", f"model.init_from={init}", "--set",
                     "model.train=keyframe", "--set", f"data.num_frames={frames}", "--set",
                     f"trainer.out_dir={tmp_path / out}"])  # fmt: skip

    assert run(ar.checkpoint, 1, "none") == 2
    assert "no keyframe transformer" in capsys.readouterr().err
    assert run(composed, 2, "two") == 2
    assert "data.num_frames=1" in capsys.readouterr().err
    assert run(composed, 1, "kf") == 0
    before, after = (
        genmotion.load(str(composed)).model.state_dict(),
        genmotion.load(str(tmp_path / "kf" / "model")).model.state_dict(),
    )
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("keyframe.") for k in changed)


def test_deeper_fine_tune_starts_as_the_checkpoint(folder, tmp_path):
    """model.init_from with a larger model.transformer.depth: the new blocks are the identity, so the deeper
    model draws the checkpoint's frames; a smaller depth or another MLP width is a clear error."""
    from dataclasses import replace

    import torch

    from genmotion.errors import UsageError
    from genmotion.video.videoar.config import VideoARTransformerConfig
    from genmotion.video.videoar.pipeline import VideoARPipeline
    from genmotion.video.videoar.train import VideoARModelConfig, VideoARTask

    tok = train(HERE / "tiny_tokenizer.yaml", [f"data.folder={folder}", f"trainer.out_dir={tmp_path / 'tok'}"])
    ar = train(
        HERE / "tiny_videoar.yaml",
        [f"data.folder={folder}", f"model.tokenizer_checkpoint={tok.checkpoint}", f"trainer.out_dir={tmp_path / 'ar'}"],
    )
    pipe = genmotion.load(str(ar.checkpoint))
    tiny = VideoARTransformerConfig(width=32, depth=2, heads=2, rope_axes=(4, 6, 6), sink_frames=1, window_frames=2,
                                    max_sink_distance=3)  # fmt: skip
    assert tiny == pipe.model.config.transformer
    deep = VideoARTask().build_model(
        VideoARModelConfig(init_from=str(ar.checkpoint), transformer=replace(tiny, depth=4))
    )
    assert len(deep.transformer.blocks) == 4
    assert not torch.equal(
        deep.transformer.blocks[3].attn.qkv.weight, torch.zeros_like(deep.transformer.blocks[3].attn.qkv.weight)
    )
    assert torch.count_nonzero(deep.transformer.blocks[3].mlp.fc2.weight) == 0
    deeper = VideoARPipeline(deep, sampling=pipe.default_sampling)
    a = pipe.generate("a red ball moving left", num_frames=3, seed=0).frames
    b = deeper.generate("a red ball moving left", num_frames=3, seed=0).frames
    assert (a == b).all()
    for wrong in (replace(tiny, depth=1), replace(tiny, depth=3, mlp_ratio=2.0)):
        with pytest.raises(UsageError, match="model.transformer differs"):
            VideoARTask().build_model(VideoARModelConfig(init_from=str(ar.checkpoint), transformer=wrong))
