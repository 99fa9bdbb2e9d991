"""Assemble a shippable `videoar` checkpoint from training runs: the transformer run's directory, with the
decoder of a decoder-only fine-tune of the same tokenizer (tokens unchanged), and one model card telling
the whole story (tokenizer run, transformer run, decoder run). `--ca2vdm` does the same for the causal
flow model (its autoencoder already is the fine-tuned tokenizer) and adds its Forcing-KV head profile.

    python -m genmotion.video.export --videoar runs/videoar_toy/model --tokenizer runs/video_tokenizer/model \\
        --decoder runs/video_decoder/model --out genmotion/weights/videoar-toy
    python -m genmotion.video.export --ca2vdm runs/ca2vdm_toy/model --tokenizer runs/video_tokenizer/model \\
        --decoder runs/video_decoder/model --out genmotion/weights/ca2vdm-toy

`--earlier RUN` (repeatable, latest first) adds the cards of the runs a checkpoint was fine-tuned from.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from genmotion.checkpoint import CARD_NAME, load_weights, read_checkpoint_config, save_pretrained
from genmotion.errors import InputError
from genmotion.video.decoder_swap import different_tokens
from genmotion.video.tokenizer_task import load_tokenizer
from genmotion.video.videoar.model import VideoAR
from genmotion.video.videoar.train import read_videoar_config

__all__ = ["export_ca2vdm", "export_videoar", "main"]


def _card(path: Path) -> str:
    card = path / CARD_NAME
    return card.read_text() if card.is_file() else f"(no card in {path})\n"


def _earlier(runs: Sequence[str | Path], heading: str) -> list[str]:
    """Card sections of the runs a checkpoint was fine-tuned from (`model.init_from`), latest first."""
    title = "## Earlier run {i} (the run above was fine-tuned from its result with model.init_from)"
    return [_card(Path(run)).replace(heading, title.format(i=i), 1) for i, run in enumerate(runs, start=1)]


def export_videoar(
    videoar: str | Path,
    out: str | Path,
    *,
    tokenizer: str | Path | None = None,
    decoder: str | Path | None = None,
    earlier: Sequence[str | Path] = (),
) -> Path:
    """Write `out`: the `videoar` checkpoint at `videoar`, with the decoder side of `decoder` when given."""
    videoar, out = Path(videoar), Path(out)
    model = VideoAR(read_videoar_config(videoar))
    load_weights(model, videoar)
    sections = [
        "# videoar-toy: VideoAR text-to-video on the toy world\n",
        _card(videoar).replace("# videoar checkpoint", "## Transformer run"),
    ]
    if tokenizer is not None:
        sections.append(
            _card(Path(tokenizer)).replace(
                "# video-tokenizer checkpoint", "## Tokenizer run (frozen while the transformer trained)"
            )
        )
    if decoder is not None:
        tuned = load_tokenizer(str(decoder))
        if tuned.config != model.tokenizer.config or (diff := different_tokens(tuned, model.tokenizer)):
            raise InputError(
                f"{decoder} is not a decoder-only fine-tune of this checkpoint's tokenizer",
                why="its config or token-deciding weights differ"
                + (f" ({diff[:3]})" if tuned.config == model.tokenizer.config else ""),
                fix="fine-tune with configs/video/video_decoder_finetune.yaml from the same tokenizer run",
            )
        model.tokenizer.decoder.load_state_dict(tuned.decoder.state_dict())
        model.tokenizer.decoder_mix.load_state_dict(tuned.decoder_mix.state_dict())
        sections.append(
            _card(Path(decoder)).replace(
                "# video-tokenizer checkpoint", "## Decoder fine-tune (encoder and codebook frozen: same tokens)"
            )
        )
    sections += _earlier(earlier, "# videoar checkpoint")
    config = read_checkpoint_config(videoar)
    return save_pretrained(out, model, config, "\n".join(sections), torch.bfloat16)


def export_ca2vdm(
    run: str | Path,
    out: str | Path,
    *,
    tokenizer: str | Path | None = None,
    decoder: str | Path | None = None,
    earlier: Sequence[str | Path] = (),
) -> Path:
    """Write `out`: the `ca2vdm` checkpoint at `run`, one card with the autoencoder's story, and the head
    profile `forcing-kv` reads (`genmotion profile-heads` on this model: 8 chunks, 4 steps, seed 0)."""
    from genmotion.cache import profile_heads, save_head_profile
    from genmotion.video.ca2vdm.model import Ca2VDM
    from genmotion.video.ca2vdm.pipeline import PROFILE_NAME, Ca2VDMPipeline, read_ca2vdm_config

    run, out = Path(run), Path(out)
    model = Ca2VDM(read_ca2vdm_config(run))
    load_weights(model, run)
    sections = [
        "# ca2vdm-toy: Ca2-VDM-style causal flow text-to-video on the toy world\n",
        _card(run).replace("# ca2vdm checkpoint", "## Flow transformer run"),
    ]
    autoencoder = "## Autoencoder: the video tokenizer's encoder and decoder, quantiser bypassed"
    for path, title in ((tokenizer, "tokenizer run"), (decoder, "decoder fine-tune")):
        if path is not None:
            sections.append(_card(Path(path)).replace("# video-tokenizer checkpoint", f"{autoencoder} ({title})"))
    sections += _earlier(earlier, "# ca2vdm checkpoint")
    path = save_pretrained(out, model, read_checkpoint_config(run), "\n".join(sections), torch.bfloat16)
    pipe = Ca2VDMPipeline(model.float(), encoder=object())
    profile = profile_heads(
        pipe.flow_model, pipe.frame_layout, generator=torch.Generator().manual_seed(0), model_name=out.name
    )
    save_head_profile(profile, out / PROFILE_NAME)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--videoar", help="videoar checkpoint directory (the transformer run)")
    kind.add_argument("--ca2vdm", help="ca2vdm checkpoint directory (the flow transformer run)")
    parser.add_argument("--tokenizer", help="the tokenizer run it was trained on (for the card)")
    parser.add_argument("--decoder", help="a decoder-only fine-tune of that tokenizer")
    parser.add_argument("--out", required=True, help="where to write the combined checkpoint")
    parser.add_argument(
        "--earlier", action="append", default=[], help="a run it was fine-tuned from (repeat, latest first)"
    )
    args = parser.parse_args(argv)
    parts = {"tokenizer": args.tokenizer, "decoder": args.decoder, "earlier": args.earlier}
    if args.ca2vdm:
        path = export_ca2vdm(args.ca2vdm, args.out, **parts)
    else:
        path = export_videoar(args.videoar, args.out, **parts)
    sys.stdout.write(f"{path}\n")


if __name__ == "__main__":
    main()
