"""The embedded default `var-toy` loads by name and draws the classes it is asked for."""

import torch

import genmotion
from genmotion.image_core.data import classify_toy_images
from genmotion.registry import list_models


def test_var_toy_is_registered_and_draws_requested_classes():
    assert "var-toy" in {m.name for m in list_models()}
    pipe = genmotion.load("var-toy")
    result = pipe.generate(list(range(12)), num_images=12, seed=0)  # one image of each of the 12 classes
    assert result.images.shape[0] == 12 and result.images.dtype.name == "uint8"
    predicted = classify_toy_images(torch.from_numpy(result.images))
    correct = sum(int(p == t) for p, t in zip(predicted, result.labels, strict=True))
    assert correct >= 10, f"{correct}/12 images read as their class (the card reports 94.6 %; chance is 1/12)"
