"""`genmotion world` on a tiny checkpoint: the side-by-side videos and the .npz; bad input is one line,
exit 2 or 3, and leaves nothing behind."""

from __future__ import annotations

import numpy as np
import pytest
from world_tiny import tiny_clip

from genmotion.cli.app import main
from genmotion.io import open_video_writer, probe


def _clip(path, frames: int = 4):
    with open_video_writer(path, 4.0) as writer:
        writer.write(tiny_clip(frames))
    return path


def test_world_writes_a_video_per_sample_and_the_npz(tmp_path, tiny_ckpt):
    clip, out = _clip(tmp_path / "clip.mp4"), tmp_path / "out"
    args = ["world", "--context", str(clip), "--horizon", "3", "--samples", "2", "--steps", "2"]
    assert main([*args, "--ckpt", str(tiny_ckpt), "-o", str(out)]) == 0
    for k in range(2):
        info = probe(out / f"sample_{k}.mp4")
        assert info.num_frames == 4 + 3 and info.width == 2 * 4 * 16
    with np.load(out / "forecast.npz") as z:
        assert z["rgb"].shape == (2, 3, 16, 16, 3) and z["latents"].shape == (2, 3, 4, 4)
        assert z["depth"].shape == (2, 3, 16, 16) and int(z["context_frames"]) == 4
    assert main([*args, "--ckpt", str(tiny_ckpt), "-o", str(out), "--seed", "1"]) == 0  # replaces its own output


@pytest.mark.parametrize(
    ("flags", "code", "needle"),
    [
        (["--horizon", "0"], 2, "--horizon"),
        (["--samples", "0"], 2, "--samples"),
        (["--steps", "0"], 2, "--steps"),
    ],
)
def test_bad_flags_exit_2(tmp_path, tiny_ckpt, capsys, flags, code, needle):
    clip, out = _clip(tmp_path / "clip.mp4"), tmp_path / "out"
    assert main(["world", "--context", str(clip), *flags, "--ckpt", str(tiny_ckpt), "-o", str(out)]) == code
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_bad_context_exits_3_without_output(tmp_path, tiny_ckpt, capsys):
    out = tmp_path / "out"
    short = _clip(tmp_path / "short.mp4", frames=1)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    for context, needle in ((short, "at least 2"), (text, "notes.mp4"), (tmp_path / "missing.mp4", "missing")):
        assert main(["world", "--context", str(context), "--ckpt", str(tiny_ckpt), "-o", str(out)]) == 3
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1, err
        assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_bench_world_quick_on_a_tiny_checkpoint(tmp_path, tiny_ckpt):
    import json

    out, png, strip = tmp_path / "b.json", tmp_path / "b.png", tmp_path / "s.png"
    args = ["bench", "world", "--ckpt", str(tiny_ckpt), "--quick", "--samples", "2", "--scenes", "1"]
    assert main([*args, "--json", str(out), "--plot", str(png), "--strip", str(strip)]) == 0
    results = json.loads(out.read_text())
    assert set(results["methods"]) >= {"vfmf", "copy_last", "ceiling_gt_features"}
    assert 0 <= results["methods"]["vfmf"]["miou"]["best_of_K"]["h4"] <= 1
    assert results["speed"]["cache_bytes"]["frame_8"] == results["speed"]["cache_bytes"]["frame_16"]
    assert png.stat().st_size > 0 and strip.stat().st_size > 0
