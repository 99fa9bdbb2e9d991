"""Ca2-VDM causal flow video: training forward == cached inference, policies vs exact, pipeline, CLI."""

import numpy as np
import pytest
import torch
from test_video_pipeline import _FakeEncoder
from video_tiny import tiny_ca2vdm

from genmotion.cache import profile_heads, save_head_profile
from genmotion.cache.policies import RollingWindow, SharedClean
from genmotion.cli.app import main
from genmotion.engine.flow import FlowLoopConfig, flow_generate
from genmotion.errors import UsageError
from genmotion.io import probe
from genmotion.metrics import psnr
from genmotion.pipeline import to_uint8
from genmotion.sampling.flow import CLEAN_TIME
from genmotion.video.ca2vdm.pipeline import Ca2VDMPipeline
from genmotion.video.ca2vdm.sampler import GuidedFlow
from genmotion.video.ca2vdm.train import training_mask

POLICIES = ["recompute", "shared", "rolling", "flowcache", "flowcache-kv", "forcing-kv", "flowcache+forcing-kv"]


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    pipe = Ca2VDMPipeline(tiny_ca2vdm(), encoder=_FakeEncoder())
    path = tmp_path_factory.mktemp("heads") / "heads.json"
    profile = profile_heads(pipe.flow_model, pipe.frame_layout, generator=torch.Generator().manual_seed(0))
    pipe.head_profile = save_head_profile(profile, path)
    return pipe


@pytest.mark.parametrize(
    ("sink", "policy"), [(0, lambda: SharedClean(context_frames=2)), (1, lambda: RollingWindow(sink=1, window=2))]
)
def test_training_forward_equals_cached_inference(sink, policy):
    """One training forward over [clean, noisy] computes exactly what chunk-by-chunk cached inference does."""
    model = tiny_ca2vdm()
    cfg, T, F = model.config, 6, 2
    N, D = cfg.tokens_per_frame, cfg.token_channels
    g = torch.Generator().manual_seed(0)
    clean, noisy = torch.randn(1, T * N, D, generator=g), torch.randn(1, T * N, D, generator=g)
    cond = model.text_condition(torch.randn(1, 384, generator=g))
    t_BL = torch.cat([torch.full((1, T * N), CLEAN_TIME), torch.full((1, T * N), 0.37)], dim=1)
    positions = (torch.arange(T * N) // N).repeat(2)
    with torch.no_grad():
        mask = training_mask(T, N, F, sink=sink, window=2)
        trained = model(torch.cat([clean, noisy], 1), t_BL, positions, cond, mask=mask)[:, T * N :]
        flow, pol, outs = GuidedFlow(model, cond), policy(), []
        pol.start(flow, cfg.layout, batch=1, max_frames=T, like=torch.empty(0))
        for c in range(T // F):
            chunk = slice(c * F * N, (c + 1) * F * N)
            outs.append(pol.velocity(flow, noisy[:, chunk], 0.37, start_frame=c * F))
            pol.commit(flow, clean[:, chunk], start_frame=c * F)
    assert torch.allclose(trained, torch.cat(outs, 1), atol=1e-5)


def test_training_mask_rules():
    m = training_mask(4, 1, 2, sink=0, window=1)  # frames 0..3, chunks {0, 1}, {2, 3}; clean rows then noisy
    clean, noisy = m[:4], m[4:]
    assert clean[:, 4:].sum() == 0  # clean tokens never see noisy ones
    assert noisy[2, :4].tolist() == [False, True, False, False]  # chunk 2-3 reads frame 1 only (window 1)
    assert noisy[3, 4:].tolist() == [False, False, True, True]  # and itself frame-causally
    assert noisy[0, :4].sum() == 0 and noisy[1, 4:].tolist() == [True, True, False, False]


def test_guidance_combines_conditional_and_null_rows():
    model = tiny_ca2vdm()
    cond = model.text_condition(torch.randn(1, 384))
    x, t, pos = torch.randn(1, 8, model.config.token_channels), torch.full((1, 8), 0.5), torch.arange(8) // 4
    with torch.no_grad():
        guided = GuidedFlow(model, cond, guidance=2.5)(x, t, pos)
        c, n = model(x, t, pos, cond), model(x, t, pos, model.null_condition(1))
    assert torch.allclose(guided, n + 2.5 * (c - n), atol=1e-5)


def test_a_binding_carries_no_state_between_calls():
    """Each prompt is bound once (its own AdaLN memo); a binding's output never depends on what it ran before."""
    model = tiny_ca2vdm()
    a, b = model.text_condition(torch.randn(1, 384)), model.text_condition(torch.randn(1, 384))
    x, t, pos = torch.randn(1, 8, model.config.token_channels), torch.full((1, 8), 0.5), torch.arange(8) // 4
    with torch.no_grad():
        flow_a, flow_b = GuidedFlow(model, a, guidance=2.5), GuidedFlow(model, b, guidance=2.5)
        first = flow_a(x, t, pos)
        flow_b(x, t, pos)
        assert flow_a.memo is not flow_b.memo and len(flow_a.memo) > 0
        assert torch.equal(flow_a(x, t, pos), first)
        assert torch.equal(first, GuidedFlow(model, a, guidance=2.5)(x, t, pos))
        assert not torch.equal(first, flow_b(x, t, pos))


def test_a_stream_makes_each_flow_time_condition_once(pipe):
    """The stream asks for its prompt's binding at every chunk; the memo must survive that, so the time MLP
    runs once per distinct flow time (3 Euler times + the clean time), not once per forward (3 chunks x 4)."""
    calls = []
    hook = pipe.model.time_mlp.register_forward_hook(lambda *_: calls.append(1))
    try:
        frames = pipe.generate("a red ball moving left", num_frames=6, num_steps=3, cache="shared").frames
    finally:
        hook.remove()
    assert frames.shape[0] == 6 and len(calls) == 4


def test_shared_clean_equals_recompute(pipe):
    exact = pipe.latents("a red ball moving left", num_frames=10, cache="recompute", num_steps=3)
    shared = pipe.latents("a red ball moving left", num_frames=10, cache="shared", num_steps=3)
    assert exact.shape == (1, 10, 4, 4)
    assert float((exact - shared).abs().max()) <= 1e-5


def test_bf16_pipeline_runs_and_tracks_fp32():
    """A bf16 model (the CUDA default) samples: the float32 time embedding is cast to the model's dtype."""
    fp32 = Ca2VDMPipeline(tiny_ca2vdm(), encoder=_FakeEncoder())
    bf16 = Ca2VDMPipeline(tiny_ca2vdm().to(torch.bfloat16), encoder=_FakeEncoder())
    a = fp32.latents("a red ball moving left", num_frames=4, num_steps=3)
    b = bf16.latents("a red ball moving left", num_frames=4, num_steps=3)
    assert b.dtype == torch.bfloat16 and b.shape == a.shape
    assert float((a - b.float()).abs().mean()) < 0.05 * float(a.abs().mean())


@pytest.mark.parametrize("name", POLICIES)
def test_every_cache_policy_streams_the_video_recompute_makes(pipe, name):
    """Exact policies give recompute's frames bit for bit (FlowCache skips nothing in 2 steps: the first and
    last are always computed); approximate ones stay close to them, far closer than another seed's video."""
    chunks = list(pipe.stream("a blue box moving up", num_frames=7, cache=name, num_steps=2))
    assert [c.index for c in chunks] == [0, 2, 4, 6]
    frames = np.concatenate([c.frames for c in chunks])
    assert frames.shape == (7, 16, 16, 3) and frames.dtype == np.uint8
    exact = pipe.generate("a blue box moving up", num_frames=7, cache="recompute", num_steps=2).frames
    if name in ("recompute", "shared", "flowcache"):
        np.testing.assert_array_equal(frames, exact)
    else:
        other = pipe.generate("a blue box moving up", num_frames=7, cache="recompute", num_steps=2, seed=5).frames
        assert psnr(frames, exact, 255.0) >= 30.0 > psnr(other, exact, 255.0) + 5.0


def test_stream_equals_generate_and_cache_stays_flat(pipe):
    chunks = list(pipe.stream("a red ball moving left", num_frames=12, seed=3, num_steps=2))
    video = pipe.generate("a red ball moving left", num_frames=12, seed=3, num_steps=2)
    np.testing.assert_array_equal(np.concatenate([c.frames for c in chunks]), video.frames)
    held = [c.cache_valid_bytes for c in chunks]  # window of 2 frames = 1 chunk: full after the first commit
    assert held[0] == 0 < held[1] == held[-1] and len({c.cache_bytes for c in chunks}) == 1


def test_prompt_schedule_and_errors(pipe):
    a = pipe.generate("a red ball", num_frames=6, seed=0, num_steps=2)
    b = pipe.generate("a red ball", num_frames=6, seed=0, num_steps=2, prompt_schedule=[(3, "a green box")])
    np.testing.assert_array_equal(a.frames[:4], b.frames[:4])  # the change starts at the chunk at frame 4
    assert not np.array_equal(a.frames[4:], b.frames[4:])
    with pytest.raises(UsageError, match="cannot stream forever"):
        pipe.stream("x", num_frames=None, cache="recompute")
    with pytest.raises(UsageError, match="unknown cache policy"):
        pipe.stream("x", cache="lru")


def test_save_load_round_trip_and_golden_slice(pipe, tmp_path):
    model = tiny_ca2vdm()
    for p in model.parameters():  # checkpoints are bf16: compare against the rounded model
        p.data = p.data.to(torch.bfloat16).float()
    ref = Ca2VDMPipeline(model, encoder=_FakeEncoder())
    ref.save_pretrained(tmp_path / "ckpt", card="# tiny\n")
    loaded = Ca2VDMPipeline.from_pretrained(tmp_path / "ckpt")
    loaded.encoder = ref.encoder
    assert loaded.config == ref.config
    a = ref.generate("a green wedge rising", num_frames=4, seed=0, num_steps=2).frames
    np.testing.assert_array_equal(a, loaded.generate("a green wedge rising", num_frames=4, seed=0, num_steps=2).frames)
    fresh = Ca2VDMPipeline(tiny_ca2vdm(), encoder=_FakeEncoder())
    got = fresh.latents("golden", num_frames=4, seed=0, num_steps=2, reencode_context=False)[0, 3, 1]  # frame 3
    assert torch.allclose(got, torch.tensor(GOLDEN), atol=2e-3), got.tolist()  # committed as sampled: as before
    got = fresh.latents("golden", num_frames=4, seed=0, num_steps=2)[0, 3, 1]  # chunks committed re-encoded
    assert torch.allclose(got, torch.tensor(GOLDEN_REENCODED), atol=2e-3), got.tolist()


GOLDEN = [0.6591, -0.9594, -0.2104, 0.1284]
GOLDEN_REENCODED = [1.0517, -1.3608, -0.4546, 0.6992]


def test_reencoded_context_commits_the_decoded_chunk_encoded_again(pipe):
    prompt = "a red ball"
    latents = pipe.latents(prompt, num_frames=6, seed=0, num_steps=2)  # (1, 6, N, D)
    # the stream's frames are the decoding of these very tokens, one clip (stream == latents)
    frames = np.concatenate([c.frames for c in pipe.stream(prompt, num_frames=6, seed=0, num_steps=2)])
    with torch.no_grad():
        np.testing.assert_array_equal(frames, to_uint8(pipe.model.decode_tokens(latents)[0]))
    # what chunk 1 reads is chunk 0 decoded and encoded again: draw chunk 1 by hand from that context
    F, N, D = pipe.config.flow.frames_per_chunk, pipe.config.tokens_per_frame, latents.shape[-1]
    with torch.no_grad():
        context = pipe.model.encode_tokens(pipe.model.decode_tokens(latents[:, :F]).clamp(-1, 1))
        generator = pipe.make_generator(0)
        torch.randn(1, F * N, D, generator=generator)  # chunk 0's noise
        config = FlowLoopConfig(num_frames=F, num_steps=2)
        chunk1 = flow_generate(pipe.conditioned_flow(prompt, 3.0), pipe.policy("shared"), pipe.frame_layout,
                               config, generator=generator, prefix_BFNC=context)  # fmt: skip
    torch.testing.assert_close(chunk1, latents[:, F : 2 * F])
    plain = pipe.latents(prompt, num_frames=6, seed=0, num_steps=2, reencode_context=False)
    torch.testing.assert_close(plain[:, :F], latents[:, :F])  # the first chunk is not touched
    assert not torch.allclose(plain[:, F:], latents[:, F:])  # the later ones read another context


@pytest.fixture(scope="module")
def ckpt(pipe, tmp_path_factory):
    directory = tmp_path_factory.mktemp("ca2vdm") / "tiny"
    pipe.save_pretrained(directory, card="# tiny test model\n")
    (directory / "head_profile.json").write_bytes(pipe.head_profile.read_bytes())
    return directory


@pytest.mark.parametrize("cache", ["shared", "flowcache+forcing-kv"])
def test_cli_ca2vdm_writes_exact_frame_count(ckpt, tmp_path, cache):
    out = tmp_path / "clip.mp4"
    args = ["video", "--model", "ca2vdm", "-p", "a red ball", "-n", "5", "--ckpt", str(ckpt), "--cache", cache]
    assert main([*args, "--steps", "2", "-o", str(out)]) == 0
    assert probe(out).num_frames == 5


def test_cli_reencode_context_switch(ckpt, tmp_path, capsys):
    from PIL import Image

    clips = {}
    for flag in ("--reencode-context", "--no-reencode-context"):
        out = tmp_path / flag.strip("-")
        args = ["video", "--model", "ca2vdm", "-p", "a red ball", "-n", "6", "--ckpt", str(ckpt), "--steps", "2"]
        assert main([*args, flag, "-o", f"{out}/"]) == 0
        clips[flag] = np.stack([np.asarray(Image.open(f)) for f in sorted(out.glob("*.png"))])
    on, off = clips["--reencode-context"], clips["--no-reencode-context"]
    F = 2  # the tiny model's chunk
    np.testing.assert_array_equal(on[:F], off[:F])  # the first chunk is drawn before any commit
    assert not np.array_equal(on[F:], off[F:])
    assert main(["video", "-p", "a red ball", "-n", "2", "--no-reencode-context", "-o", f"{tmp_path}/v.mp4"]) == 2
    assert "reencode-context" in capsys.readouterr().err


def test_cli_cache_params_reach_the_policy(ckpt, tmp_path, monkeypatch):
    built = []
    original = Ca2VDMPipeline.policy

    def spy(self, name="shared", **params):
        policy = original(self, name, **params)
        built.append(policy)
        return policy

    monkeypatch.setattr(Ca2VDMPipeline, "policy", spy)
    out = tmp_path / "clip.mp4"
    args = ["video", "--model", "ca2vdm", "-p", "a red ball", "-n", "5", "--ckpt", str(ckpt), "--steps", "4"]
    params = [
        "--cache",
        "flowcache",
        "--cache-param",
        "thresh=1e9",
        "--cache-param",
        "order=1",
        "--cache-param",
        "warmup=1",
        "--cache-param",
        "rule=input",  # the default error rule needs 3 computed velocities: none of 4 steps could skip
    ]
    assert main([*args, *params, "-o", str(out)]) == 0
    assert probe(out).num_frames == 5
    policy = built[-1]
    assert (policy.thresh, policy.order, policy.warmup, policy.rule) == (1e9, 1, 1, "input")
    assert policy.forwards_skipped > 0
    kv = ["--cache", "flowcache-kv", "--cache-param", "queries=denoising", "--cache-param", "budget=16"]
    assert main([*args, *kv, "-o", str(out)]) == 0
    assert probe(out).num_frames == 5 and built[-1].queries == "denoising"


@pytest.mark.parametrize("param", ["thresh", "thresh=", "budget=4", "=1"])
def test_cli_bad_cache_param_is_a_usage_error(tmp_path, capsys, param):
    args = ["video", "--model", "ca2vdm", "-p", "a ball", "--cache", "flowcache", "--cache-param", param]
    assert main([*args, "--ckpt", str(tmp_path / "none")]) == 2
    assert "cache" in capsys.readouterr().err


def test_cli_unknown_cache_lists_valid_ones(ckpt, tmp_path, capsys):
    out = str(tmp_path / "x.mp4")
    code = main(["video", "--model", "ca2vdm", "-p", "a ball", "--cache", "lru", "--ckpt", str(ckpt), "-o", out])
    assert code == 2
    err = capsys.readouterr().err
    assert "lru" in err and "flowcache-kv" in err and "forcing-kv" in err


def test_profile_heads_command_on_a_ca2vdm_checkpoint(ckpt, tmp_path):
    out = tmp_path / "heads.json"
    assert main(["profile-heads", "--model", str(ckpt), "-o", str(out), "--chunks", "5", "--steps", "1"]) == 0
    from genmotion.cache import load_head_profile

    profile = load_head_profile(out)
    assert (profile.num_layers, profile.num_heads) == (2, 2)


def test_bench_video_quick_on_a_ca2vdm_checkpoint(ckpt, tmp_path):
    import json

    out = tmp_path / "bench.json"
    assert (
        main(["bench", "video", "--ckpt", str(ckpt), "--quick", "--json", str(out), "--plot", str(tmp_path / "b.png")])
        == 0
    )
    r = json.loads(out.read_text())
    assert r["setup"]["model"] == "Ca2VDMPipeline" and r["cache"]["flat_after_window"]
    assert 0 < r["speed"]["cli_cold_start_to_first_frame_s"] <= r["speed"]["cli_total_s"]
    assert r["speed"]["transformer_gflop_per_frame"] > 0 and (tmp_path / "b.png").stat().st_size > 0


def test_fine_tuning_can_resize_the_context_window(pipe, tmp_path):
    """`model.context_frames` with `init_from` trains the same weights at another window (positions are relative)."""
    from genmotion.video.ca2vdm.train import Ca2VDMModelConfig, Ca2VDMTask

    pipe.save_pretrained(tmp_path / "ck")
    model = Ca2VDMTask().build_model(Ca2VDMModelConfig(init_from=str(tmp_path / "ck"), context_frames=5))
    assert model.config.flow.context_frames == 5 and pipe.model.config.flow.context_frames == 2
    for a, b in zip(model.state_dict().values(), pipe.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a.float(), b.float().bfloat16().float())  # saved as bf16
    with pytest.raises(ValueError, match="init_from"):
        Ca2VDMModelConfig(tokenizer_checkpoint="x", context_frames=5)


def test_cli_flowcache_default_skips_with_the_chord_correction(ckpt, tmp_path, monkeypatch):
    """`--cache flowcache` at the CLI's default steps: the shipped default (error rule, reuse, corrected) skips
    and writes every frame; `--cache-param correct=false` turns the correction off."""
    built = []
    original = Ca2VDMPipeline.policy

    def spy(self, name="shared", **params):
        built.append(original(self, name, **params))
        return built[-1]

    monkeypatch.setattr(Ca2VDMPipeline, "policy", spy)
    out = tmp_path / "clip.mp4"
    args = ["video", "--model", "ca2vdm", "-p", "a red ball", "-n", "6", "--ckpt", str(ckpt), "--cache", "flowcache"]
    assert main([*args, "--cache-param", "thresh=1e9", "-o", str(out)]) == 0
    assert probe(out).num_frames == 6
    policy = built[-1]
    assert (policy.rule, policy.order, policy.warmup, policy.correct) == ("error", 0, 2, True)
    assert policy.forwards_skipped > 0 and [len(t) for t in policy.trace] == [10] * 3
    assert main([*args, "--cache-param", "correct=false", "-o", str(out), "--force"]) == 0
    assert built[-1].correct is False and built[-1].thresh == 0.15


def test_cli_flag_cache_param_must_be_on_or_off(ckpt, tmp_path, capsys):
    args = ["video", "--model", "ca2vdm", "-p", "a ball", "--cache", "flowcache", "--cache-param", "correct=maybe"]
    assert main([*args, "--ckpt", str(ckpt), "-o", str(tmp_path / "x.mp4")]) == 2
    assert "on or off" in capsys.readouterr().err


def test_self_context_draws_every_chunk_as_cached_inference_does_from_the_clean_frames_before_it():
    """`own_chunks` (one parallel pass per Euler step) equals chunk-by-chunk cached inference that denoises each
    chunk from the same noise under the same guidance, then commits the clean chunk, as the training mask says."""
    from genmotion.video.ca2vdm.train import Ca2VDMModelConfig, own_chunks

    model = tiny_ca2vdm()
    cfg, T, F, steps, scale = model.config, 6, 2, 3, 2.0
    N, D = cfg.tokens_per_frame, cfg.token_channels
    g = torch.Generator().manual_seed(1)
    x1, text = torch.randn(1, T, N, D, generator=g), torch.randn(1, 384, generator=g)
    settings = Ca2VDMModelConfig(
        init_from="x", self_context_rate=1.0, self_context_steps=steps, self_context_guidance=scale,
        self_context_reencode=False,
    )  # fmt: skip
    mask = training_mask(T, N, F, sink=0, window=2)
    positions = (torch.arange(T * N) // N).repeat(2)
    drawn = own_chunks(model, x1, text, mask, positions, settings, torch.Generator().manual_seed(7))
    noise = torch.randn(1, T * N, D, generator=torch.Generator().manual_seed(7))
    flow, pol, outs = GuidedFlow(model, model.text_condition(text), scale), SharedClean(context_frames=2), []
    times = [0.0, 1 / 3, 2 / 3, 1.0]
    with torch.no_grad():
        pol.start(flow, cfg.layout, batch=1, max_frames=T, like=torch.empty(0))
        for c in range(T // F):
            chunk = slice(c * F * N, (c + 1) * F * N)
            x = noise[:, chunk]
            for t, t_next in zip(times[:-1], times[1:], strict=True):
                x = x + (t_next - t) * pol.velocity(flow, x, t, start_frame=c * F)
            outs.append(x)
            pol.commit(flow, x1.reshape(1, T * N, D)[:, chunk], start_frame=c * F)
    torch.testing.assert_close(drawn.reshape(1, T * N, D), torch.cat(outs, 1), atol=1e-5, rtol=1e-4)


def test_self_context_changes_the_loss_keeps_rate_zero_and_checks_its_settings():
    from genmotion.video.ca2vdm.train import Ca2VDMModelConfig, ca2vdm_loss

    model = tiny_ca2vdm().train()
    g = torch.Generator().manual_seed(2)
    video, text = torch.rand(2, 4, 3, 16, 16, generator=g) * 2 - 1, torch.randn(2, 384, generator=g)
    plain = Ca2VDMModelConfig(init_from="x")
    own = Ca2VDMModelConfig(init_from="x", self_context_rate=1.0, self_context_steps=2)
    a, _ = ca2vdm_loss(model, video, text, plain, torch.Generator().manual_seed(3))
    b, _ = ca2vdm_loss(model, video, text, own, torch.Generator().manual_seed(3))
    zero = Ca2VDMModelConfig(init_from="x", self_context_rate=0.0, self_context_steps=2)
    c, _ = ca2vdm_loss(model, video, text, zero, torch.Generator().manual_seed(3))
    assert torch.isfinite(b) and not torch.isclose(a, b) and torch.equal(a, c)
    b.backward()
    assert model.proj_in.weight.grad is not None
    with pytest.raises(ValueError, match="self_context_rate"):
        Ca2VDMModelConfig(init_from="x", self_context_rate=1.5)
