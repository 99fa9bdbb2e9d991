"""Datasets, shards and the `genmotion toyworld` command."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from genmotion.cli.app import main
from genmotion.data.toyworld import (
    EVAL_TEMPLATES,
    ClipSpec,
    ToyClipDataset,
    ToyClipStream,
    collate_clips,
    parse_prompt,
    read_shard_index,
    render_clips,
    score_adherence,
    write_shard,
)
from genmotion.errors import InputError, UsageError


def test_dataset_items_are_fixed_by_seed_split_and_index():
    data = ToyClipDataset(6, num_frames=3, height=16, width=16, seed=7)
    again = ToyClipDataset(6, num_frames=3, height=16, width=16, seed=7)
    item = data[4]
    assert item.frames.shape == (3, 16, 16, 3) and item.masks.shape == (3, 16, 16)
    assert torch.equal(item.frames, again[4].frames) and item.caption == again[4].caption
    assert data[3].spec != item.spec
    eval_item = ToyClipDataset(6, num_frames=3, height=16, width=16, seed=7, split="eval")[4]
    assert eval_item.spec != item.spec
    assert eval_item.caption.lower().startswith(tuple(t.prefix for t in EVAL_TEMPLATES))
    with pytest.raises(IndexError):
        data[6]
    with pytest.raises(UsageError):
        ToyClipDataset(2, split="test")  # type: ignore[arg-type]


def test_dataloader_collates_items():
    loader = DataLoader(ToyClipDataset(5, num_frames=2, height=16, width=16), batch_size=2, collate_fn=collate_clips)
    batch = next(iter(loader))
    assert batch.frames.shape == (2, 2, 16, 16, 3) and len(batch.captions) == len(batch.specs) == 2
    assert all(isinstance(spec, ClipSpec) for spec in batch.specs)


def test_stream_renders_fixed_batches():
    stream = ToyClipStream(4, num_frames=2, height=16, width=16, seed=1, num_batches=3)
    batches = list(stream)
    assert len(batches) == 3 and batches[0].frames.shape == (4, 2, 16, 16, 3)
    assert torch.equal(batches[2].frames, stream.batch(2).frames) and batches[1].specs != batches[2].specs
    assert torch.equal(batches[0].frames, render_clips(batches[0].specs, 2, 16, 16).frames)


def _decode(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_write_shard_mp4_and_npz(tmp_path):
    index = write_shard(3, tmp_path / "mp4", num_frames=6, height=32, width=32, seed=2)
    records = read_shard_index(index)
    assert [r["path"] for r in records] == [f"clips/{i:06d}.mp4" for i in range(3)]
    data = ToyClipDataset(3, num_frames=6, height=32, width=32, seed=2)
    for i, record in enumerate(records):
        assert record["caption"] == data[i].caption and ClipSpec.from_dict(record["spec"]) == data[i].spec
        frames = _decode(tmp_path / "mp4" / record["path"])
        assert frames.shape == (6, 32, 32, 3)
        assert np.abs(frames.astype(int) - data[i].frames.numpy().astype(int)).mean() < 8  # H.264, 4:2:0 chroma
    assert not list((tmp_path / "mp4").rglob("*.tmp*")) and not list((tmp_path / "mp4").rglob(".*"))

    write_shard(2, tmp_path / "npz", num_frames=4, height=16, width=16, fmt="npz", split="eval")
    record = read_shard_index(tmp_path / "npz")[1]
    stored = np.load(tmp_path / "npz" / record["path"])
    clip = ToyClipDataset(2, num_frames=4, height=16, width=16, split="eval")[1]
    assert np.array_equal(stored["frames"], clip.frames.numpy()) and np.array_equal(stored["masks"], clip.masks.numpy())
    with pytest.raises(UsageError):
        write_shard(1, tmp_path / "odd", height=15, width=16)
    with pytest.raises(InputError):
        read_shard_index(tmp_path / "missing")


def test_cli_renders_a_prompt(tmp_path, capsys):
    out = tmp_path / "ball.mp4"
    assert (
        main(
            [
                "toyworld",
                "--prompt",
                "a red ball bouncing to the left",
                "--frames",
                "24",
                "--size",
                "48",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    frames = _decode(out)
    assert frames.shape == (24, 48, 48, 3)
    assert score_adherence(frames, "a red ball bouncing to the left")["all"]
    assert "red circle" in capsys.readouterr().out


def test_cli_writes_a_dataset(tmp_path):
    assert main(["toyworld", "--dataset", "2", "--frames", "4", "--size", "16", "-o", str(tmp_path / "d")]) == 0
    records = [json.loads(line) for line in (tmp_path / "d" / "captions.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(not parse_prompt(r["caption"]).is_empty for r in records)


@pytest.mark.parametrize(
    "args",
    [
        ["toyworld", "--prompt", "hello world"],
        ["toyworld"],
        ["toyworld", "--prompt", "a red ball", "--dataset", "3"],
        ["toyworld", "--prompt", "a red ball", "--size", "33"],
    ],
)
def test_cli_usage_errors_exit_2(tmp_path, capsys, args):
    assert main([*args, "-o", str(tmp_path / "x.mp4")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("genmotion: error:") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.mp4").exists()


def test_bench_quick_writes_json_and_plot(tmp_path):
    json_path, png = tmp_path / "b.json", tmp_path / "b.png"
    assert main(["bench", "toyworld", "--quick", "--threads", "1", "--json", str(json_path), "--plot", str(png)]) == 0
    results = json.loads(json_path.read_text())
    assert results["speed_ms"] and results["accuracy"]["clean_32px"]["colour"] >= 0.9
    assert png.stat().st_size > 0
