"""The quality yardstick: object statistics on hand-made frames, the Fréchet distance, the shipped feature net
(golden slice; ground truth far below shuffled frames), teacher forcing, and the bench's quality section."""

import json

import numpy as np
import pytest
import torch
from video_tiny import tiny_model

from genmotion.cli.app import main
from genmotion.data.toyworld import PALETTE, render_clips, spec_from_prompt
from genmotion.data.toyworld.feature_net import FEATURE_DIM, ClipFeatureNet, clip_features, load_feature_net
from genmotion.video.fvd import Yardstick, frozen, shuffled
from genmotion.video.quality import clip_statistics, frechet_distance, pieces, sharpness
from genmotion.video.videoar.pipeline import VideoARPipeline

DARK, LIGHT = (24, 26, 36), (176, 174, 166)


def _disc_clip(frames=12, size=32, radius=5.0, step=1.0, backgrounds=(DARK,), centres=None):
    """A red disc moving right `step` px per frame over a background that cycles through `backgrounds`."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    clip = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        clip[t] = backgrounds[t % len(backgrounds)]
        for cx, cy in centres or [(8.0 + step * t, 16.0)]:
            clip[t][np.hypot(xx - cx, yy - cy) <= radius] = PALETTE["red"]
    return clip


def test_one_moving_disc_is_one_steady_piece_over_a_still_background():
    s = clip_statistics(_disc_clip(), "red")
    assert s.pieces == 1.0 and s.area_variation < 0.05
    assert s.background_change == 0.0 and s.frame_change > 0


def test_a_flickering_background_is_a_large_change():
    s = clip_statistics(_disc_clip(backgrounds=(DARK, LIGHT)), "red")
    assert s.background_change > 100 and s.pieces == 1.0


def test_pieces_counts_a_split_object_and_joins_one_that_wraps_round():
    two = _disc_clip(frames=1, centres=[(8.0, 8.0), (24.0, 24.0)])
    assert clip_statistics(two, "red").pieces == 2.0
    wrapping = _disc_clip(frames=1, centres=[(0.0, 16.0), (32.0, 16.0)])  # one disc drawn across the edge
    assert clip_statistics(wrapping, "red").pieces == 1.0
    speckle = np.zeros((32, 32), bool)
    speckle[5, 5] = True  # a lone pixel is not a piece
    assert pieces(speckle) == 0
    assert clip_statistics(_disc_clip(frames=3), "blue").area_variation == 1.0  # never drawn


def test_sharpness_drops_with_blur():
    clip = _disc_clip(frames=2)
    blurred = ((clip.astype(np.float32) + np.roll(clip, 1, 1) + np.roll(clip, 1, 2)) / 3).astype(np.uint8)
    assert sharpness(blurred) < 0.8 * sharpness(clip)


def test_frechet_distance_of_gaussians():
    g = np.random.default_rng(0)
    a, b = g.normal(size=(4000, 3)), g.normal(size=(4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, b + 2.0) == pytest.approx(12.0, rel=0.05)  # |mu|^2 = 3 * 2^2
    assert frechet_distance(a, 2.0 * b) == pytest.approx(3.0, rel=0.1)  # tr(S_a + S_b - 2 sqrt) = 3 (1 + 4 - 4)


@pytest.fixture(scope="module")
def net():
    return load_feature_net()


def test_feature_net_golden_slice(net):
    spec = spec_from_prompt("a red ball moving left", torch.Generator().manual_seed(0))
    clip = render_clips([spec], 16, 32, 32).frames
    features = clip_features(net, clip)
    assert features.shape == (1, FEATURE_DIM)
    expected = np.array(GOLDEN)
    np.testing.assert_allclose(features[0, : len(expected)], expected, rtol=1e-4, atol=1e-3)
    logits = net.logits(torch.as_tensor(features, dtype=torch.float32))
    assert {k: int(v.argmax()) for k, v in logits.items()} == {
        "colour": 0,
        "shape": 0,
        "motion": 0,
        "size": 0,
        "background": 0,
    }


GOLDEN = [
    -0.0009,
    -0.0419,
    0.0,
    0.0,
    0.0,
    0.0,
    30.4672,
    0.0,
    6.7211,
    1.1394,
    8.7184,
    11.0423,
    23.0664,
    1.4047,
    16.2929,
    41.789,
]


def test_feature_net_reads_any_size_and_length():
    clips = np.zeros((2, 5, 16, 16, 3), np.uint8)
    assert clip_features(ClipFeatureNet().eval(), clips).shape == (2, FEATURE_DIM)


def test_ground_truth_scores_far_below_shuffled_and_frozen_frames(net):
    prompts = [f"a {c} {s} moving {m}" for c in ("red", "blue", "green", "white") for s in ("ball", "box", "triangle")
               for m in ("left", "up", "down", "right")]  # fmt: skip
    stick = Yardstick(prompts, num_frames=16, size=32, net=net)
    anchors = stick.anchors()
    floor = anchors["ground_truth"]["fvd"]
    assert anchors["shuffled_frames"]["fvd"] > 3 * floor and anchors["frozen_first_frame"]["fvd"] > 3 * floor
    assert stick.fvd(frozen(stick.floor_clips)) > stick.fvd(shuffled(stick.floor_clips, seed=1)) > floor
    assert anchors["ground_truth"]["pieces"] == pytest.approx(1.0, abs=0.05)


def test_teacher_forced_codes_reproduce_a_greedy_free_run():
    """Fed the codes a greedy run drew, teacher forcing draws the same codes again: the context is the run's."""
    from genmotion.video.diagnose import teacher_forced_codes
    from genmotion.video.videoar.config import SamplingConfig
    from genmotion.video.videoar.sampler import stream_latents

    pipe = VideoARPipeline(tiny_model(), encoder=object())
    text = torch.randn(1, pipe.model.transformer.config.text_dim)
    pipe.text_embedding = lambda prompt: text  # no text encoder in a unit test
    settings = SamplingConfig(guidance_scale=3.0, temperature=0.0)
    run = list(stream_latents(pipe.model, lambda f: text, 5, settings, generator=torch.Generator()))
    indices = [torch.stack([f.tokens[s] for f in run], dim=1) for s in range(len(run[0].tokens))]
    frames, codes = teacher_forced_codes(pipe, "x", indices, 0, temperature=0.0)
    assert frames.shape == (5, 3, 16, 16)
    assert all(torch.equal(codes[t][s], run[t].tokens[s]) for t in range(5) for s in range(len(indices)))


def test_bench_video_quick_has_the_quality_section_and_strip(tmp_path):
    directory = tmp_path / "tiny"
    VideoARPipeline(tiny_model(), encoder=object()).save_pretrained(directory, card="# tiny\n")
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    assert main(["bench", "video", "--ckpt", str(directory), "--quick", "--json", str(out), "--plot", str(png)]) == 0
    q = json.loads(out.read_text())["quality"]
    assert q["generated"]["fvd"] > q["ground_truth"]["fvd"] > 0
    assert set(q["diagnosis"]) >= {"tokenizer_reconstruction", "teacher_forced", "free_running", "frames"}
    assert q["long_clips"]["frames"] == 32 and q["long_clips"]["generated"]["last"]["fvd"] > 0
    strip = tmp_path / "bench_strip.png"
    assert png.is_file() and strip.is_file()


def test_quality_section_on_a_tiny_causal_flow_model(tmp_path):
    """The Ca2-VDM paths: autoencoder reconstruction, teacher-forced chunks after a clean prefix, the strip."""
    from genmotion.video.bench import BenchSettings
    from genmotion.video.ca2vdm.pipeline import Ca2VDMPipeline
    from genmotion.video.quality_bench import plot_strip, run_quality
    from tests.video.video_tiny import tiny_ca2vdm

    pipe = Ca2VDMPipeline(tiny_ca2vdm())
    q = run_quality(pipe, BenchSettings.quick())
    d = q["diagnosis"]
    assert d["clips"] == 4 and d["teacher_forced"]["clips"] == 4.0 and d["tokenizer_reconstruction"]["fvd"] > 0
    assert q["ground_truth"]["pieces"] == pytest.approx(1.0, abs=0.1)
    assert plot_strip(q, tmp_path / "strip.png").stat().st_size > 0


class _ToyWorldPipe:
    """Plays a generator that draws the toy world's own renders (seed 3), its later frames held still from
    `freeze_from` on: the long-clip rows must read the first as steady and the second as breaking down."""

    height = 32

    def __init__(self, freeze_from: int | None = None) -> None:
        self.freeze_from = freeze_from

    def generate(self, prompt, *, num_frames, seed, **sampling):
        from types import SimpleNamespace

        from genmotion.video.fvd import ground_truth

        clip = ground_truth([prompt], num_frames=num_frames, size=32, seed=3)[0][0]
        if self.freeze_from is not None:
            clip[self.freeze_from :] = clip[self.freeze_from]
        return SimpleNamespace(frames=clip)


def test_long_clip_rows_see_a_clip_that_stops_moving(net):
    from genmotion.video.long_quality import long_clip_quality

    prompts = [
        f"a {c} {s} moving {m}" for c in ("red", "blue", "green") for s in ("ball", "box") for m in ("left", "up")
    ]
    steady = long_clip_quality(_ToyWorldPipe(), prompts, num_frames=48, net=net)
    stuck = long_clip_quality(_ToyWorldPipe(freeze_from=24), prompts, num_frames=48, net=net)
    assert steady["clips"] == 12 and steady["window"] == 16
    assert 0.5 < steady["last_over_first"]["fvd"] < 2.0
    assert stuck["generated"]["first"]["fvd"] == pytest.approx(steady["generated"]["first"]["fvd"])
    assert stuck["last_over_first"]["fvd"] > 1.8 * steady["last_over_first"]["fvd"]
    assert stuck["generated"]["last"]["frame_change"] == 0.0
    with pytest.raises(ValueError, match="2 \\* window"):
        long_clip_quality(_ToyWorldPipe(), prompts, num_frames=20, net=net)
