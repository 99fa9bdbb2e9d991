"""The generator contract, checked on every registered pipeline kind with its embedded default.

Each kind names a small call here; a generator that registers a pipeline without an entry fails
`test_every_pipeline_kind_has_a_contract_call`, so new generators join these checks when they land.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import genmotion
from genmotion.errors import UsageError
from genmotion.pipeline import Pipeline
from genmotion.registry import list_models

Call = Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]


# kind -> (args, kwargs) of a small call to stream()/generate()
def _clip(frames: int, height: int, width: int) -> np.ndarray:
    """A small fixed uint8 video (frames, height, width, 3): a bright square drifting over a gradient."""
    y, x = np.mgrid[0:height, 0:width]
    video = np.repeat(((x + y) * 255 // (height + width))[None, ..., None], frames, 0).repeat(3, -1)
    for t in range(frames):
        video[t, height // 3 : height // 3 + 8, 4 + 2 * t : 12 + 2 * t] = (230, 40, 40)
    return video.astype(np.uint8)


def _creature() -> tuple[Any, Any]:
    from genmotion.rigging.creatures import random_creature
    from genmotion.rigging.geometry import capsule_mesh

    return capsule_mesh(random_creature("biped", np.random.default_rng(0)), sections=6)


CALLS: dict[str, Call] = {
    "videoar": lambda: (("a red ball moving left",), {"num_frames": 2}),
    "ca2vdm": lambda: (("a blue square moving up",), {"num_frames": 2, "num_steps": 2}),
    "var": lambda: (("red circle",), {"num_images": 1}),
    "flexvar": lambda: (("red circle",), {"num_images": 1, "num_steps": 3}),
    "m-var": lambda: (("red circle",), {"num_images": 1}),
    "flowar": lambda: (("red circle",), {"num_images": 1, "num_steps": 2}),
    "cubecomposer": lambda: ((_clip(2, 36, 48),), {}),
    "riganything": lambda: ((_creature(),), {"max_joints": 6, "sample_steps": 4}),
    "vfmf": lambda: ((), {"context": _clip(3, 64, 64), "horizon": 1, "num_steps": 2}),
    "flowar-official": lambda: (("3",), {"num_images": 1, "num_steps": 2}),
}


def _tiny_official_flowar(directory: Path) -> Path:
    """A randomly initialised official-FlowAR checkpoint (8x8 images), as `genmotion convert flowar` writes one."""
    from genmotion.image_core.flowar_config import KLAutoencoderConfig
    from genmotion.image_core.official_flowar import OfficialFlowARImageConfig, OfficialFlowARImageModel
    from genmotion.image_core.official_flowar_model import OfficialFlowARConfig
    from genmotion.image_core.official_flowar_pipeline import OfficialFlowARPipeline

    net = OfficialFlowARConfig(width=32, depth=1, num_heads=2, head_width=64, head_depth=1, latent_channels=4,
                               patch_nums=(1, 2, 4), num_classes=10, rope_grid=4)  # fmt: skip
    vae = KLAutoencoderConfig(latent_channels=4, latent_size=4, channels=8, channel_mult=(1, 2), norm_groups=4)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = OfficialFlowARImageModel(OfficialFlowARImageConfig(vae=vae, flowar=net))
    return OfficialFlowARPipeline(model.eval()).save_pretrained(directory, card="# tiny official FlowAR\n")


# kinds that only load converted published weights (nothing of theirs can ship): a tiny random checkpoint stands in
CONVERTED_ONLY: dict[str, Callable[[Path], Path]] = {"flowar-official": _tiny_official_flowar}


def _kinds() -> list[str]:
    return sorted(ep.name for ep in entry_points(group="genmotion.pipelines"))


def _embedded() -> dict[str, str]:
    """kind -> the first embedded default of that kind."""
    out: dict[str, str] = {}
    for entry in list_models():
        if entry.source == "embedded":
            out.setdefault(entry.kind, entry.name)
    return out


def _payload(result: Any) -> np.ndarray:
    for name in ("frames", "images"):
        if hasattr(result, name):
            return np.asarray(getattr(result, name))
    return np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in _arrays(result)])


def _arrays(result: Any) -> list[Any]:
    import dataclasses

    values = [getattr(result, f.name) for f in dataclasses.fields(result) if f.name != "seconds"]
    return [v for v in values if isinstance(v, (np.ndarray, torch.Tensor))]


def test_every_pipeline_kind_has_a_contract_call():
    missing = [k for k in _kinds() if k not in CALLS]
    assert not missing, f"add a small call for {missing} to CALLS"


def test_every_pipeline_kind_ships_an_embedded_default():
    assert set(_kinds()) - set(CONVERTED_ONLY) <= set(_embedded()), "every generator ships an embedded default"
    assert set(CONVERTED_ONLY) <= set(_kinds()) and not set(CONVERTED_ONLY) & set(_embedded())


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, str]:
    """kind -> what `genmotion.load` takes: the embedded default, or a tiny checkpoint of a converted-only kind."""
    out = dict(_embedded())
    for kind, build in CONVERTED_ONLY.items():
        out[kind] = str(build(tmp_path_factory.mktemp(kind) / "ckpt"))
    return out


@pytest.fixture(scope="module", params=sorted(CALLS))
def loaded(request, sources):
    kind = request.param
    if kind not in sources:
        pytest.fail(f"no embedded default of kind {kind!r}")
    return kind, genmotion.load(sources[kind])


def test_is_a_pipeline_of_its_kind(loaded):
    kind, pipe = loaded
    assert isinstance(pipe, Pipeline) and pipe.kind == kind
    assert pipe.dtype == torch.float32 and pipe.device.type == "cpu"


def test_stream_equals_generate_and_seed_fixes_the_draw(loaded):
    kind, pipe = loaded
    args, kwargs = CALLS[kind]()
    chunks = list(pipe.stream(*args, seed=3, **kwargs))
    assert chunks and [c.index for c in chunks] == sorted(c.index for c in chunks)
    streamed = pipe.collect(chunks, 0.0, *args, seed=3, **kwargs)
    generated = pipe.generate(*args, seed=3, **kwargs)
    again = pipe.generate(*args, seed=3, **kwargs)
    np.testing.assert_array_equal(_payload(streamed), _payload(generated))
    np.testing.assert_array_equal(_payload(generated), _payload(again))


def test_save_load_round_trip(loaded, tmp_path):
    kind, pipe = loaded
    args, kwargs = CALLS[kind]()
    pipe.save_pretrained(tmp_path / "ckpt", card="# round trip\n")
    back = type(pipe).from_pretrained(tmp_path / "ckpt")
    np.testing.assert_array_equal(
        _payload(pipe.generate(*args, seed=1, **kwargs)), _payload(back.generate(*args, seed=1, **kwargs))
    )


def test_bad_arguments_are_clear_errors(loaded, sources):
    kind, pipe = loaded
    args, kwargs = CALLS[kind]()
    with pytest.raises(UsageError, match="seed"):
        pipe.generate(*args, seed=-1, **kwargs)
    with pytest.raises(UsageError, match="device"):
        type(pipe).from_pretrained(sources[kind], device="nowhere")
    with pytest.raises(UsageError, match="not"):
        other = next(k for k in _embedded() if k != kind)
        type(pipe).from_pretrained(_embedded()[other])
