"""`genmotion video` on a tiny checkpoint: exact frame count, errors before any work, Ctrl-C leaves a partial."""

import pytest
from video_tiny import tiny_model

from genmotion.cli.app import main
from genmotion.io import probe
from genmotion.video.cli import parse_prompt_at
from genmotion.video.videoar.pipeline import VideoARPipeline


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    directory = tmp_path_factory.mktemp("videoar") / "tiny"
    VideoARPipeline(tiny_model(), encoder=object()).save_pretrained(directory, card="# tiny test model\n")
    return directory


def test_cli_writes_mp4_with_exact_frame_count(ckpt, tmp_path):
    out = tmp_path / "clip.mp4"
    code = main(["video", "--prompt", "a red ball moving left", "--frames", "7", "--ckpt", str(ckpt), "-o", str(out),
                 "--prompt-at", "4=the red ball turns and moves right", "--device", "cpu"])  # fmt: skip
    assert code == 0
    info = probe(out)
    assert info.num_frames == 7 and info.codec == "h264" and (info.height, info.width) == (16, 16)


def test_cli_png_folder_and_gif(ckpt, tmp_path):
    assert main(["video", "-p", "a blue box", "-n", "3", "--ckpt", str(ckpt), "-o", f"{tmp_path / 'frames'}/"]) == 0
    assert len(list((tmp_path / "frames").glob("*.png"))) == 3
    assert main(["video", "-p", "a blue box", "-n", "2", "--ckpt", str(ckpt), "-o", str(tmp_path / "a.gif")]) == 0
    assert probe(tmp_path / "a.gif").num_frames == 2


@pytest.mark.parametrize(
    ("args", "code"),
    [(["--prompt", "  "], 2), (["--prompt", "a ball", "--frames", "-3"], 2), (["--prompt", "a ball", "-o", "x.avi"], 2),
     (["--prompt", "a ball", "--prompt-at", "oops"], 2), (["--prompt", "a ball", "-o", "{file}/out.mp4"], 3)],
)  # fmt: skip
def test_bad_input_exits_before_any_work(tmp_path, capsys, args, code):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    args = [a.replace("{file}", str(blocker)) for a in args]
    # the checkpoint does not exist: reaching it would fail differently, so these errors come first
    assert main(["video", *args, "--ckpt", str(tmp_path / "missing")]) == code
    err = capsys.readouterr().err
    assert "error" in err and "no model named" not in err


def test_ctrl_c_leaves_playable_partial_video(ckpt, tmp_path, monkeypatch):
    stream = VideoARPipeline.stream

    def interrupted(self, *args, **kwargs):
        for chunk in stream(self, *args, **kwargs):
            if chunk.index == 3:
                raise KeyboardInterrupt
            yield chunk

    monkeypatch.setattr(VideoARPipeline, "stream", interrupted)
    out = tmp_path / "long.mp4"
    assert main(["video", "-p", "a red ball", "-n", "50", "--ckpt", str(ckpt), "-o", str(out)]) == 130
    assert not out.exists()
    partial = tmp_path / "long.partial.mp4"
    assert probe(partial).num_frames == 3


def test_parse_prompt_at():
    assert parse_prompt_at(["32=the ball turns", "4= a b "]) == [(32, "the ball turns"), (4, "a b")]


def test_bench_video_quick_through_the_cli(ckpt, tmp_path):
    import json

    out = tmp_path / "bench.json"
    assert main(["bench", "video", "--ckpt", str(ckpt), "--quick", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert set(r) >= {"adherence", "drift", "prompt_switch", "speed", "cache"} and r["cache"]["flat_after_window"]
    assert r["speed"]["cli_cold_start_to_first_frame_s"] > 0
    assert {"adherence_colour", "adherence_motion"} <= set(r["adherence_train_templates"])
    assert set(r["text_ceiling"]) == {"probe_colour", "probe_shape", "probe_motion"}


def test_a_size_the_model_cannot_make_is_refused(ckpt, tmp_path, capsys):
    out = tmp_path / "clip.mp4"
    assert main(["video", "-p", "a red ball", "-n", "2", "--ckpt", str(ckpt), "--height", "48", "-o", str(out)]) == 2
    assert "makes 16x16 frames only" in capsys.readouterr().err and not out.exists()
    assert main(["video", "-p", "a red ball", "-n", "2", "--ckpt", str(ckpt), "--height", "16", "--width", "16",
                 "-o", str(out)]) == 0  # fmt: skip
    assert probe(out).num_frames == 2


def _png_frames(folder):
    """The frames a folder output holds, in order: uint8 (H, W, 3) arrays."""
    import numpy as np
    from PIL import Image

    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))]


def test_copy_threshold_reaches_the_sampler(ckpt, tmp_path):
    import numpy as np

    args = ["video", "-p", "a blue box", "-n", "3", "--ckpt", str(ckpt), "--seed", "1"]
    assert main([*args, "--copy-threshold", "1e-12", "-o", f"{tmp_path / 'held'}/"]) == 0
    assert main([*args, "--copy-threshold", "0", "-o", f"{tmp_path / 'free'}/"]) == 0
    held, free = _png_frames(tmp_path / "held"), _png_frames(tmp_path / "free")
    assert np.array_equal(held[1], held[2]) and not np.array_equal(free[1], free[2])
    assert np.array_equal(held[0], free[0])  # frame 0 has nothing to copy


def test_copy_scales_reaches_the_sampler(ckpt, tmp_path, capsys):
    """--copy-scales 1 with a threshold that copies everything keeps only the 1x1 scale: later frames change."""
    import numpy as np

    args = ["video", "-p", "a blue box", "-n", "3", "--ckpt", str(ckpt), "--seed", "1", "--copy-threshold", "1e-12"]
    assert main([*args, "--copy-scales", "1", "-o", f"{tmp_path / 'coarse'}/"]) == 0
    assert main([*args, "--copy-scales", "0", "-o", f"{tmp_path / 'all'}/"]) == 0
    coarse, every = _png_frames(tmp_path / "coarse"), _png_frames(tmp_path / "all")
    assert np.array_equal(every[1], every[2]) and not np.array_equal(coarse[1], coarse[2])
    assert main([*args, "--copy-scales", "-1", "-o", f"{tmp_path / 'bad'}/"]) == 2
    assert "--copy-scales" in capsys.readouterr().err
    assert main(["video", "-p", "a box", "-n", "2", "--model", "ca2vdm", "--copy-scales", "1",
                 "-o", f"{tmp_path / 'flow'}/"]) == 2  # fmt: skip
    assert "does not apply to ca2vdm" in capsys.readouterr().err
