"""The embedded default `var-toy` loads by name and draws the classes it is asked for."""

import torch

import genmotion
from genmotion.image_core.data import classify_toy_images
from genmotion.registry import list_models


def test_var_toy_is_registered_and_draws_requested_classes():
    assert "var-toy" in {m.name for m in list_models()}
    pipe = genmotion.load("var-toy")
    result = pipe.generate([0, 5], num_images=2, seed=0)
    assert result.images.shape[0] == 2 and result.images.dtype.name == "uint8"
    predicted = classify_toy_images(torch.from_numpy(result.images))
    assert sum(int(p == t) for p, t in zip(predicted, result.labels, strict=True)) >= 1
