"""Assembling the shipped checkpoint: a decoder-only fine-tune replaces the decoder; anything else is refused."""

import pytest
import torch
from video_tiny import tiny_model

from genmotion.checkpoint import save_pretrained
from genmotion.config import to_dict
from genmotion.errors import InputError
from genmotion.video.export import export_videoar
from genmotion.video.videoar.pipeline import VideoARPipeline


def test_export_replaces_only_the_decoder(tmp_path):
    model = tiny_model()
    VideoARPipeline(model, encoder=object()).save_pretrained(tmp_path / "ar", card="# videoar checkpoint\nrun\n")
    tuned = tiny_model().tokenizer
    with torch.no_grad():
        for p in tuned.decoder.parameters():
            p.add_(0.5)
    tok_cfg = {"kind": "video-tokenizer", "tokenizer": to_dict(tuned.config)}
    save_pretrained(tmp_path / "dec", tuned, tok_cfg, "# video-tokenizer checkpoint\nfine-tune\n", torch.bfloat16)
    out = export_videoar(tmp_path / "ar", tmp_path / "out", decoder=tmp_path / "dec")
    loaded = VideoARPipeline.from_pretrained(out).model.tokenizer
    for a, b in zip(loaded.decoder.parameters(), tuned.decoder.parameters(), strict=True):
        torch.testing.assert_close(a, b.to(torch.bfloat16).float())
    assert "Decoder fine-tune" in (out / "card.md").read_text()

    with torch.no_grad():
        for p in tuned.encoder.parameters():
            p.add_(0.5)
    save_pretrained(tmp_path / "bad", tuned, tok_cfg, None, torch.bfloat16)
    with pytest.raises(InputError, match="decoder-only fine-tune"):
        export_videoar(tmp_path / "ar", tmp_path / "out2", decoder=tmp_path / "bad")


def test_export_ca2vdm_writes_weights_card_and_head_profile(tmp_path):
    from video_tiny import tiny_ca2vdm

    from genmotion.cache import load_head_profile
    from genmotion.video.ca2vdm.pipeline import Ca2VDMPipeline
    from genmotion.video.export import main

    Ca2VDMPipeline(tiny_ca2vdm(), encoder=object()).save_pretrained(tmp_path / "run", card="# ca2vdm checkpoint\nx\n")
    Ca2VDMPipeline(tiny_ca2vdm(1), encoder=object()).save_pretrained(
        tmp_path / "first", card="# ca2vdm checkpoint\ny\n"
    )
    main(["--ca2vdm", str(tmp_path / "run"), "--out", str(tmp_path / "out"), "--earlier", str(tmp_path / "first")])
    pipe = Ca2VDMPipeline.from_pretrained(tmp_path / "out")
    assert pipe.head_profile is not None and load_head_profile(pipe.head_profile).num_layers == 2
    card = (tmp_path / "out" / "card.md").read_text()
    assert "Flow transformer run" in card and "## Earlier run 1 (the run above was fine-tuned" in card
    assert card.index("\nx\n") < card.index("\ny\n")
