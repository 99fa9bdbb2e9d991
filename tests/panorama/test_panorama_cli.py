"""`genmotion panorama` through the CLI entry point on a tiny checkpoint: tagged MP4s, bad input, Ctrl-C."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from genmotion.cli.app import main
from genmotion.io import probe
from genmotion.panorama.spherical import read_spherical


def ffprobe_projection(path: Path) -> str | None:
    if shutil.which("ffprobe") is None:
        pytest.fail("ffprobe is missing: install Debian's ffmpeg (the CI does)")
    cmd = ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)]
    streams = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)["streams"]
    sph = [d for d in streams[0].get("side_data_list", []) if d["side_data_type"] == "Spherical Mapping"]
    return sph[0]["projection"] if sph else None


def test_cli_writes_a_playable_tagged_equirect(tmp_path: Path, tiny_ckpt: Path, inputs: dict[str, Path]) -> None:
    out = tmp_path / "pano.mp4"
    args = ["panorama", "--input", str(inputs["video"]), "--trajectory", str(inputs["trajectory"])]
    assert main([*args, "--ckpt", str(tiny_ckpt), "-o", str(out), "--steps", "2"]) == 0
    info = probe(out)
    assert (info.num_frames, info.width, info.height) == (5, 1024, 512)
    assert ffprobe_projection(out) == "equirectangular"
    assert read_spherical(out) == {"v1": "equirectangular", "v2": "equirectangular"}


def test_cli_cubemap_and_frames(tmp_path: Path, tiny_ckpt: Path, inputs: dict[str, Path]) -> None:
    cube = tmp_path / "cube.mp4"
    base = ["panorama", "--input", str(inputs["video"]), "--ckpt", str(tiny_ckpt), "--steps", "1"]
    assert main([*base, "--format", "cubemap", "-o", str(cube)]) == 0
    assert ffprobe_projection(cube) == "cubemap" and probe(cube).width == 768
    frames = tmp_path / "frames"
    assert main([*base, "--format", "frames", "-o", f"{frames}/"]) == 0
    assert len(list(frames.glob("*.png"))) == 5


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        (["--fov", "175"], 2),
        (["--fov", "10"], 2),
        (["--size", "8k"], 2),
        (["--format", "eac"], 2),
        (["--trajectory", "short.json"], 3),
        (["--trajectory", "fields.json"], 3),
        (["--input", "notvideo.mp4"], 3),
    ],
)
def test_bad_input_one_line_no_file(
    tmp_path: Path,
    tiny_ckpt: Path,
    inputs: dict[str, Path],
    extra: list[str],
    code: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "short.json").write_text(json.dumps({"yaw": [0, 1], "pitch": [0, 1]}))
    (tmp_path / "fields.json").write_text(json.dumps({"yaw": [0] * 5, "pitch": [0] * 5, "zoom": 1}))
    (tmp_path / "notvideo.mp4").write_text("not a video")
    extra = [str(tmp_path / e) if e.endswith((".json", ".mp4")) else e for e in extra]
    out = tmp_path / "out.mp4"
    args = ["panorama", "--input", str(inputs["video"]), "--ckpt", str(tiny_ckpt), "-o", str(out), *extra]
    assert main(args) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("genmotion: error:")
    assert not out.exists() and not (tmp_path / "out.partial.mp4").exists()


def test_interrupt_leaves_a_tagged_partial(
    tmp_path: Path, tiny_ckpt: Path, inputs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from genmotion.panorama.pipeline import CubeComposerPipeline

    real = CubeComposerPipeline._stream

    def interrupted(self, *a, **k):  # type: ignore[no-untyped-def]
        for i, chunk in enumerate(real(self, *a, **k)):
            if i == 1:
                raise KeyboardInterrupt
            yield chunk

    monkeypatch.setattr(CubeComposerPipeline, "_stream", interrupted)
    out = tmp_path / "pano.mp4"
    code = main(["panorama", "--input", str(inputs["video"]), "--ckpt", str(tiny_ckpt), "-o", str(out), "--steps", "1"])
    assert code == 130
    partial = tmp_path / "pano.partial.mp4"
    assert not out.exists() and partial.exists()
    assert probe(partial).num_frames == 2  # the first window
    assert ffprobe_projection(partial) == "equirectangular"
