"""TTS-VAR (`genmotion.image_core.tts`): one candidate is plain sampling, re-indexed rows continue exactly as the
same rows computed from scratch, k-means keeps k distinct rows deterministically, resampling follows
exp(lambda * score), the schedule rule, and `genmotion image --tts` through the CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from image_core_tiny import PATCH_NUMS, TINY, seeded
from PIL import Image

import genmotion
from genmotion.cli.app import main
from genmotion.errors import UsageError
from genmotion.image_core.convert import save_image_model
from genmotion.image_core.model import VARImageModel
from genmotion.image_core.pipeline import VARPipeline
from genmotion.image_core.tts import (
    OFFICIAL_SCHEDULE,
    ScaleSearch,
    candidate_schedule,
    check_schedule,
    default_min_rows,
    kmeans_select,
    resample_rows,
    resample_weights,
    selection_plan,
    tts_generate,
)

NAMES = ("red circle", "red square", "blue circle", "blue square", "green circle")


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ckpt") / "tiny-var"
    save_image_model(seeded(VARImageModel, TINY), directory, class_names=NAMES)
    return directory


@pytest.fixture(scope="module")
def tiny_pipe(tiny_ckpt):
    return VARPipeline.from_pretrained(tiny_ckpt)


# ---- the schedule ---------------------------------------------------------------------------------
def test_the_schedule_rule_gives_the_official_one_for_13_scales_and_descends():
    assert candidate_schedule(8, 13) == OFFICIAL_SCHEDULE
    assert candidate_schedule(8, 6) == (8, 6, 4, 2, 1, 1)
    assert candidate_schedule(8, 6, default_min_rows(8)) == (8, 6, 4, 2, 2, 2)
    assert candidate_schedule(1, 6, default_min_rows(1)) == (1,) * 6
    assert candidate_schedule(2, 6, min_rows=3) == (2,) * 6  # never more rows than candidates
    for n in range(1, 20):
        for k in range(1, 15):
            rows = candidate_schedule(n, k, default_min_rows(n))
            assert rows[0] == n and rows[-1] >= 1 and all(b <= a for a, b in zip(rows, rows[1:], strict=False))
    assert selection_plan(OFFICIAL_SCHEDULE) == {1: "cluster", 4: "cluster", 5: "resample", 8: "resample"}
    assert selection_plan((8, 6, 4, 2, 1, 1)) == {0: "cluster", 1: "cluster", 2: "resample", 3: "resample"}
    assert selection_plan((1,) * 6) == {}


@pytest.mark.parametrize("schedule", [(4, 2), (4, 2, 2, 0), (2, 4, 1, 1), ()])
def test_a_schedule_that_does_not_fit_is_refused(schedule):
    with pytest.raises(UsageError, match="TTS schedule"):
        check_schedule(schedule, 4)
    with pytest.raises(UsageError):
        candidate_schedule(0, 4)


# ---- one candidate is plain sampling ------------------------------------------------------------------
@pytest.mark.parametrize("settings", [{}, {"guidance_scale": 1.0}, {"top_k": 4, "top_p": 0.9, "temperature": 0.7}])
def test_one_candidate_equals_plain_sampling_with_the_same_seed(tiny_pipe, settings):
    for seed in range(3):
        plain = tiny_pipe.generate("blue circle", seed=seed, **settings).images
        tts = tts_generate(tiny_pipe, "blue circle", candidates=1, seed=seed, **settings)
        assert tts.selections == () and tts.schedule == (1,) * len(PATCH_NUMS)
        assert np.array_equal(tts.images, plain) and np.array_equal(tts.image, plain[0])


def test_one_candidate_equals_plain_sampling_on_var_toy():
    pipe = genmotion.load("var-toy")
    for seed in (0, 7):
        plain = pipe.generate(4, seed=seed).images[0]
        assert np.array_equal(tts_generate(pipe, 4, candidates=1, seed=seed).image, plain)


# ---- re-indexing the rows against recomputing them -------------------------------------------------------
def _run(model, labels, tokens, guided, upto):
    state = ScaleSearch(model.var, model.vae.quantize, labels, guided=guided)
    for k in range(upto):
        state.logits()
        state.add(tokens[k])
    return state


@pytest.mark.parametrize("guided", [True, False])
def test_kept_rows_give_the_logits_of_the_same_rows_computed_from_scratch(guided):
    model = seeded(VARImageModel, TINY)
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 1, 2, 3])
    tokens = [torch.randint(0, 32, (4, p * p), generator=g) for p in PATCH_NUMS]
    rows = torch.tensor([2, 0, 2])
    with torch.no_grad():
        kept = _run(model, labels, tokens, guided, upto=2)
        kept.keep(rows)
        fresh = _run(model, labels[rows], [t[rows] for t in tokens], guided, upto=2)
        assert kept.cache.length == fresh.cache.length and kept.cache[0].batch == fresh.cache[0].batch
        for scale in (2, 3):  # the next scale, and the one after it (the re-indexed cache grew by a scale)
            torch.testing.assert_close(kept.logits(), fresh.logits(), rtol=1e-5, atol=1e-5)
            kept.add(tokens[scale][rows])
            fresh.add(tokens[scale][rows])
        torch.testing.assert_close(kept.f_hat, fresh.f_hat, rtol=1e-5, atol=1e-5)
    assert kept.ancestry.tolist() == [2, 0, 2]


def test_keep_refuses_rows_it_does_not_hold():
    model = seeded(VARImageModel, TINY)
    state = ScaleSearch(model.var, model.vae.quantize, torch.tensor([0, 1]), guided=True)
    with pytest.raises(UsageError, match="cannot keep rows"):
        state.keep(torch.tensor([2]))


# ---- selection ---------------------------------------------------------------------------------------
def test_kmeans_keeps_k_distinct_rows_one_per_cluster_and_repeats_with_the_seed():
    g = torch.Generator().manual_seed(3)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = (centres[:, None] + 0.1 * torch.randn(3, 5, 2, generator=g)).reshape(15, 2)
    x = x[torch.randperm(15, generator=g)]
    cluster_of = torch.cdist(x, centres).argmin(1)
    kept = kmeans_select(x, 3, torch.Generator().manual_seed(0))
    assert len(set(kept.tolist())) == 3 and sorted(cluster_of[kept].tolist()) == [0, 1, 2]
    assert torch.equal(kept, kmeans_select(x, 3, torch.Generator().manual_seed(0)))
    same = kmeans_select(torch.ones(6, 4), 4, torch.Generator().manual_seed(1))  # identical images: still distinct
    assert len(set(same.tolist())) == 4
    with pytest.raises(UsageError):
        kmeans_select(x, 16, torch.Generator())


def test_resampling_weights_follow_exp_lambda_score():
    scores = torch.tensor([0.0, 0.1, 0.25, 0.3])
    expected = torch.exp(10 * scores) / torch.exp(10 * scores).sum()
    torch.testing.assert_close(resample_weights(scores, 10.0), expected)
    draws = resample_rows(scores, 40000, torch.Generator().manual_seed(0), 10.0)
    frequency = torch.bincount(draws, minlength=4).float() / 40000
    assert (frequency - expected).abs().max() < 0.01
    assert torch.equal(draws, resample_rows(scores, 40000, torch.Generator().manual_seed(0), 10.0))


def test_a_fixed_scorer_steers_resampling_and_the_final_pick(tiny_pipe):
    def first_row_wins(images):  # row 0 scores 1, the others 0: weights e^10 : 1 : ... per row
        return torch.tensor([1.0] + [0.0] * (images.shape[0] - 1))

    schedule = (6, 4, 3, 2)
    result = tts_generate(tiny_pipe, "red circle", schedule=schedule, scorer=first_row_wins, seed=2, coarse=1)
    kinds = [kind for _, kind, _ in result.selections]
    assert kinds == ["cluster", "resample", "resample"]
    clustered = result.selections[0][2]
    assert len(set(clustered)) == 4 and result.images.shape[0] == 2 and result.best == 0
    for _, _, rows in result.selections[1:]:
        assert set(rows) == {0}  # e^10 against 1: row 0 is drawn every time with this seed
    assert result.survivors.tolist() == [clustered[0]] * 2
    again = tiny_pipe.tts("red circle", schedule=schedule, scorer=first_row_wins, seed=2, coarse=1)
    assert np.array_equal(again.images, result.images) and again.selections == result.selections
    # guidance doubles every row; each selection decodes the rows it chooses from, then the final rows are decoded
    assert result.row_scales == 2 * sum(schedule) and result.decoded == 6 + 4 + 3 + 2


def test_a_class_without_a_scorer_needs_one(tiny_ckpt):
    model = seeded(VARImageModel, TINY)
    pipe = VARPipeline(model, class_names=("a", "b", "c", "d", "e"))
    assert tts_generate(pipe, "a", candidates=1, seed=0).scores.numel() == 0  # nothing to choose: no scorer needed
    assert tts_generate(pipe, "a", candidates=4, seed=0).schedule == (4, 3, 1, 1)  # two drops, both clustered
    with pytest.raises(UsageError, match="needs a scorer"):
        tts_generate(pipe, "a", candidates=8, seed=0)  # 8, 6, 2, 2: two rows finish and the scorer picks
    with pytest.raises(UsageError, match="starts with 4 rows"):
        tts_generate(pipe, "a", candidates=2, schedule=(4, 2, 1, 1), seed=0)
    assert math.isfinite(tts_generate(pipe, "a", candidates=4, scorer=lambda x: x.mean((1, 2, 3)), seed=0).seconds)


# ---- the CLI --------------------------------------------------------------------------------------------
def test_image_with_tts_writes_the_best_candidates(tiny_ckpt, tmp_path, capsys):
    out = tmp_path / "tts.png"
    args = ["image", "--ckpt", str(tiny_ckpt), "--class", "blue square", "--num", "2", "--tts", "4", "-o", str(out)]
    assert main(args) == 0 and Image.open(out).size == (16, 8)  # 2 images of 8x8 side by side
    assert "TTS-VAR" in capsys.readouterr().out
    schedule = ["--tts-schedule", "3,2,1,1", "-o", str(tmp_path / "s.png")]
    assert main(["image", "--ckpt", str(tiny_ckpt), "--class", "0", "--tts", "3", *schedule]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tts", "0"], "--tts must be"),
        (["--tts", "-3"], "--tts must be"),
        (["--tts", "4", "--tts-schedule", "4,2"], "TTS schedule"),
        (["--tts", "4", "--tts-schedule", "4,x,1,1"], "--tts-schedule"),
        (["--tts", "2", "--tts-schedule", "4,2,1,1"], "starts with 4 rows"),
        (["--tts-schedule", "4,2,1,1"], "--tts-schedule needs --tts"),
        (["--tts", "4", "--kv", "scalekv"], "--tts"),
    ],
)
def test_a_bad_tts_value_exits_2_with_one_clear_line(tiny_ckpt, tmp_path, capsys, args, message):
    out = ["-o", str(tmp_path / "x.png")]
    assert main(["image", "--ckpt", str(tiny_ckpt), "--class", "0", *args, *out]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()
